"""What each `casetrail` command does."""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

from domain.errors import CasetrailError
from domain.keyfiles import write_key_file
from domain.settings import Settings
from domain.signing import LedgerKey
from domain.vault import MasterKey, load_master_key, new_master_key_file
from projections.runtime import Runtime
from scripts.scenarios import load_scenario, read_scenarios


def serve(args: argparse.Namespace, settings: Settings) -> int:
    _require_keys(settings)
    _serve(settings, args.host, args.port)
    return 0


def _serve(settings: Settings, host: str, port: int, runtime: Runtime | None = None) -> None:
    import uvicorn

    from api.app import create_app

    app = create_app(runtime=runtime, settings=settings)
    print(f"casetrail: serving {settings.database.describe()} on http://{host}:{port}", flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        proxy_headers=False,
        server_header=False,
    )


def demo(args: argparse.Namespace, settings: Settings) -> int:
    created = ensure_keys(settings)
    for line in created:
        print(line)

    runtime = Runtime(settings)
    try:
        admin_token = _demo_token(runtime, settings, "admin", "demo admin")
        desk_token = _demo_token(runtime, settings, "compliance", "demo compliance officer")
        print(f"casetrail: loading example cases into {settings.database.describe()}")
        for scenario in read_scenarios():
            try:
                results = load_scenario(runtime, scenario)
            except CasetrailError as error:
                print(f"casetrail: {error.message}", file=sys.stderr)
                return 1
            runtime.settle(timeout=10.0)
            for case_id, appended in results.items():
                state = runtime.state_as_of(case_id)
                head = state["head_hash"] if state else "?"
                phase = state["phase"] if state else "?"
                print(f"  {case_id:<24} {len(appended):>3} events  head {head}  phase {phase}")

        print()
        if args.no_serve:
            print(f"Loaded. Serve it with `casetrail serve --port {args.port}`, then:")
        print(f"API:      http://{args.host}:{args.port}/  (OpenAPI at /openapi.json)")
        print(f"Desk:     http://{args.host}:{args.port}/desk/  sign in with this compliance key:")
        print(f"  {desk_token}")
        print(f"Admin key (keep it secret; also in {_demo_key_path(settings, 'admin')}):")
        print(f"  {admin_token}")
        print(
            f"Try:      curl -H 'Authorization: Bearer {admin_token}' "
            f"http://{args.host}:{args.port}/v1/cases"
        )
        if args.no_serve:
            return 0
        if not getattr(args, "verbose", False):
            # The keys above must stay on screen: the demo keeps its request log quiet.
            logging.getLogger("casetrail.access").setLevel(logging.WARNING)
            print("(the request log is off in the demo; `casetrail -v demo` shows it)")
    except BaseException:
        runtime.close()
        raise

    try:
        _serve(settings, args.host, args.port, runtime=runtime)
    finally:
        runtime.close()
    return 0


def _demo_key_path(settings: Settings, role: str) -> Path:
    """One demo key file per database, so demos of two ledgers never overwrite each other."""
    database = hashlib.sha256(settings.database_url.encode()).hexdigest()[:10]
    return Path(settings.master_key_path).parent / f"demo-{role}-{database}.key"


def _demo_token(runtime: Runtime, settings: Settings, role: str, name: str) -> str:
    """A demo key of `role`: created once, kept in an owner-only file next to the keys."""
    path = _demo_key_path(settings, role)
    if path.exists():
        token = path.read_text().strip()
        if runtime.api_keys.authenticate(token) is not None:
            return token
        path.unlink()
    token, _ = runtime.api_keys.create(role, name=name)
    write_key_file(str(path), token.encode() + b"\n")
    return token


def ensure_keys(settings: Settings) -> list[str]:
    """Create the master key and the ledger's signing key if they are missing."""
    settings.ensure_var_dir()
    created = []
    if not settings.master_key and not Path(settings.master_key_path).exists():
        key = new_master_key_file(settings.master_key_path)
        created.append(
            f"casetrail: created master key {key.key_id} at {settings.master_key_path} "
            "(owner-only; back it up, it cannot be recovered)"
        )
    if not Path(settings.signing_key_path).exists():
        signing = LedgerKey.create(settings.signing_key_path)
        created.append(
            f"casetrail: created signing key at {settings.signing_key_path} (owner-only); "
            f"log id {signing.log_id}, public key {signing.public_key_b64()}"
        )
    return created


