"""`shulian audit report` and `shulian audit rules`: the I/O edge of ``audit.report`` and ``audit.rules``.

Both read the ledger from the database (``--db``) or an export (``--export FILE``) in seq order and hand
the envelopes to the pure code. They do not verify it: run `shulian verify` for that.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from api.people import UsageError
from ledger.envelope import Envelope, parse_envelope
from ledger.errors import LedgerError
from ledger.timefmt import now

DATE_HELP = "YYYY-MM-DD (a day in Asia/Shanghai, UTC+8) or an ISO 8601 time with its offset, e.g. 2026-11-01T09:00Z"


def parse_when(text: str, option: str, *, end: bool = False) -> datetime:
    """``audit.report.parse_when``, its complaint naming the option."""
    from audit.report import parse_when as parse

    try:
        return parse(text, end=end)
    except ValueError as exc:
        raise UsageError(f"{option} {exc}") from None


def ledger_entries(args: argparse.Namespace) -> Iterator[tuple[int, Envelope]]:
    """The ledger's entries in seq order, from ``--export`` or the database, parsed (not verified)."""
    if args.export:
        from audit.errors import ExportError
        from audit.sources import _export_entries, read_export_header

        path = Path(args.export)
        try:
            with path.open("rb") as f:
                read_export_header(f.readline())
        except OSError as exc:
            raise ExportError(f"cannot read the export {path}: {exc.strerror or exc}") from exc
        raw: Iterator[tuple[int, bytes]] = _export_entries(path)
    else:
        from api.node import Node

        raw = Node(args.db).store.iter_entries()
    for seq, leaf in raw:
        try:
            yield seq, parse_envelope(leaf)
        except LedgerError as exc:
            raise LedgerError(f"seq {seq}: {exc}") from exc


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = path.resolve()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_audit_report(args: argparse.Namespace) -> int:
    from audit.report import RENDERERS, build_report

    start = parse_when(args.start, "--from")
    end = parse_when(args.end, "--to", end=True)
    if end <= start:
        raise UsageError("--to is not after --from: the period is empty")
    report = build_report(ledger_entries(args), start=start, end=end, department=args.department)
    text = RENDERERS[args.format](report)
    summary = f"{len(report.departments)} departments, {report.totals.requests} requests, {len(report.alerts)} alerts"
    if args.output:
        write_atomic(Path(args.output), text)
        print(f"wrote {args.format} report to {args.output}: {summary}")
    else:
        sys.stdout.write(text)
        print(summary, file=sys.stderr)
    return 0


def cmd_audit_rules(args: argparse.Namespace) -> int:
    from audit.rules import HIGH, run_rules
    from ledger.timefmt import format_ts

    end = parse_when(args.end, "--to", end=True) if args.end else now()
    start = parse_when(args.start, "--from") if args.start else None
    alerts = [a for a in run_rules(ledger_entries(args), end=end) if start is None or a.at >= start]
    for a in alerts:
        print(f"{a.severity.upper():6} {a.code}  {format_ts(a.at)}  {a.message}")
    high = sum(1 for a in alerts if a.severity == HIGH)
    print(f"{len(alerts)} alerts, {high} high", file=sys.stderr)
    return 1 if high else 0


def add_audit_commands(sub: Any) -> None:
    """Add `shulian audit report|rules` to the `shulian` subcommand parser ``sub``."""
    audit = sub.add_parser("audit", help="auditors: usage reports and anomaly rules over the ledger")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")

    def source(p: argparse.ArgumentParser) -> None:
        p.add_argument("--export", metavar="FILE", help="read this export file instead of the database")

    p = actions.add_parser("report", help="figures per department and period, with alerts (HTML, CSV or JSON)")
    p.add_argument("--from", dest="start", required=True, metavar="DATE", help=f"period start: {DATE_HELP}")
    p.add_argument("--to", dest="end", required=True, metavar="DATE", help="period end (a date: to its end)")
    p.add_argument("--format", choices=["html", "csv", "json"], default="html")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    p.add_argument("--department", metavar="KEYID", help="only this department (any of its key ids)")
    source(p)
    p.set_defaults(func=cmd_audit_report)

    p = actions.add_parser("rules", help="print the anomaly rules' alerts; exit 1 when any is high")
    p.add_argument("--from", dest="start", metavar="DATE", help=f"only alerts from then: {DATE_HELP}")
    p.add_argument("--to", dest="end", metavar="DATE", help="the ledger up to then (default: now)")
    source(p)
    p.set_defaults(func=cmd_audit_rules)
