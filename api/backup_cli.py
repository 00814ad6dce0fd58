"""`shulian import` (restore from an export and a vault file) and `shulian db` (schema migrations)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from api.people import UsageError


def _store(args: argparse.Namespace) -> Any:
    from ledger.store import Store

    return Store(args.db)


def cmd_import(args: argparse.Namespace) -> int:
    from api.backup import import_export

    store = _store(args)
    try:
        done = import_export(store, Path(args.input), vault=args.vault, progress=not args.quiet)
    finally:
        store.close()
    vault = f", {done.vault_records} vault records" if args.vault else " (no vault file: record values not restored)"
    print(f"imported {done.entries} entries, {done.blocks} blocks, {done.grants} consent grants{vault}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from ledger import migrate

    store = _store(args)
    try:
        before = migrate.current(store.engine)
        migrate.upgrade(store.write_engine, args.to)
        after = migrate.current(store.engine)
    finally:
        store.close()
    print(f"schema at {after}" + ("" if before == after else f" (was {before or 'empty'})"))
    return 0


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    from ledger import migrate

    store = _store(args)
    try:
        migrate.downgrade(store.write_engine, args.to)
        after = migrate.current(store.engine)
    finally:
        store.close()
    print(f"schema at {after or 'base (no tables)'}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from ledger import migrate

    store = _store(args)
    try:
        rev = migrate.current(store.engine)
    finally:
        store.close()
    head = migrate.head()
    if rev is None:
        print(f"empty (no schema); newest revision {head}")
    else:
        print(f"{rev}" + (" (head)" if rev == head else f" (newest is {head}: run `shulian db upgrade`)"))
    return 0


def add_backup_commands(sub: Any) -> None:
    p = sub.add_parser(
        "import",
        help="restore an export (and its vault file) into an empty database, after verifying all of it",
    )
    p.add_argument("-i", "--input", required=True, help="a shulian-export/1 file (from `shulian export`)")
    p.add_argument("--vault", help="the shulian-vault/1 file written by `shulian export --vault`")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_import)

    db = sub.add_parser("db", help="the database schema: current revision, upgrade, downgrade (Alembic)")
    actions = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("current", help="the schema revision of the database")
    p.set_defaults(func=cmd_db_current)
    p = actions.add_parser("upgrade", help="migrate the schema up (default: to the newest revision)")
    p.add_argument("--to", default="head", help="target revision (default head)")
    p.set_defaults(func=cmd_db_upgrade)
    p = actions.add_parser("downgrade", help="migrate the schema down (refused while the ledger holds entries)")
    p.add_argument("--to", required=True, help="target revision, or base")
    p.set_defaults(func=cmd_db_downgrade)


def check_vault_option(args: argparse.Namespace) -> None:
    if getattr(args, "vault", None) and Path(args.vault).resolve() == Path(args.output).resolve():
        raise UsageError("--vault must name a file other than the export")