def _require_keys(settings: Settings) -> None:
    load_master_key(value=settings.master_key, path=settings.master_key_path)
    LedgerKey.load(settings.signing_key_path)


def keys_init(args: argparse.Namespace, settings: Settings) -> int:
    created = ensure_keys(settings)
    for line in created:
        print(line)
    if not created:
        print("casetrail: keys already exist; nothing changed")
    return 0


def keys_create(args: argparse.Namespace, settings: Settings) -> int:
    with Runtime(settings, start_followers=False) as runtime:
        try:
            token, principal = runtime.api_keys.create(
                args.role, agency=args.agency, name=args.name
            )
        except ValueError as error:
            print(f"casetrail: {error}", file=sys.stderr)
            return 2
    scope = f" for agency {principal.agency}" if principal.agency else ""
    print(f"Created {principal.role} key {principal.key_id}{scope}. It is shown only once:")
    print(token)
    if principal.agency is None and principal.role in ("integrator", "agent"):
        print(
            f"note: this {principal.role} key reads and writes for every agency; give "
            "--agency to bind it to one",
            file=sys.stderr,
        )
    return 0


def keys_list(args: argparse.Namespace, settings: Settings) -> int:
    with Runtime(settings, start_followers=False) as runtime:
        rows = runtime.api_keys.list()
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        agency = row["agency"] or "(all agencies)"
        print(f"{row['key_id']}  {row['role']:<11} {agency:<20} {state:<36} {row['name']}")
    return 0


def keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    with Runtime(settings, start_followers=False) as runtime:
        revoked = runtime.api_keys.revoke(args.key_id)
    if not revoked:
        print(f"casetrail: no key {args.key_id}", file=sys.stderr)
        return 1
    print(f"Revoked {args.key_id}.")
    return 0


def keys_rotate_master(args: argparse.Namespace, settings: Settings) -> int:
    """Write the new master key first, then re-wrap every key under it in one transaction.

    The order is what makes this safe: the key file is created exclusively and fsynced
    before the database changes, and removed only if the database provably does not use
    it. No failure can leave the ledger wrapped under a key that was never written.
    """
    path = args.new_key_file
    new_key = os.urandom(32)
    new_master = MasterKey.from_bytes(new_key)
    with Runtime(settings, start_followers=False) as runtime:
        old_id = runtime.master_key.key_id
        try:
            write_key_file(path, base64.b64encode(new_key) + b"\n")
        except OSError as error:
            print(
                f"casetrail: cannot create {path} ({error.strerror or error}); nothing was "
                "changed: give a new file in a folder you can write to",
                file=sys.stderr,
            )
            return 2
        try:
            count = runtime.keystore.rewrap(new_master)
        except BaseException:
            _keep_or_remove(runtime, path, new_master.key_id)
            raise
    print(
        f"Re-wrapped {count} keys under the new master key {new_master.key_id} in {path}. "
        f"Nothing in the database opens with the old master key {old_id} any more, and the "
        "ledger refuses it: restart every casetrail process with "
        f"CASETRAIL_MASTER_KEY_PATH={path} (and CASETRAIL_MASTER_KEY unset); until then they "
        "refuse to create data keys. Backups made before now still need the old key: keep it "
        "as long as they are kept, then destroy it (docs/design.md, Personal data)."
    )
    return 0


def _keep_or_remove(runtime: Runtime, path: str, new_key_id: str) -> None:
    """After a failed re-wrap: remove the new key file unless the database may use it."""
    try:
        row = runtime.ledger.db.query_one("SELECT key_id FROM master_key WHERE singleton = 1")
    except Exception:
        row = None
    if row is not None and row["key_id"] != new_key_id:
        Path(path).unlink(missing_ok=True)
        print(f"casetrail: the keys were not re-wrapped; removed {path}", file=sys.stderr)
        return
    print(
        f"casetrail: whether the keys were re-wrapped is unknown; keep both {path} and the old "
        "master key until `casetrail keys list` runs with one of them",
        file=sys.stderr,
    )


def verify(args: argparse.Namespace, settings: Settings) -> int:
    from projections.audit import audit_ledger

    _require_keys(settings)
    with Runtime(settings, start_followers=False) as runtime:
        report = audit_ledger(runtime)
    for finding in report.first_per_case():
        print(finding.line())
    summary = (
        f"{report.cases} cases, {report.events} events, {report.leaves} leaves, "
        f"{report.tree_heads} signed tree heads"
    )
    if not report.ok:
        print(f"casetrail: the ledger does not verify ({summary})", file=sys.stderr)
        return 1
    print(f"casetrail: all {report.cases} cases verify ({summary})")
    return 0


