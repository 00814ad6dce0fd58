"""The `shulian` commands people run: keys, consent, requests, the catalogue, records, agreements, usage.

Each command is the Python SDK (``api.client``) talking to a Shulian server (``--url`` or SHULIAN_URL),
signing with the person's own key from an encrypted keystore file (``--keystore``, ``--key``; unlocked
by SHULIAN_PASSPHRASE or SHULIAN_PASSPHRASE_FILE). The SDK's last accepted checkpoint is kept in
SHULIAN_HOME/client-<key id>.json, so every run also proves the log consistent with what the previous
run saw. Every entry shown has had its inclusion proof checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.client import ShulianClient
    from keys.keystore import StoredKey

DEFAULT_URL = "http://127.0.0.1:8000"
ROLES = ("citizen", "department", "auditor", "admin", "witness", "service")
WITH_X25519 = ("citizen", "department")  # they receive sealed data


class UsageError(Exception):
    """A command used wrongly (exit 2)."""


class CommandError(Exception):
    """A command that could not do what was asked (exit 1); ``str()`` is one readable line."""


class Denied(CommandError):
    """A request the service decided to deny (the decision is on the ledger)."""


# ---------------------------------------------------------------------------------------------------
# Keys and clients
# ---------------------------------------------------------------------------------------------------


def choose_key(keys: list[StoredKey], path: Path, name: str | None) -> StoredKey:
    """The key called ``name`` (the last of that name: keystores append newer keys), or the only one."""
    if name is None:
        names = sorted({k.name for k in keys})
        if len(names) != 1:
            listed = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
            raise UsageError(f"keystore {path} holds keys of {len(names)} names ({listed}); choose one with --key")
        return keys[-1]
    for key in reversed(keys):
        if key.name == name:
            return key
    raise UsageError(f"keystore {path} holds no key named {name!r}")


def signing_key(args: argparse.Namespace) -> StoredKey:
    from keys.keystore import load_keystore

    if not args.keystore:
        raise UsageError("name the keystore to sign with: --keystore FILE (or SHULIAN_KEYSTORE)")
    path = Path(args.keystore)
    return choose_key(load_keystore(path), path, args.key)


def open_client(args: argparse.Namespace) -> ShulianClient:
    """The SDK client for ``args.url``, signing with the chosen key, its checkpoint kept between runs, and
    the k-of-n witness policy of ``--witness``/``--quorum`` (or SHULIAN_WITNESSES, space-separated keys)."""
    from api.client import ShulianClient
    from keys.keystore import home
    from ledger.errors import LedgerError

    key = signing_key(args)
    witnesses = getattr(args, "witness", None) or os.environ.get("SHULIAN_WITNESSES", "").split()
    quorum = getattr(args, "quorum", None)
    if quorum is not None and not witnesses:
        raise UsageError("--quorum needs at least one --witness VKEY (or SHULIAN_WITNESSES)")
    try:
        return ShulianClient(
            args.url, key, state_path=home() / f"client-{key.key_id}.json", witnesses=witnesses, quorum=quorum
        )
    except LedgerError as exc:  # a malformed witness key or an impossible quorum
        raise UsageError(f"witness policy: {exc}") from exc


def _server_call(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn a failure to reach the server into one line."""

    def run(args: argparse.Namespace) -> int:
        import httpx

        try:
            return func(args)
        except httpx.TransportError as exc:
            raise CommandError(f"cannot reach the Shulian server at {args.url}: {exc or type(exc).__name__}") from exc

    return run


def _csv(value: str) -> list[str]:
    items = [x.strip() for x in value.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one item, comma-separated")
    return items


def _json_arg(value: str) -> Any:
    """JSON text, or @FILE for JSON in a file."""
    try:
        text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
        return json.loads(text)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {value[1:]}: {exc.strerror}") from exc
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from exc
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=1))


def _short(ts: str) -> str:
    """A ledger time without its microseconds, for reading."""
    return ts[:19].replace("T", " ") + "Z" if len(ts) >= 19 else ts


def _proved(client: ShulianClient) -> str:
    size = client.last.size if client.last is not None else 0
    return f"inclusion proof verified against the signed checkpoint of size {size}"


