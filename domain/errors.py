"""The errors the ledger raises, one tree for every layer.

    CasetrailError
    ├── InputError              the caller sent something the ledger will not record
    │   ├── MalformedInput      not parseable as strict JSON (HTTP 400)
    │   ├── InvalidEvent        parseable, but not a valid event (HTTP 422)
    │   ├── UnknownCase         no such case, or not one the caller may see (HTTP 404)
    │   ├── UnknownParty        no such party of that agency (HTTP 404)
    │   ├── InvalidParameter    a query parameter, path segment or header is unusable (400)
    │   └── MissingPurpose      personal data asked for without a stated purpose (400)
    ├── Unauthenticated         no valid API key (HTTP 401)
    ├── NotPermitted            a valid key without the right (HTTP 403)
    ├── ConcurrencyConflict     the case moved on since the caller last looked (HTTP 409)
    ├── IdempotencyKeyReused    a key came back with a different request (HTTP 422)
    ├── InternalFault           the ledger failed in a way it did not anticipate (HTTP 500)
    ├── MasterKeyRotated        this process holds a master key the ledger no longer uses (503)
    └── LedgerIntegrityError    recorded history, a proof or a signature does not verify
        ├── ChainBroken         a case's hash chain does not link up
        ├── ProofError          a Merkle inclusion or consistency proof fails
        ├── SignatureError      a tree head signature or public key is unacceptable
        └── BundleError         a dispute bundle is malformed or inconsistent

Every error carries a stable `kind`, which the HTTP layer turns into the problem
type URI, so a message can be reworded without breaking a client that matches on it.
"""

from __future__ import annotations


class CasetrailError(Exception):
    """Base of every error the ledger raises on purpose."""

    kind = "casetrail-error"

    def __init__(self, message: str, *, pointer: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer


class InputError(CasetrailError):
    kind = "invalid-input"


class MalformedInput(InputError):
    kind = "malformed-json"


class InvalidEvent(InputError):
    kind = "invalid-event"


class UnknownCase(InputError):
    kind = "case-not-found"


class CaseIdTaken(CasetrailError):
    kind = "case-id-taken"


class UnknownParty(InputError):
    kind = "party-not-found"


class InvalidParameter(InputError):
    kind = "invalid-parameter"


class MissingPurpose(InputError):
    kind = "missing-purpose"


class Unauthenticated(CasetrailError):
    kind = "unauthorized"


class NotPermitted(CasetrailError):
    kind = "forbidden"


class ConcurrencyConflict(CasetrailError):
    kind = "seq-conflict"

    def __init__(self, message: str, *, current_seq: int, pointer: str | None = None) -> None:
        super().__init__(message, pointer=pointer)
        self.current_seq = current_seq


class IdempotencyKeyReused(CasetrailError):
    kind = "idempotency-key-reused"


class InternalFault(CasetrailError):
    kind = "internal-error"


class MasterKeyRotated(CasetrailError):
    """The ledger's master key was rotated after this process loaded the old one: it must
    not wrap anything new under the old key (nothing could open it after a restart)."""

    kind = "master-key-rotated"


class LedgerIntegrityError(CasetrailError):
    """The recorded history, a proof or a signature does not verify."""

    kind = "integrity-failure"


class ChainBroken(LedgerIntegrityError):
    kind = "chain-broken"

    def __init__(self, message: str, *, case_id: str, seq: int) -> None:
        super().__init__(message)
        self.case_id = case_id
        self.seq = seq


class ProofError(LedgerIntegrityError):
    kind = "proof-invalid"


class SignatureError(LedgerIntegrityError):
    kind = "signature-invalid"


class BundleError(LedgerIntegrityError):
    kind = "bundle-invalid"
