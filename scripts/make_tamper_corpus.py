"""Write the tamper corpus: one sound dispute bundle and tampered copies of it.

    python scripts/make_tamper_corpus.py [--out tests/data/bundles]

Everything is deterministic (fixed events, fixed ledger times, a signing key derived
from a fixed seed, Ed25519's deterministic signatures), so running the script again
writes the same bytes. `manifest.json` names, for every file, the verifier check that
must reject it ("" for the sound bundle); tests/test_bundle.py holds the verifier to it.
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain import merkle  # noqa: E402
from domain.bundle import build_bundle  # noqa: E402
from domain.envelope import GENESIS_HASH, make_record  # noqa: E402
from domain.signing import LedgerKey  # noqa: E402

CASE_ID = "corpus-sale"
ACTOR = {"id": "agent-a1", "role": "agent_of_record", "agency": "agency-a"}


def corpus_key(seed: str = "casetrail tamper corpus") -> LedgerKey:
    return LedgerKey(Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest()))


def case_records() -> list[dict[str, Any]]:
    payloads = [
        ("case.opened", {"kind": "sale", "property_ref": "prop-corpus"}),
        (
            "mandate.signed",
            {"party_id": "p-1", "kind": "sell", "exclusive": True, "expires_on": "2024-09-01"},
        ),
        ("note.added", {"text": "seller asked for weekly reports"}),
        (
            "material_fact.disclosed",
            {"fact_type": "mortgage", "to_party_id": "p-2", "acknowledged": True},
        ),
        (
            "contract.sale_signed",
            {
                "buyer_party_ids": ["p-2"],
                "seller_party_ids": ["p-1"],
                "price_minor": 250000000,
                "currency": "CNY",
            },
        ),
    ]
    records = []
    prev = GENESIS_HASH
    for seq, (kind, payload) in enumerate(payloads, start=1):
        record, _ = make_record(
            {
                "case_id": CASE_ID,
                "seq": seq,
                "type": kind,
                "schema_version": 1,
                "occurred_at": f"2024-03-0{seq}T10:00:00+08:00",
                "recorded_at": f"2024-03-0{seq}T02:00:01.000000Z",
                "recorded_by": "key_corpus",
                "actor": ACTOR,
                "payload": payload,
                "evidence": [],
                "prev_hash": prev,
            }
        )
        records.append(record)
        prev = record["hash"]
    return records


def rechain(records: list[dict[str, Any]], start: int) -> None:
    """Recompute hashes and links from `start` on, as a careful forger would."""
    for index in range(start, len(records)):
        envelope = {name: value for name, value in records[index].items() if name != "hash"}
        if index > 0:
            envelope["prev_hash"] = records[index - 1]["hash"]
        records[index], _ = make_record(envelope)


def sound_bundle() -> dict[str, Any]:
    key = corpus_key()
    records = case_records()

    # Other cases' events interleave in the global log, as they would in a real ledger.
    leaves: list[bytes] = []
    indexes: list[int] = []
    for number in range(23):
        if number % 4 == 1 and len(indexes) < len(records):
            indexes.append(len(leaves))
            leaves.append(merkle.leaf_hash(bytes.fromhex(records[len(indexes) - 1]["hash"])))
        else:
            leaves.append(merkle.leaf_hash(hashlib.sha256(f"other {number}".encode()).digest()))

    size = len(leaves)
    head = key.sign(size, merkle.root_of(leaves).hex(), "2024-03-06T00:00:00.000000Z")
    last = records[-1]
    case_head = key.sign_case_head(
        CASE_ID, last["seq"], last["hash"], head, "2024-03-06T00:00:01.000000Z"
    )

    def node(level: int, index: int) -> bytes:
        return merkle.root_of(leaves[index << level : (index + 1) << level])

    events = [
        (record, leaf_index, merkle.inclusion_proof(leaf_index, size, node))
        for record, leaf_index in zip(records, indexes, strict=True)
    ]
    return build_bundle(CASE_ID, 1, key.public_key, head, case_head, events)


def tampered(sound: dict[str, Any]) -> dict[str, tuple[dict[str, Any] | bytes, str]]:
    """Each tampering with the check that must catch it."""
    variants: dict[str, tuple[dict[str, Any] | bytes, str]] = {}

    Change = Callable[[dict[str, Any]], "bytes | None"]

    def variant(name: str, check: str) -> Callable[[Change], Change]:
        def register(change: Change) -> Change:
            bundle = copy.deepcopy(sound)
            result = change(bundle)
            variants[name] = (result if result is not None else bundle, check)
            return change

        return register

    @variant("payload-changed-hashes-recomputed", "inclusion")
    def _(b: dict[str, Any]) -> None:
        records = [entry["record"] for entry in b["events"]]
        records[3]["payload"]["acknowledged"] = False
        rechain(records, 3)
        for entry, record in zip(b["events"], records, strict=True):
            entry["record"] = record

    @variant("payload-changed", "event-hash")
    def _(b: dict[str, Any]) -> None:
        b["events"][2]["record"]["payload"]["text"] = "seller asked for daily reports"

    @variant("event-dropped", "chain")
    def _(b: dict[str, Any]) -> None:
        del b["events"][2]

    @variant("events-swapped", "chain")
    def _(b: dict[str, Any]) -> None:
        b["events"][1], b["events"][2] = b["events"][2], b["events"][1]

    @variant("proof-element-flipped", "inclusion")
    def _(b: dict[str, Any]) -> None:
        proof = b["events"][1]["inclusion_proof"]
        first = bytearray(bytes.fromhex(proof[0]))
        first[0] ^= 0x01
        proof[0] = first.hex()

    @variant("proof-element-added", "inclusion")
    def _(b: dict[str, Any]) -> None:
        b["events"][1]["inclusion_proof"].append("00" * 32)

    @variant("proof-element-removed", "inclusion")
    def _(b: dict[str, Any]) -> None:
        b["events"][1]["inclusion_proof"].pop()

    @variant("tree-size-changed", "signature")
    def _(b: dict[str, Any]) -> None:
        b["tree_head"]["tree_size"] += 1

    @variant("leaf-index-changed", "inclusion")
    def _(b: dict[str, Any]) -> None:
        b["events"][0]["leaf_index"] += 1

    @variant("wrong-key", "log-id")
    def _(b: dict[str, Any]) -> None:
        b["public_key"]["key"] = corpus_key("another ledger").public_key_b64()

    @variant("wrong-key-with-its-log-id", "signature")
    def _(b: dict[str, Any]) -> None:
        other = corpus_key("another ledger")
        b["public_key"]["key"] = other.public_key_b64()
        b["tree_head"]["log_id"] = other.log_id

    @variant("identity-public-key", "public-key")
    def _(b: dict[str, Any]) -> None:
        b["public_key"]["key"] = base64.b64encode(b"\x01" + bytes(31)).decode()

    @variant("trailing-bytes", "format")
    def _(b: dict[str, Any]) -> bytes:
        return _dump(b) + b'\n{"more": true}\n'

    @variant("last-event-dropped", "case-head")
    def _(b: dict[str, Any]) -> None:
        del b["events"][-1]

    @variant("case-head-seq-lowered", "case-head")
    def _(b: dict[str, Any]) -> None:
        b["events"].pop()
        b["case_head"]["seq"] -= 1
        b["case_head"]["head_hash"] = b["events"][-1]["record"]["hash"]

    @variant("case-head-removed-as-v1", "format")
    def _(b: dict[str, Any]) -> None:
        del b["case_head"]
        b["format"] = "casetrail.bundle.v1"

    @variant("unknown-top-level-field", "format")
    def _(b: dict[str, Any]) -> None:
        b["verified"] = True

    @variant("unknown-tree-head-field", "tree-head")
    def _(b: dict[str, Any]) -> None:
        b["tree_head"]["note"] = "checked by the seller's lawyer"

    @variant("proof-element-upper-case", "inclusion")
    def _(b: dict[str, Any]) -> None:
        proof = b["events"][1]["inclusion_proof"]
        proof[0] = proof[0].upper()

    @variant("tree-size-as-float", "format")
    def _(b: dict[str, Any]) -> bytes:
        size = b["tree_head"]["tree_size"]
        return _dump(b).replace(
            f'"tree_size": {size},'.encode(), f'"tree_size": {size}.0,'.encode()
        )

    @variant("duplicate-key-in-payload", "format")
    def _(b: dict[str, Any]) -> bytes:
        text = _dump(b)
        original = b'"text": "seller asked for weekly reports"'
        return text.replace(original, original + b', "text": "seller asked for daily reports"')

    return variants


def _dump(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle, indent=2, ensure_ascii=False).encode() + b"\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(ROOT / "tests" / "data" / "bundles"))
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sound = sound_bundle()
    manifest = {"sound.json": ""}
    (out / "sound.json").write_bytes(_dump(sound))
    (out / "public-key.txt").write_text(sound["public_key"]["key"] + "\n")
    for name, (bundle, check) in sorted(tampered(sound).items()):
        content = bundle if isinstance(bundle, bytes) else _dump(bundle)
        (out / f"{name}.json").write_bytes(content)
        manifest[f"{name}.json"] = check
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(manifest)} bundles to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
