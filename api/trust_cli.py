"""CLI commands of distributed trust: ``witness init|serve|add``, ``monitor``, and the witness policy of ``verify``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from api.people import UsageError


def cmd_witness_init(args: argparse.Namespace) -> int:
    from audit.witness import init_witness

    vkey, created = init_witness(args.name)
    if not created:
        print(f"witness {vkey.name} already initialised; nothing changed", file=sys.stderr)
    print(vkey.encode())
    return 0


def cmd_witness_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.settings import load_settings, refuse_default_secrets
    from audit.witness import Witness, create_witness_app, load_witness_key, witness_dir
    from ledger.note import ALG_ED25519, VerifierKey

    refuse_default_secrets(load_settings(export=False))  # as serve: outside development, one line and exit 1
    if not args.log_key:
        raise UsageError("give at least one --log-key VKEY (the log's checkpoint key)")
    keys = [VerifierKey.parse(k) for k in args.log_key]
    for k in keys:
        if k.alg != ALG_ED25519:
            raise UsageError(f"--log-key {k.name}: not an Ed25519 note key")
    witness = Witness(load_witness_key(), keys, witness_dir() / "witness.db")
    print(f"witness {witness.vkey.encode()} for {', '.join(sorted(witness.logs))}", flush=True)
    app: Any = create_witness_app(witness)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_witness_add(args: argparse.Namespace) -> int:
    from api.node import Node
    from api.witnesses import add_witness

    node = Node(args.db)
    node.reader.origin  # noqa: B018 - the ledger must be initialised
    created = add_witness(node.store, args.vkey, args.url)
    print(f"witness {args.vkey.split('+', 1)[0]} {'added' if created else 'updated'} at {args.url}")
    return 0


def cmd_witness_list(args: argparse.Namespace) -> int:
    from api.node import Node
    from api.witnesses import list_witnesses

    for w in list_witnesses(Node(args.db).store):
        print(f"{w.vkey} {w.url} last cosigned size {w.last_size}")
    return 0


def cmd_witness_push(args: argparse.Namespace) -> int:
    from api.node import Node
    from api.witnesses import push_checkpoint

    node = Node(args.db)
    results = push_checkpoint(node.store, node.reader, timeout=args.timeout)
    for vkey, error in sorted(results.items()):
        print(f"{vkey.split('+', 1)[0]}: {error or 'cosigned'}")
    return 1 if any(results.values()) else 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from audit.monitor import Monitor, MonitorAlert

    state = Path(args.state) if args.state else _default_state()
    monitor = Monitor(args.log, args.log_key, state)
    try:
        monitor.run(interval=args.interval, once=args.once, out=lambda line: print(line, flush=True))
    except MonitorAlert as exc:
        print(f"ALERT: {exc}", file=sys.stderr)
        return 3
    return 0


def _default_state() -> Path:
    from keys.keystore import home

    return home() / "monitor" / "state.json"


def check_witness_policy(args: argparse.Namespace) -> str | None:
    """For ``verify --witness … --quorum K``: a fault line, or None when the latest checkpoint meets it."""
    from ledger.cosignature import QuorumError, check_policy, get_quorum_result, parse_witness_vkey
    from ledger.errors import NoteError

    if not args.witness:
        if args.quorum is not None:
            raise UsageError("--quorum needs at least one --witness VKEY")
        return None
    try:
        keys = [parse_witness_vkey(w) for w in args.witness]
        quorum = len(keys) if args.quorum is None else args.quorum
        check_policy(keys, quorum)
    except (QuorumError, NoteError) as exc:
        raise UsageError(str(exc)) from exc
    if args.export:
        height, note = _last_export_checkpoint(Path(args.export))
    else:
        from api.node import Node
        from api.witnesses import with_cosignatures
        from ledger.store import Store

        node = Node(args.db)
        with node.store.reader() as conn:
            head = Store.head(conn)
        if head is None:
            return "no checkpoint to check the witness policy on"
        height = head[0].height
        note = with_cosignatures(node.store, head[0].tree_size, head[1])
    result = get_quorum_result(note, keys, quorum)
    return None if result else f"block {height}: latest checkpoint {result.message}"


def _last_export_checkpoint(path: Path) -> tuple[int, str]:
    last: tuple[int, str] | None = None
    with path.open("rb") as f:
        for line in f:
            if line.startswith(b'{"block"'):
                value = json.loads(line)
                last = (int(value["block"]), str(value["checkpoint"]))
    if last is None:
        raise UsageError(f"{path}: no block to check the witness policy on")
    return last


def add_trust_commands(sub: Any, verify: argparse.ArgumentParser) -> None:
    """Add ``witness`` and ``monitor`` to the CLI, and the witness policy options to ``verify``."""
    verify.add_argument("--witness", action="append", metavar="VKEY", help="a witness verifier key (repeatable)")
    verify.add_argument("--quorum", type=int, metavar="K", help="cosignatures required (default: every --witness)")

    p = sub.add_parser("witness", help="run a C2SP tlog-witness, or manage this log's witnesses")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("init", help="create the witness key (idempotent) and print its verifier key")
    a.add_argument("--name", required=True, help="the witness's public name, e.g. audit.example.gov.cn/witness")
    a.set_defaults(func=cmd_witness_init)
    a = actions.add_parser("serve", help="serve POST /add-checkpoint")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8100)
    a.add_argument("--log-key", action="append", metavar="VKEY", help="a trusted log key (repeatable)")
    a.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    a.set_defaults(func=cmd_witness_serve)
    a = actions.add_parser("add", help="record a witness this log submits its checkpoints to")
    a.add_argument("vkey", metavar="VKEY")
    a.add_argument("url", metavar="URL")
    a.set_defaults(func=cmd_witness_add)
    a = actions.add_parser("list", help="the witnesses of this log and the size each last cosigned")
    a.set_defaults(func=cmd_witness_list)
    a = actions.add_parser("push", help="submit the newest checkpoint to the witnesses now")
    a.add_argument("--timeout", type=float, default=2.0)
    a.set_defaults(func=cmd_witness_push)

    p = sub.add_parser("monitor", help="follow a log's checkpoints; alert on a fork or a bad signature")
    p.add_argument("--log", required=True, metavar="URL", help="the log's base URL")
    p.add_argument("--log-key", required=True, metavar="VKEY", help="the log's checkpoint verifier key")
    p.add_argument("--state", metavar="FILE", help="state file (default SHULIAN_HOME/monitor/state.json)")
    p.add_argument("--interval", type=float, default=10.0, metavar="S")
    p.add_argument("--once", action="store_true", help="check once and exit")
    p.set_defaults(func=cmd_monitor)


def start_witness_follower(db: str | None) -> None:
    """For ``serve``: push each new checkpoint to this log's witnesses from a daemon thread."""
    from api.node import Node
    from api.witnesses import WitnessFollower

    node = Node(db)
    WitnessFollower(node.store, node.reader).start()
