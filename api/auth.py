"""Who may do what: API keys on every request, roles, and agency scope.

| role        | appends | reads                | reveals personal data | keys, erasure |
|-------------|---------|----------------------|-----------------------|---------------|
| integrator  | yes     | its agency (or all)  | no                    | no            |
| agent       | yes     | its agency           | its agency's cases    | no            |
| compliance  | no      | every agency         | yes                   | no            |
| auditor     | no      | every agency         | no                    | no            |
| admin       | yes     | everything           | yes (legal claims too)| yes           |

A key bound to an agency sees only cases opened by that agency; any other case answers
404 exactly as a case that does not exist, so an agency cannot even learn which case ids
another one uses. Reveal roles are configurable (CASETRAIL_REVEAL_ROLES).
"""

from __future__ import annotations

from starlette.requests import Request

from domain.errors import NotPermitted, Unauthenticated
from projections.apikeys import Principal

APPENDERS = frozenset({"integrator", "agent", "admin"})
READERS = frozenset({"integrator", "agent", "compliance", "auditor", "admin"})
REPORT_READERS = frozenset({"compliance", "auditor", "admin", "agent", "integrator"})


def principal(request: Request) -> Principal:
    """The authenticated caller; raises 401 if there is none."""
    found: Principal | None = request.scope.get("casetrail.principal")
    if found is not None:
        return found

    runtime = request.app.state.runtime
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "send an API key as `Authorization: Bearer <key>` (create one with "
            "`casetrail keys create`)",
            pointer="/headers/Authorization",
        )
    found = runtime.api_keys.authenticate(token.strip())
    if found is None:
        raise Unauthenticated(
            "this API key is not valid: unknown, revoked or mistyped",
            pointer="/headers/Authorization",
        )
    request.scope["casetrail.principal"] = found
    return found


def optional_principal(request: Request) -> Principal | None:
    """The caller on a public route: None without a key, 401 for a key that is not valid
    (a mistyped key should say so, not silently read as anonymous)."""
    if not request.headers.get("authorization"):
        return None
    return principal(request)


def require(request: Request, roles: frozenset[str], action: str) -> Principal:
    caller = principal(request)
    if caller.role not in roles:
        raise NotPermitted(f"a key with role {caller.role!r} may not {action}")
    return caller


def require_admin(request: Request, action: str) -> Principal:
    return require(request, frozenset({"admin"}), action)
