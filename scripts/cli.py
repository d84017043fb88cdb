"""The `casetrail` command: serve, demo, verify, replay, rebuild, keys.

Each command is a thin wrapper over a `Runtime`; anything it does, the HTTP API does the
same way.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import logging.handlers
import queue
import sys
from collections.abc import Callable, Sequence

from domain.errors import CasetrailError
from domain.settings import Settings, SettingsError
from domain.vault import MasterKeyMissing, VaultError

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)

    try:
        settings = Settings.from_env()
        handler: Command = args.handler
        return handler(args, settings)
    except (SettingsError, MasterKeyMissing, VaultError) as error:
        print(f"casetrail: {error}", file=sys.stderr)
        return 2
    except CasetrailError as error:
        print(f"casetrail: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    from scripts import commands

    parser = argparse.ArgumentParser(
        prog="casetrail",
        description="A tamper-evident ledger of real-estate brokerage cases.",
        epilog="Settings come from CASETRAIL_* environment variables; see README.md.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    serve.set_defaults(handler=commands.serve)

    demo = sub.add_parser("demo", help="load the example cases, then serve")
    demo.add_argument("--no-serve", action="store_true", help="load and exit")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=_port, default=8000)
    demo.set_defaults(handler=commands.demo)

    verify = sub.add_parser("verify", help="verify every case's chain and the transparency log")
    verify.set_defaults(handler=commands.verify)

    export = sub.add_parser("export", help="write a case's dispute bundle")
    export.add_argument("case_id")
    export.add_argument("--out", required=True, help="the bundle file to create")
    export.set_defaults(handler=commands.export)

    check = sub.add_parser(
        "verify-bundle", help="verify a dispute bundle offline (no database, no network)"
    )
    check.add_argument("file")
    # Who made the bundle is known only from a key trusted for other reasons; checking it
    # against the key inside it has to be asked for by name.
    trust = check.add_mutually_exclusive_group()
    trust.add_argument(
        "--public-key",
        metavar="FILE",
        help="the ledger's published public key: the response of GET /v1/log/public-key "
        "as saved, or its pem, or its base64 key; needed unless --trust-bundle-key",
    )
    trust.add_argument(
        "--trust-bundle-key",
        action="store_true",
        help="check the bundle against the key inside it: shows it is consistent, not who made it",
    )
    check.add_argument(
        "--consistency",
        metavar="FILE",
        help="the response of GET /v1/log/consistency?first=N&second=M as saved, N being "
        "the bundle's tree size; or {first, second, proof} with --later-tree-head",
    )
    check.add_argument(
        "--later-tree-head",
        metavar="FILE",
        help="a later signed tree head (JSON), when --consistency does not hold it",
    )
    check.set_defaults(handler=commands.verify_bundle)

    replay = sub.add_parser("replay", help="a case's state as it stood at a point in time")
    replay.add_argument("case_id")
    moment = replay.add_mutually_exclusive_group()
    moment.add_argument("--as-of-seq", type=int, metavar="N")
    moment.add_argument("--as-of-recorded", metavar="TIME", help="RFC 3339 ledger time")
    replay.set_defaults(handler=commands.replay)

    report = sub.add_parser("report", help="attribution report per agency and agent")
    report.add_argument("--agency")
    report.add_argument("--agent")
    report.add_argument("--from", dest="start", metavar="TIME", help="RFC 3339, inclusive")
    report.add_argument("--to", dest="end", metavar="TIME", help="RFC 3339, exclusive")
    report.add_argument("--status", choices=["met", "breached"])
    report.add_argument("--severity", choices=["low", "medium", "high", "critical"])
    report.add_argument("--format", choices=["json", "csv"], default="json")
    report.add_argument("--part", choices=["counts", "breaches"], default="counts")
    report.set_defaults(handler=commands.report)

    scenario = sub.add_parser(
        "scenario", help="check scenario files' expected verdicts in a temporary ledger"
    )
    scenario.add_argument("files", nargs="+", metavar="FILE")
    scenario.set_defaults(handler=commands.scenario)

    rebuild = sub.add_parser("rebuild", help="drop every read model and rebuild it from the feed")
    rebuild.set_defaults(handler=commands.rebuild)

    keys = sub.add_parser("keys", help="master key, signing key and API keys")
    key_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    key_sub.add_parser(
        "init", help="create the master key and the ledger signing key"
    ).set_defaults(handler=commands.keys_init)
    create = key_sub.add_parser("create", help="create an API key (printed once)")
    create.add_argument(
        "--role", required=True, choices=["integrator", "agent", "compliance", "auditor", "admin"]
    )
    create.add_argument("--agency", default=None)
    create.add_argument("--name", default="")
    create.set_defaults(handler=commands.keys_create)
    key_sub.add_parser("list", help="list API keys (never their secrets)").set_defaults(
        handler=commands.keys_list
    )
    revoke = key_sub.add_parser("revoke", help="revoke an API key")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=commands.keys_revoke)
    rotate = key_sub.add_parser(
        "rotate-master", help="re-wrap every data key under a new master key"
    )
    rotate.add_argument(
        "--new-key-file",
        required=True,
        help="where to write the new master key (must not exist)",
    )
    rotate.set_defaults(handler=commands.keys_rotate_master)

    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {port}")
    return port


def _configure_logging(verbose: bool) -> None:
    """Log lines go through a queue to a background thread, so writing them never stalls
    the event loop that serves requests. Access lines are JSON, printed as they are.

    Logging someone else configured (a host program, pytest) is left alone.
    """
    root = logging.getLogger()
    if root.handlers:
        return

    access = logging.getLogger("casetrail.access")
    access_console = logging.StreamHandler(sys.stderr)
    access_console.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(access_console)
    access.propagate = False

    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log_queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(log_queue, console)
    listener.start()
    atexit.register(listener.stop)

    root.handlers[:] = [logging.handlers.QueueHandler(log_queue)]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


if __name__ == "__main__":
    raise SystemExit(main())