# ---------------------------------------------------------------------------------------------------
# shulian keygen
# ---------------------------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from api.node import identity_body
    from keys.keystore import StoredKey, home, save_keystore

    name: str = args.name
    if args.output:
        path = Path(args.output)
    elif "/" in name or name.startswith(".") or not name.strip():
        raise UsageError(f"{name!r} cannot name a file; give the keystore's path with -o FILE")
    else:
        path = home() / "keystores" / f"{name}.json"
    if path.exists():
        raise CommandError(f"{path} exists; keygen never overwrites a keystore")
    key = StoredKey.generate(name, x25519=args.role in WITH_X25519, role=args.role)
    save_keystore(path, [key])
    extra: dict[str, Any] = {"subject": args.subject} if args.subject else {}
    body = identity_body(key, args.role, name, **extra)
    if args.json:
        _print_json({"key_id": key.key_id, "keystore": str(path), "register": body})
        return 0
    print(f"key {key.key_id} ({args.role}) saved to {path} (encrypted, mode 0600)")
    note = ""
    if args.role == "citizen" and not args.subject:
        note = '; for a citizen the admin adds "subject", the keyed hash of the ID number'
    print(f"an admin registers it by signing this identity.register body{note}:")
    _print_json(body)
    return 0


# ---------------------------------------------------------------------------------------------------
# shulian consent grant | revoke | list
# ---------------------------------------------------------------------------------------------------


@_server_call
def cmd_consent_grant(args: argparse.Namespace) -> int:
    from consent.grant import grant_body
    from ledger.timefmt import now

    client = open_client(args)
    subject = client.me().get("subject")
    if not subject:
        raise CommandError("this key is not a citizen's: it has no subject to grant consent about")
    start = now()
    body = grant_body(
        subject=subject, grantee=args.grantee, scope={args.dataset: args.fields}, purpose=args.purpose,
        valid_from=start, valid_until=start + timedelta(days=args.days), max_uses=args.max_uses,
    )  # fmt: skip
    out = client.grant_consent(body)
    if args.json:
        _print_json({"seq": out["seq"], "body": body})
        return 0
    uses = "unlimited uses" if args.max_uses is None else f"at most {args.max_uses} use" + "s" * (args.max_uses > 1)
    print(
        f"consent granted at seq {out['seq']}: {args.grantee} may use {args.dataset}[{','.join(args.fields)}] "
        f"for {args.purpose} until {_short(body['valid_until'])}, {uses}"
    )
    print(_proved(client))
    return 0


def _revoke(args: argparse.Namespace, what: str, field: str) -> int:
    """Revoke the consent or agreement at ``args.seq`` and say where the revocation landed."""
    client = open_client(args)
    revoke = client.revoke_consent if what == "consent" else client.revoke_agreement
    out = revoke(args.seq, args.reason)
    if args.json:
        _print_json({"seq": out["seq"], field: args.seq})
        return 0
    print(f"{what} {args.seq} revoked at seq {out['seq']}")
    print(_proved(client))
    return 0


@_server_call
def cmd_consent_revoke(args: argparse.Namespace) -> int:
    return _revoke(args, "consent", "grant")


@_server_call
def cmd_consent_list(args: argparse.Namespace) -> int:
    client = open_client(args)
    items = client.consents()
    if args.json:
        _print_json([_status_json(i) for i in items])
        return 0
    for item in items:
        body = item["entry"]["body"]
        scope = " ".join(f"{ds}[{','.join(fields)}]" for ds, fields in body["scope"].items())
        limit = "∞" if body["max_uses"] is None else str(body["max_uses"])
        ended = f" (seq {item['ended_by']})" if item.get("ended_by") is not None else ""
        print(
            f"seq {item['entry']['seq']}  {item['status']}{ended}  {body['subject'][:16]}… → {body['grantee']}  "
            f"{scope}  {body['purpose']}  until {_short(body['valid_until'])}  used {item.get('uses') or 0}/{limit}"
        )
    print(f"{len(items)} consents; every {_proved(client)}")
    return 0


def _status_json(item: dict[str, Any]) -> dict[str, Any]:
    entry = item["entry"]
    out = {k: v for k, v in item.items() if k != "entry"}
    out.update(seq=entry["seq"], type=entry["type"], ts=entry["ts"], actor=entry["actor"], body=entry["body"])
    return out


# ---------------------------------------------------------------------------------------------------
# shulian request
# ---------------------------------------------------------------------------------------------------


