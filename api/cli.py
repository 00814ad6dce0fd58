"""The `shulian` command line (DESIGN §9). Errors are one readable line and a non-zero exit."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from api.audit_cli import add_audit_commands
from api.backup_cli import add_backup_commands, check_vault_option
from api.people import CommandError, UsageError, add_commands
from api.trust_cli import add_trust_commands, check_witness_policy, start_witness_follower
from keys.errors import KeystoreError
from ledger.errors import LedgerError

if TYPE_CHECKING:
    from api.node import Node

Handler = Callable[[argparse.Namespace], int]


def cmd_init(args: argparse.Namespace) -> int:
    from api.node import Node

    node = Node(args.db)
    created = node.init(args.origin)
    size, _ = node.reader.checkpoint()
    what = "initialised" if created else "already initialised; nothing changed"
    print(f"{what}: origin {node.reader.origin}, {size} entries")
    print(f"log key: {node.reader.vkey.encode()}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from api.demo import seed_demo
    from api.node import Node

    node = Node(args.db)
    counts = seed_demo(node)
    if not counts:
        print("demo city already seeded; nothing changed")
        return 0
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"demo city seeded: {sum(counts.values())} entries appended ({detail})")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from api.demo import simulate
    from api.node import Node

    if args.events < 1:
        raise UsageError("--events must be at least 1")
    node = Node(args.db)
    counts = simulate(node, args.events, args.seed)
    size, _ = node.reader.checkpoint()
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"simulated {args.events} events ({summary}); ledger now {size} entries")
    return 0


def require_current_schema(node: Node) -> None:
    """Refuse to serve a database whose schema is not the one this code reads and writes."""
    from ledger import migrate

    at, want = migrate.current(node.store.engine), migrate.head()
    if at != want:
        raise migrate.MigrationError(
            f"the database schema is at revision {at or '(none: made before migrations)'}, this shulian "
            f"serves {want}: run `shulian db upgrade` first"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api import logs
    from api.settings import load_settings, refuse_default_secrets

    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    settings = load_settings(export=False)
    refuse_default_secrets(settings)  # outside development: one line and exit 1
    level = args.log_level or settings.log_level
    fmt = args.log_format or settings.effective_log_format
    logs.configure(fmt, level)
    from api import writer

    # serve sets these for the processes it starts; an in-process caller gets its environment back
    saved = {name: os.environ.get(name) for name in ("PROMETHEUS_MULTIPROC_DIR", "SHULIAN_DB", writer.SOCKET_VARIABLE)}
    metrics_dir: Path | None = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # the workers and the writer process count together
        from api.metrics import prepare_multiprocess_dir  # before any worker imports prometheus-client

        metrics_dir = prepare_multiprocess_dir(settings.home)
    started: tuple[subprocess.Popen[bytes], Path] | None = None
    try:
        from api.app import create_app
        from api.node import Node

        node = Node(args.db)
        node.reader.origin  # noqa: B018 - fail early, in one line, when the ledger is not initialised
        require_current_schema(node)
        start_witness_follower(args.db)
        if args.db:
            os.environ["SHULIAN_DB"] = args.db  # the writer and each worker open their node from the environment
        started = writer.start()  # decides and commits the access requests of every worker
        os.environ[writer.SOCKET_VARIABLE] = str(started[1])
        node.writer = writer.WriterClient(str(started[1]))
        node.async_writer = writer.AsyncWriterClient(str(started[1]))
        options: dict[str, Any] = {
            "host": args.host,
            "port": args.port,
            "log_level": level,
            "log_config": logs.log_config(fmt, level),
            "access_log": False,  # one access line per request comes from shulian.access (api.edge)
        }
        if args.workers == 1:
            from api.asgi import tune_interpreter, yield_to_writer

            tune_interpreter()
            yield_to_writer()  # after the writer process started: it keeps the priority it had
            node.view.warm()  # the ledger into memory now, not in the first request (/readyz waits for it)
            uvicorn.run(create_app(node, settings), **options)
            return 0
        node.close()
        uvicorn.run("api.asgi:app_from_env", factory=True, workers=args.workers, **options)
    finally:
        if started is not None:
            writer.stop(*started)
        if metrics_dir is not None:
            from api.metrics import remove_multiprocess_dir

            remove_multiprocess_dir(metrics_dir)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from api.node import Node
    from audit.export import write_export

    check_vault_option(args)
    node = Node(args.db)
    summary = write_export(node.store, Path(args.output), progress=not args.quiet)
    print(f"exported to {args.output}")
    if args.vault:
        from api.backup import write_vault

        records = write_vault(node.store, Path(args.vault), below=summary.entries)
        print(f"vault ({records} sealed record versions, dataset keys still wrapped) to {args.vault}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from api.settings import load_settings
    from audit.sources import verify_database, verify_export

    textfile = load_settings(export=False).verify_metrics
    watch = None
    if textfile is not None:  # SHULIAN_VERIFY_METRICS: progress gauges for node_exporter and /metrics
        from api.metrics import VerifyProgress

        watch = VerifyProgress(textfile, "export" if args.export else "database")
        watch.write()
    report = watch.update if watch is not None else None
    if args.export:
        result = verify_export(Path(args.export), progress=not args.quiet, report=report)
    else:
        from api.node import Node

        result = verify_database(Node(args.db).store, progress=not args.quiet, report=report)
    if watch is not None:
        watch.finish(ok=result.ok, checked=result.entries if result.ok else None)
    if not result.ok:
        print(result.message, file=sys.stderr)
        return 1
    fault = check_witness_policy(args)
    if fault is not None:
        print(fault, file=sys.stderr)
        return 1
    print(f"OK: {result.entries} entries, {result.blocks} blocks verified")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, with its complaints as one line (and the usage only under --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="shulian", description="Shulian (数链): the verifiable data-sharing ledger")
    parser.add_argument(
        "--db",
        default=os.environ.get("SHULIAN_DB"),
        help="database URL (default: SHULIAN_DB or sqlite:///var/shulian.db)",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="create the schema, the log key and the genesis entry (idempotent)")
    p.add_argument("--origin", help="checkpoint origin, e.g. data.example.gov.cn/shulian")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("demo", help="seed the demo city (idempotent)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("simulate", help="append N realistic, signed events through the service code")
    p.add_argument("--events", type=int, required=True)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("serve", help="serve the API and the portal")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes sharing the ledger (default 1)")
    p.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        help="default: SHULIAN_LOG_LEVEL or info",
    )
    p.add_argument(
        "--log-format",
        choices=["json", "text"],
        help="one JSON object a line, or text (default: SHULIAN_LOG_FORMAT; json, text when SHULIAN_ENV=development)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", help="write the ledger as a shulian-export/1 JSON Lines file")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--vault", help="also write the records vault (sealed) to this shulian-vault/1 file")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="replay and check the whole ledger (database or export)")
    p.add_argument("--export", help="verify this export file instead of the database")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_verify)
    add_trust_commands(sub, p)

    add_commands(sub)
    add_audit_commands(sub)
    add_backup_commands(sub)
    return parser


def _readable(exc: Exception) -> bool:
    """Whether ``exc`` is a failure a person can act on (one line), not a bug (a traceback)."""
    if isinstance(exc, LedgerError | KeystoreError | UsageError | CommandError | OSError | ValueError):
        return True
    # Error types of modules loaded lazily: an exception of a module never imported cannot occur.
    for module, name in (("api.client", "ClientError"), ("audit.errors", "AuditError"), ("httpx", "HTTPError")):
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(exc, getattr(loaded, name)):
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    from api.settings import SettingsError, load_settings

    try:
        load_settings()  # SHULIAN_CONFIG's values reach the environment before the defaults are read
    except SettingsError as exc:
        print(f"shulian: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Handler = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("shulian: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from api.dbfaults import database_fault

        fault = database_fault(exc)  # unreachable, read-only or full: said plainly, with the cause
        if args.verbose or not (fault or _readable(exc)):
            raise
        what = " ".join(x for x in (args.command, getattr(args, "action", None)) if x)
        line = " ".join(str(exc).split()) or type(exc).__name__
        if fault is not None:
            line = f"{fault.detail} ({line})"
        print(f"shulian {what}: {line}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