def export(args: argparse.Namespace, settings: Settings) -> int:
    _require_keys(settings)
    target = _safe_output_path(args.out)
    with Runtime(settings, start_followers=False) as runtime:
        if not runtime.case_exists(args.case_id):
            print(f"casetrail: no case {args.case_id}", file=sys.stderr)
            return 1
        bundle = runtime.bundle(args.case_id)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(target, flags, 0o644), "wb") as handle:
        handle.write(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    head = bundle["tree_head"]
    print(
        f"casetrail: wrote {len(bundle['events'])} events of {args.case_id} to {target}, "
        f"proved against the signed tree head of size {head['tree_size']}, with the "
        f"ledger's signature that the case ends at seq {bundle['case_head']['seq']}; check it "
        f"with `casetrail verify-bundle {args.out} --public-key FILE` and the ledger's "
        "public key (GET /v1/log/public-key)"
    )
    return 0


def _safe_output_path(path: str) -> Path:
    """The export target: a new file under the current folder, reached without symlinks.

    Absolute paths, `..` (also URL-encoded) and symlinks anywhere on the way are refused,
    so an export can never write outside the folder it was started in.
    """
    decoded = unquote(path)
    candidate = Path(path)
    if candidate.is_absolute() or Path(decoded).is_absolute():
        raise SystemExit(f"casetrail: {path}: give a path relative to the current folder")
    if any(part == ".." for part in (*Path(decoded).parts, *candidate.parts)):
        raise SystemExit(f"casetrail: {path}: '..' is not allowed in the output path")

    base = Path.cwd().resolve()
    current = base
    for part in candidate.parts:
        current = current / part
        if current.is_symlink():
            raise SystemExit(f"casetrail: {path}: the path goes through a symlink")
    target = base / candidate
    if target.exists():
        raise SystemExit(f"casetrail: {path} exists; choose a new file name")
    if not target.parent.is_dir():
        raise SystemExit(f"casetrail: the folder of {path} does not exist")
    if not target.resolve().is_relative_to(base):
        raise SystemExit(f"casetrail: {path} leads outside the current folder")
    return target


def verify_bundle(args: argparse.Namespace, settings: Settings) -> int:
    from domain.bundle import BundleCheckFailed, parse_bundle
    from domain.bundle import verify_bundle as check
    from domain.errors import SignatureError
    from domain.signing import public_key_from_text

    if not args.public_key and not args.trust_bundle_key:
        print(
            "casetrail: verify-bundle needs --public-key FILE, the ledger's published key "
            "(GET /v1/log/public-key), to check who made the bundle; --trust-bundle-key "
            "checks it only against the key inside it, which anyone can put there",
            file=sys.stderr,
        )
        return 2
    if args.later_tree_head and not args.consistency:
        print(
            "casetrail: --later-tree-head needs --consistency FILE, the proof that it extends "
            "the bundle's tree head (GET /v1/log/consistency?first=N&second=M)",
            file=sys.stderr,
        )
        return 2

    def document(path: str | None, name: str) -> dict[str, Any] | None:
        # Each file is named in its own messages: a bad later head is not "the bundle".
        return parse_bundle(Path(path).read_bytes(), name=f"{name} {path}") if path else None

    try:
        trusted = None
        if args.public_key:
            try:
                trusted = public_key_from_text(Path(args.public_key).read_bytes().decode())
            except (SignatureError, UnicodeDecodeError) as error:
                reason = error if isinstance(error, SignatureError) else "it is not UTF-8 text"
                print(f"FAIL public-key: --public-key {args.public_key}: {reason}")
                return 1
        bundle = parse_bundle(Path(args.file).read_bytes(), name=f"the bundle {args.file}")
        report = check(
            bundle,
            trusted_public_key=trusted,
            trust_bundle_key=args.trust_bundle_key,
            later_tree_head=document(args.later_tree_head, "the later tree head"),
            consistency_proof=document(args.consistency, "the consistency proof"),
        )
    except BundleCheckFailed as error:
        print(f"FAIL {error}")
        return 1
    except OSError as error:
        print(f"FAIL cannot read {error.filename}: {error.strerror}")
        return 1
    print(report.summary())
    return 0


def replay(args: argparse.Namespace, settings: Settings) -> int:
    _require_keys(settings)
    with Runtime(settings, start_followers=False) as runtime:
        if not runtime.case_exists(args.case_id):
            print(f"casetrail: no case {args.case_id}", file=sys.stderr)
            return 1
        state = runtime.state_as_of(
            args.case_id, seq=args.as_of_seq, recorded=_recorded_bound(args.as_of_recorded)
        )
    if state is None:
        print(f"casetrail: case {args.case_id} had no events at that moment", file=sys.stderr)
        return 1
    print(orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    return 0


def _recorded_bound(value: str | None) -> str | None:
    if value is None:
        return None
    from datetime import datetime

    from domain.envelope import format_recorded_at

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SystemExit(
            f"casetrail: --as-of-recorded needs an RFC 3339 time, got {value!r}"
        ) from None
    if moment.tzinfo is None:
        raise SystemExit("casetrail: --as-of-recorded needs an offset (e.g. Z or +08:00)")
    return format_recorded_at(moment)


def report(args: argparse.Namespace, settings: Settings) -> int:
    from projections.attribution import (
        ReportFilter,
        attribution_report,
        report_breaches_csv,
        report_counts_csv,
    )

    _require_keys(settings)
    selection = ReportFilter(
        agency=args.agency,
        agent=args.agent,
        start=_recorded_bound(args.start),
        end=_recorded_bound(args.end),
        status=args.status,
        severity=args.severity,
    )
    with Runtime(settings, start_followers=False) as runtime:
        runtime.catch_up()
        result = attribution_report(runtime.ledger, runtime.policy, selection)
    if args.format == "csv":
        print(
            report_counts_csv(result) if args.part == "counts" else report_breaches_csv(result),
            end="",
        )
    else:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    return 0


def scenario(args: argparse.Namespace, settings: Settings) -> int:
    """Load scenario files into a fresh temporary ledger and check their expectations."""
    import tempfile
    from dataclasses import replace

    from scripts.scenarios import check_expectations

    scenarios = read_scenarios([Path(name) for name in args.files])
    failed = 0
    with tempfile.TemporaryDirectory(prefix="casetrail-scenario-") as tmp:
        scratch = replace(
            settings,
            database_url=f"sqlite:///{Path(tmp) / 'scenario.sqlite'}",
            master_key="",
            master_key_path=str(Path(tmp) / "master.key"),
            signing_key_path=str(Path(tmp) / "signing-key.pem"),
        )
        ensure_keys(scratch)
        with Runtime(scratch, start_followers=False) as runtime:
            for loaded in scenarios:
                load_scenario(runtime, loaded)
                policy_id = str(loaded.data.get("policy") or settings.policy)
                verdicts = {
                    case_id: runtime.attribution_of(case_id, policy_id=policy_id)["verdicts"]
                    for case_id in loaded.cases
                }
                for outcome in check_expectations(loaded, verdicts):
                    print(outcome.line())
                    failed += not outcome.passed
    total = sum(
        len(s.data.get("expect", [])) + len(s.data.get("expect_not", [])) for s in scenarios
    )
    print(f"casetrail: {total - failed} of {total} expectations hold")
    return 1 if failed else 0


def rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Drop every read model and rebuild it from the feed; a view that cannot be rebuilt
    (the store was tampered with) is reported, and the others are rebuilt regardless."""
    from tqdm import tqdm

    _require_keys(settings)
    failed = []
    with Runtime(settings, start_followers=False) as runtime:
        total = runtime.head_position()
        for name, follower in runtime.followers.items():
            follower.projection.reset()
            try:
                with tqdm(
                    total=total, desc=f"rebuild {name}", unit="event", file=sys.stderr
                ) as bar:
                    follower.catch_up(progress=bar.update)
            except CasetrailError as error:
                failed.append(name)
                print(
                    f"casetrail: {name} stopped at position {follower.view.position()}: "
                    f"{error.message}",
                    file=sys.stderr,
                )
                continue
            print(f"rebuilt {name} up to position {follower.view.position()}")
    if failed:
        print(
            f"casetrail: could not rebuild {', '.join(failed)}; run `casetrail verify`",
            file=sys.stderr,
        )
        return 1
    return 0