@_server_call
def cmd_request(args: argparse.Namespace) -> int:
    from api.client import ClientError

    client = open_client(args)
    try:
        release = client.request(dataset=args.dataset, record=args.record, fields=args.fields, purpose=args.purpose)
    except ClientError as exc:
        reasons = exc.problem.get("reasons")
        if exc.status == 403 and isinstance(reasons, list):
            raise Denied(
                f"denied ({', '.join(str(r) for r in reasons)}); the decision is logged at seq "
                f"{exc.problem.get('decision')}"
            ) from exc
        raise
    if args.json:
        _print_json(
            {
                "outcome": "allow", "decision": release.decision_seq, "release": release.release_seq,
                "basis": release.basis, "modes": release.modes, "values": release.values,
            }
        )  # fmt: skip
        return 0
    basis = ", ".join(str(b) for b in release.basis)
    print(f"allowed: decision seq {release.decision_seq} (resting on seq {basis}), release seq {release.release_seq}")
    for name in args.fields:
        print(f"  {name} ({release.modes.get(name, '?')}): {release.values.get(name)}")
    print("opened with this key; every value checked against the record commitment on the ledger")
    return 0


# ---------------------------------------------------------------------------------------------------
# shulian dataset list | register, shulian record list | commit
# ---------------------------------------------------------------------------------------------------


@_server_call
def cmd_dataset_list(args: argparse.Namespace) -> int:
    client = open_client(args)
    items = client.datasets()
    if args.json:
        _print_json(items)
        return 0
    for d in items:
        kind = "personal" if d["personal"] else "non-personal"
        fields = ",".join(f["name"] for f in d["fields"])
        print(f"{d['dataset']}  {d['title']}  {d['level']}  {kind}  owner {d['owner']}  fields {fields}")
    print(f"{len(items)} datasets")
    return 0


@_server_call
def cmd_dataset_register(args: argparse.Namespace) -> int:
    body = _json_arg("@" + args.file)
    if not isinstance(body, dict):
        raise CommandError(f"{args.file} does not hold a JSON object")
    client = open_client(args)
    assert client.key is not None
    body.setdefault("owner", client.key.key_id)
    out = client.register_dataset(body)
    if args.json:
        _print_json({"seq": out["seq"], "body": body})
        return 0
    print(f"dataset {body.get('dataset')} registered at seq {out['seq']}")
    print(_proved(client))
    return 0


@_server_call
def cmd_record_list(args: argparse.Namespace) -> int:
    client = open_client(args)
    items = client.records(args.dataset)
    if args.json:
        _print_json(items)
        return 0
    for r in items:
        print(f"{r['dataset']}/{r['record']}  v{r['version']} (seq {r['seq']})  subject {r['subject']}")
    print(f"{len(items)} records")
    return 0


@_server_call
def cmd_record_commit(args: argparse.Namespace) -> int:
    values = _json_arg("@" + args.values)
    if not isinstance(values, dict):
        raise CommandError(f"{args.values} does not hold a JSON object of field values")
    client = open_client(args)
    latest = next((r for r in client.records(args.dataset) if r["record"] == args.record), None)
    version, replaces = (1, None) if latest is None else (latest["version"] + 1, latest["seq"])
    out = client.commit_record(
        dataset=args.dataset, record=args.record, subject=args.subject, values=values, version=version,
        replaces=replaces,
    )  # fmt: skip
    if args.json:
        _print_json({"seq": out["seq"], "version": version, "replaces": replaces})
        return 0
    print(f"record {args.dataset}/{args.record} version {version} committed at seq {out['seq']}")
    print(_proved(client))
    return 0


# ---------------------------------------------------------------------------------------------------
# shulian agreement approve | revoke | list | commitment
# ---------------------------------------------------------------------------------------------------


@_server_call
def cmd_agreement_approve(args: argparse.Namespace) -> int:
    from consent.agreement import agreement_body
    from ledger.timefmt import now

    commitment = _json_arg("@" + args.commitment) if args.commitment else None
    client = open_client(args)
    assert client.key is not None
    start = now()
    body = agreement_body(
        owner=client.key.key_id, requester=args.requester, scope=args.scope, purposes=args.purposes,
        legal_basis=args.basis, consent_required=args.consent_required, valid_from=start,
        valid_until=start + timedelta(days=args.days), commitment=commitment,
    )  # fmt: skip
    out = client.approve_agreement(body)
    if args.json:
        _print_json({"seq": out["seq"], "body": body})
        return 0
    consent = "with" if args.consent_required else "without"
    print(
        f"agreement approved at seq {out['seq']}: {args.requester} may use {_scope_text(body['scope'])} "
        f"for {'、'.join(args.purposes)} ({args.basis}, {consent} the subject's consent) "
        f"until {_short(body['valid_until'])}"
    )
    print(_proved(client))
    return 0


