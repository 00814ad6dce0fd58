"""`shulian objection file|resolve|list`: data objections (数据异议核实) on the SDK.

A citizen files an objection to fields of a record about them; the owning department answers within
the deadline the reports track (15 days): it corrects the record — a new ``record.commit`` version that
``replaces`` the old — and names that commit in an ``objection.resolve``, or rejects with reasons.
Like the other people's commands, each runs against a server (``--url``) with the person's keystore,
and every entry shown has had its inclusion proof checked.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from api.people import (
    CommandError,
    UsageError,
    _common,
    _csv,
    _json_arg,
    _print_json,
    _proved,
    _server_call,
    _short,
    _status_json,
    open_client,
)

if TYPE_CHECKING:
    from api.client import ShulianClient


def _deadline_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The objection's due time and whether it is overdue now (open past its due time)."""
    from audit.report import DEFAULT_DEADLINE
    from ledger.timefmt import format_ts, now, parse_ts

    due = parse_ts(item["entry"]["ts"]) + DEFAULT_DEADLINE
    return {"due": format_ts(due), "overdue": item["status"] == "open" and now() > due}


def _objection(client: ShulianClient, seq: int) -> dict[str, Any]:
    """The objection at ``seq`` among those the caller may see (proof checked), or a one-line error."""
    for item in client.objections():
        if item["entry"]["seq"] == seq:
            return item
    raise CommandError(f"seq {seq} is not an objection you can see (list them with `shulian objection list`)")


@_server_call
def cmd_objection_file(args: argparse.Namespace) -> int:
    from consent.errors import ConsentError
    from consent.objection import objection_body

    client = open_client(args)
    subject = client.me().get("subject")
    if not subject:
        raise CommandError("this key is not a citizen's: only the person a record is about files an objection")
    try:
        body = objection_body(
            subject=subject, dataset=args.dataset, record=args.record, fields=args.fields, reason=args.reason
        )
    except ConsentError as exc:
        raise UsageError(str(exc)) from exc
    out = client.file_objection(body)
    due = _deadline_fields({"entry": client.entry(out["seq"]), "status": "open"})["due"]  # its signed time
    if args.json:
        _print_json({"seq": out["seq"], "due": due, "body": body})
        return 0
    print(
        f"objection filed at seq {out['seq']} to {args.dataset}/{args.record}[{','.join(args.fields)}]; "
        f"the owning department answers by {_short(due)}"
    )
    print(_proved(client))
    return 0


@_server_call
def cmd_objection_resolve(args: argparse.Namespace) -> int:
    from api.client import ClientError
    from consent.errors import ConsentError
    from consent.objection import resolution_body

    if not args.reason:
        raise UsageError("give the reasons of the answer: --reason TEXT (repeatable)")
    values = _json_arg("@" + args.values) if args.values else None
    if values is not None and not isinstance(values, dict):
        raise CommandError(f"{args.values} does not hold a JSON object of field values")
    client = open_client(args)
    item = _objection(client, args.seq)
    if item["status"] != "open":
        raise CommandError(f"objection {args.seq} is already {item['status']} (seq {item.get('ended_by')})")
    body = item["entry"]["body"]
    correction = args.correction
    if values is not None:
        latest = next((r for r in client.records(body["dataset"]) if r["record"] == body["record"]), None)
        if latest is None:
            raise CommandError(f"record {body['dataset']}/{body['record']} is not one of yours")
        out = client.commit_record(
            dataset=body["dataset"], record=body["record"], subject=latest["subject"], values=values,
            version=latest["version"] + 1, replaces=latest["seq"],
        )  # fmt: skip
        correction = int(out["seq"])
        if not args.json:
            print(
                f"record {body['dataset']}/{body['record']} version {latest['version'] + 1} committed at seq "
                f"{correction}, replacing seq {latest['seq']}"
            )
    try:
        answer = resolution_body(
            objection=args.seq,
            outcome="rejected" if args.reject else "corrected",
            reasons=args.reason,
            correction=correction,
        )
    except ConsentError as exc:
        raise UsageError(str(exc)) from exc
    try:
        out = client.resolve_objection(answer)
    except ClientError as exc:
        if values is not None:
            raise CommandError(
                f"the record was corrected at seq {correction} but the answer was refused ({exc}); "
                f"answer with: shulian objection resolve {args.seq} --correction {correction} --reason …"
            ) from exc
        raise
    if args.json:
        _print_json({"seq": out["seq"], "objection": args.seq, "outcome": answer["outcome"], "correction": correction})
        return 0
    what = f"corrected by seq {correction}" if correction is not None else "rejected"
    print(f"objection {args.seq} {what}; answer logged at seq {out['seq']}")
    print(_proved(client))
    return 0


@_server_call
def cmd_objection_list(args: argparse.Namespace) -> int:
    client = open_client(args)
    items = [dict(i, **_deadline_fields(i)) for i in client.objections()]
    if args.open:
        items = [i for i in items if i["status"] == "open"]
    items.sort(key=lambda i: (i["status"] != "open", i["due"], i["entry"]["seq"]))
    if args.json:
        _print_json([_status_json(i) for i in items])
        return 0
    for i in items:
        e, b = i["entry"], i["entry"]["body"]
        if i["status"] == "open":
            state = f"open, due {_short(i['due'])}" + ("  OVERDUE" if i["overdue"] else "")
        else:
            state = f"{i['status']} (seq {i['ended_by']})"
        print(
            f"seq {e['seq']}  {state}  {b['dataset']}/{b['record']}[{','.join(b['fields'])}]  "
            f"filed {_short(e['ts'])}: {b['reason']}"
        )
    overdue = sum(1 for i in items if i["overdue"])
    print(f"{len(items)} objections, {overdue} overdue; every {_proved(client)}")
    return 0


def add_objection_commands(sub: Any) -> None:
    """Add ``objection file|resolve|list`` to the `shulian` subcommand parser ``sub``."""
    common = _common()
    p = sub.add_parser("objection", help="data objections (数据异议): file (citizens), resolve and list (owners)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser("file", parents=[common], help="object to fields of a record about you (citizens)")
    q.add_argument("--dataset", required=True, metavar="DS")
    q.add_argument("--record", required=True, metavar="R")
    q.add_argument("--fields", required=True, type=_csv, metavar="a,b", help="the fields you say are wrong")
    q.add_argument("--reason", required=True, help="what is wrong, in your words")
    q.set_defaults(func=cmd_objection_file)
    q = actions.add_parser("resolve", parents=[common], help="answer an objection to your record (owning department)")
    q.add_argument("seq", type=int, metavar="SEQ", help="the seq of the objection.file")
    how = q.add_mutually_exclusive_group(required=True)
    how.add_argument("--reject", action="store_true", help="the record stands; say why with --reason")
    how.add_argument("--values", metavar="FILE.json", help="correct: commit these values as the record's new version")
    how.add_argument("--correction", type=int, metavar="SEQ", help="correct: name a later record.commit already made")
    q.add_argument("--reason", action="append", metavar="TEXT", help="a reason of the answer (repeatable)")
    q.set_defaults(func=cmd_objection_resolve)
    q = actions.add_parser("list", parents=[common], help="objections you filed or must answer, with due dates")
    q.add_argument("--open", action="store_true", help="only those not yet answered")
    q.set_defaults(func=cmd_objection_list)