def _scope_text(scope: dict[str, dict[str, str]]) -> str:
    return " ".join(
        f"{ds}[{','.join(f if m == 'full' else f + '(masked)' for f, m in fields.items())}]"
        for ds, fields in scope.items()
    )


@_server_call
def cmd_agreement_revoke(args: argparse.Namespace) -> int:
    return _revoke(args, "agreement", "agreement")


@_server_call
def cmd_agreement_list(args: argparse.Namespace) -> int:
    client = open_client(args)
    items = client.agreements()
    if args.json:
        _print_json([_status_json(i) for i in items])
        return 0
    for item in items:
        body = item["entry"]["body"]
        ended = f" (seq {item['ended_by']})" if item.get("ended_by") is not None else ""
        consent = "consent required" if body["consent_required"] else "no consent needed"
        print(
            f"seq {item['entry']['seq']}  {item['status']}{ended}  {body['owner']} → {body['requester']}  "
            f"{_scope_text(body['scope'])}  {'、'.join(body['purposes'])}  {body['legal_basis']}, {consent}  "
            f"{_short(body['valid_from'])} – {_short(body['valid_until'])}"
        )
    print(f"{len(items)} agreements; every {_proved(client)}")
    return 0


def cmd_agreement_commitment(args: argparse.Namespace) -> int:
    """The requester signs its 告知承诺 offline; the owner passes the file to `agreement approve`."""
    from consent.agreement import sign_commitment

    key = signing_key(args)
    signed = sign_commitment(
        key.signing, statement=args.statement, scope=args.scope, purposes=args.purposes, requester=key.key_id
    )
    text = json.dumps(signed, ensure_ascii=False, indent=1) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"commitment signed by {key.key_id} written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------------------------------------------
# shulian usage
# ---------------------------------------------------------------------------------------------------


@_server_call
def cmd_usage(args: argparse.Namespace) -> int:
    client = open_client(args)
    entries = client.usage()
    if args.json:
        _print_json([{k: e[k] for k in ("seq", "type", "ts", "actor", "body")} for e in entries])
        return 0
    for e in entries:
        b = e["body"]
        when = _short(e["ts"])
        if e["type"] == "access.decision":
            why = f"resting on seq {', '.join(str(x) for x in b['basis'])}" if b["outcome"] == "allow" else ""
            why = why or "because " + ", ".join(b["reasons"])
            print(
                f"seq {e['seq']}  {when}  {b['outcome']:5}  {b['requester']} asked for {b['dataset']}/{b['record']}"
                f"[{','.join(b['fields'])}] for {b['purpose']}: {why}"
            )
        else:
            print(f"seq {e['seq']}  {when}  released (decision {b['decision']}); delivered sha-256 {b['delivered']}")
    print(f"{len(entries)} entries; every {_proved(client)}")
    return 0


# ---------------------------------------------------------------------------------------------------
# The parsers
# ---------------------------------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--url",
        default=os.environ.get("SHULIAN_URL", DEFAULT_URL),
        help=f"the Shulian server (default: SHULIAN_URL or {DEFAULT_URL})",
    )
    p.add_argument(
        "--keystore",
        default=os.environ.get("SHULIAN_KEYSTORE"),
        metavar="FILE",
        help="keystore of the key to sign with (default: SHULIAN_KEYSTORE)",
    )
    p.add_argument("--key", metavar="NAME", help="the key's name when the keystore holds several")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--witness",
        action="append",
        metavar="VKEY",
        help="accept only checkpoints cosigned by this witness (repeatable; default: SHULIAN_WITNESSES)",
    )
    p.add_argument("--quorum", type=_positive, metavar="K", help="cosignatures required (default: every witness)")
    return p


def add_commands(sub: Any) -> None:
    """Add the people's commands to the `shulian` subcommand parser ``sub``."""
    common = _common()

    p = sub.add_parser("keygen", help="generate a key into an encrypted keystore file")
    p.add_argument("--name", required=True, help="the key's public name (for citizens: not their real name)")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("-o", "--output", metavar="FILE", help="keystore file (default: SHULIAN_HOME/keystores/NAME.json)")
    p.add_argument("--subject", help="citizens: the subject id, when known (the admin adds it otherwise)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("consent", help="grant, revoke and list consents (citizens)")
    consent = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = consent.add_parser("grant", parents=[common], help="consent to a department's use of your data")
    q.add_argument("--grantee", required=True, metavar="KEYID", help="the department's key id")
    q.add_argument("--dataset", required=True, metavar="DS")
    q.add_argument("--fields", required=True, type=_csv, metavar="a,b")
    q.add_argument("--purpose", required=True)
    q.add_argument("--days", type=_positive, default=90, help="valid for N days from now (default 90)")
    q.add_argument("--max-uses", type=_positive, metavar="N", help="at most N uses (default: unlimited)")
    q.set_defaults(func=cmd_consent_grant)
    q = consent.add_parser("revoke", parents=[common], help="revoke a consent you gave")
    q.add_argument("seq", type=int, metavar="SEQ", help="the seq of the consent.grant")
    q.add_argument("--reason", default="本人撤回授权")
    q.set_defaults(func=cmd_consent_revoke)
    q = consent.add_parser("list", parents=[common], help="consents you gave (or, for a department, received)")
    q.set_defaults(func=cmd_consent_list)

    p = sub.add_parser("request", parents=[common], help="ask for fields of a record (departments)")
    p.add_argument("--dataset", required=True, metavar="DS")
    p.add_argument("--record", required=True, metavar="R")
    p.add_argument("--fields", required=True, type=_csv, metavar="a,b")
    p.add_argument("--purpose", required=True)
    p.set_defaults(func=cmd_request)

    p = sub.add_parser("dataset", help="the data resource catalogue")
    dataset = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = dataset.add_parser("list", parents=[common], help="list the catalogue")
    q.set_defaults(func=cmd_dataset_list)
    q = dataset.add_parser("register", parents=[common], help="register a dataset (its owner department)")
    q.add_argument("--file", required=True, metavar="FILE.json", help="the dataset.register body (owner: you)")
    q.set_defaults(func=cmd_dataset_register)

    p = sub.add_parser("record", help="records of a department's datasets")
    record = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = record.add_parser("list", parents=[common], help="records visible to you")
    q.add_argument("--dataset", metavar="DS")
    q.set_defaults(func=cmd_record_list)
    q = record.add_parser("commit", parents=[common], help="commit a record (a new version if it exists)")
    q.add_argument("--dataset", required=True, metavar="DS")
    q.add_argument("--record", required=True, metavar="R")
    q.add_argument("--subject", required=True, help="the subject id (sub:…) the record is about")
    q.add_argument("--values", required=True, metavar="FILE.json", help="the record's field values")
    q.set_defaults(func=cmd_record_commit)

    p = sub.add_parser("agreement", help="scenario sharing agreements between departments")
    agreement = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = agreement.add_parser("approve", parents=[common], help="authorise a requester (owning department)")
    q.add_argument("--requester", required=True, metavar="KEYID")
    q.add_argument(
        "--scope", required=True, type=_json_arg, metavar="JSON", help='{"ds": {"field": "full|masked"}} or @FILE'
    )
    q.add_argument("--purposes", required=True, type=_csv, metavar="a,b")
    q.add_argument("--basis", required=True, help="legal basis: 法律法规 | 履行职责 | 告知承诺 | 个人同意")
    q.add_argument("--consent-required", action="store_true", help="each subject's consent is also needed")
    q.add_argument("--days", type=_positive, default=365, help="valid for N days from now (default 365)")
    q.add_argument("--commitment", metavar="FILE", help="the requester's signed 告知承诺 (from `agreement commitment`)")
    q.set_defaults(func=cmd_agreement_approve)
    q = agreement.add_parser("revoke", parents=[common], help="revoke an agreement you approved")
    q.add_argument("seq", type=int, metavar="SEQ", help="the seq of the agreement.approve")
    q.add_argument("--reason", default="应用场景已办结")
    q.set_defaults(func=cmd_agreement_revoke)
    q = agreement.add_parser("list", parents=[common], help="agreements you are party to")
    q.set_defaults(func=cmd_agreement_list)
    q = agreement.add_parser("commitment", parents=[common], help="sign a 告知承诺 as the requester (offline)")
    q.add_argument("--scope", required=True, type=_json_arg, metavar="JSON")
    q.add_argument("--purposes", required=True, type=_csv, metavar="a,b")
    q.add_argument("--statement", required=True)
    q.add_argument("-o", "--output", metavar="FILE")
    q.set_defaults(func=cmd_agreement_commitment)

    p = sub.add_parser("usage", parents=[common], help="who used my data: decisions and releases, proofs checked")
    p.set_defaults(func=cmd_usage)

    from api.objection_cli import add_objection_commands  # it builds on this module's helpers

    add_objection_commands(sub)
