"""What the routes do, without HTTP: submit signed entries, commit records, decide and release.

Functions take the node and values and return values or raise ``LedgerError``; routes turn those
into responses. A decision and its release are made inside the writer and commit together or not at all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from api.auth import Caller, Forbidden
from api.node import Node
from api.nonces import Replayed
from api.schemas import AppendOut, EntryOut, Proof
from consent.commitment import commit_record, decode_salts, disclose_opened, encode_salts
from consent.decision import Decision, decide, decision_body
from consent.errors import InvalidBody
from consent.record import parse_record_commit
from consent.release import build_release, seal, usage_release_body
from consent.state import ConsentState
from keys.errors import KeystoreError
from ledger import sodium
from ledger.canonical import canonical_bytes
from ledger.envelope import Envelope, parse_envelope, sign_envelope
from ledger.errors import EnvelopeError, LedgerError, NotFoundError
from ledger.machine import Attach, BuildContext, Builder
from ledger.sequencer import Receipt
from ledger.store import StorageError, Store
from ledger.timefmt import format_ts, now
from ledger.tree import leaf_hash, plan_inclusion


class WrongType(LedgerError):
    status = 422
    title = "Wrong entry type for this route"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def receipt_proofs(node: Node, receipts: Sequence[Receipt]) -> list[list[bytes]]:
    """Each receipt's inclusion proof against the checkpoint in it.

    The sequencer's receipts carry the nodes of their batch (``Receipt.inclusion``), so these proofs
    need no read. Otherwise the receipt names its entry's seq and the tree size its block sealed, so
    the proof's nodes are known from those two numbers; they are read from the primary (a read
    replica may not have the block yet), all receipts' nodes in one query.
    """
    kept = [r.inclusion() for r in receipts]
    if all(proof is not None for proof in kept):
        return [proof for proof in kept if proof is not None]
    plans = [plan_inclusion(r.seq, r.tree_size) for r in receipts]
    wanted = {n for plan in plans for n in plan.nodes}
    stored: dict[tuple[int, int], bytes] = {}
    if wanted:
        try:
            with node.store.engine.connect() as conn:
                stored = Store.nodes(conn, wanted)
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc
    return [plan.assemble(stored) for plan in plans]


def append_outs(node: Node, receipts: Sequence[Receipt]) -> list[AppendOut]:
    """What the API answers for acknowledged appends: seq, leaf hash, checkpoint and inclusion proof."""
    return [
        AppendOut(
            seq=r.seq,
            leaf_hash=b64(r.leaf_hash),
            tree_size=r.tree_size,
            checkpoint=r.checkpoint,
            inclusion=[b64(h) for h in proof],
        )
        for r, proof in zip(receipts, receipt_proofs(node, receipts), strict=True)
    ]


def append_out(node: Node, receipt: Receipt) -> AppendOut:
    return append_outs(node, [receipt])[0]


def signed_by_caller(node: Node, caller: Caller, leaf: bytes, types: Iterable[str]) -> Envelope:
    """Parse ``leaf`` and require one of ``types``, signed by the caller (any key of its chain)."""
    env = parse_envelope(leaf)
    allowed = set(types)
    if env.type not in allowed:
        raise WrongType(f"this route takes {' or '.join(sorted(allowed))}, not {env.type}")
    if env.actor != caller.key_id and node.view.principal(env.actor) != caller.principal:
        raise Forbidden("the entry must be signed by the key that signs the request")
    return env


def submit(node: Node, caller: Caller, leaf: bytes, types: Iterable[str]) -> AppendOut:
    """Append a caller-signed entry of one of ``types``; the consent rules check it at commit."""
    signed_by_caller(node, caller, leaf, types)
    return append_entry(node, leaf)


@dataclass(frozen=True, slots=True)
class VaultRecord:
    """A record version's values and salts, stored in the vault by the transaction that commits its
    ``record.commit`` (so the vault holds exactly what the ledger commits to)."""

    dataset: str
    record: str
    version: int
    values: dict[str, Any]
    salts: dict[str, Any]

    def attach(self, node: Node) -> Attach:
        def store(conn: Connection, seqs: list[int]) -> None:
            node.vault.put(
                conn,
                dataset=self.dataset,
                record=self.record,
                version=self.version,
                commit_seq=seqs[0],
                values=self.values,
                salts=self.salts,
            )

        return store


def append_entry(node: Node, leaf: bytes, record: VaultRecord | None = None) -> AppendOut:
    """Append ``leaf`` (with ``record``'s values into the vault): through the writer process when
    ``serve`` runs one, so that a replica keeps one sequencer and one cached state for all its workers
    (each would replay the whole ledger on its first append, and hold a copy of the state); here when
    it cannot be reached."""
    if node.writer is not None:
        out: AppendOut | None = node.writer.call(("append", leaf, record))
        if out is not None:
            return out
    return append_out(node, node.sequencer.append(leaf, attach=record.attach(node) if record else None))


def append_entries(node: Node, items: Sequence[tuple[bytes, VaultRecord | None]]) -> list[AppendOut | LedgerError]:
    """The writer process's side of ``append_entry``: what the workers sent, committed together where
    they fit; one result each, in order."""
    results = node.sequencer.append_many(
        [leaf for leaf, _ in items], [record.attach(node) if record else None for _, record in items]
    )
    outs = iter(append_outs(node, [r for r in results if isinstance(r, Receipt)]))
    return [next(outs) if isinstance(r, Receipt) else r for r in results]


def commit_record_version(node: Node, caller: Caller, entry: dict[str, Any], values: Any, salts: Any) -> AppendOut:
    """Append a department's ``record.commit`` and store the values in the vault, in one transaction.

    The values and salts must open the commitment in the entry, so what the vault holds is exactly
    what the ledger commits to.
    """
    try:
        leaf = canonical_bytes(entry)
    except LedgerError as exc:
        raise EnvelopeError(f"entry: {exc}") from exc
    env = signed_by_caller(node, caller, leaf, ["record.commit"])
    rc = parse_record_commit(env.body)
    if not isinstance(values, dict) or not isinstance(salts, dict):
        raise InvalidBody("values and salts must be objects")
    with node.view.read() as (_, state):
        dataset = state.require_dataset(rc.dataset).dataset
    decoded = decode_salts(salts)
    made = commit_record(dataset, values, decoded)
    if made.root != rc.commitment:
        raise InvalidBody("values and salts do not open the commitment in the entry")
    record = VaultRecord(rc.dataset, rc.record, rc.version, values, encode_salts(decoded))
    return append_entry(node, leaf, record)


@dataclass
class AccessResult:
    decision: Decision
    receipts: list[Receipt]
    sealed: bytes | None = None


def request_access(
    node: Node, requester: str, request_hash: str, *, dataset: str, record: str, fields: list[str], purpose: str
) -> AccessResult:
    """Decide a department's request inside the writer; log the decision, and for an allow the release.

    Through the node's writer process when ``serve`` started one (``api.writer``); here when it did
    not, or when that process cannot be reached before the request is sent to it.
    """
    writer = node.writer
    if writer is not None:
        done = writer.access(requester, request_hash, dataset=dataset, record=record, fields=fields, purpose=purpose)
        if done is not None:
            return done
    return decide_and_release(
        node, requester, request_hash, dataset=dataset, record=record, fields=fields, purpose=purpose
    )


@dataclass(frozen=True)
class AccessAsk:
    """A department's access request as the writer decides it: who asks, the signed request's hash, what for."""

    requester: str
    request_hash: str
    dataset: str
    record: str
    fields: list[str]
    purpose: str


def decide_and_release(
    node: Node, requester: str, request_hash: str, *, dataset: str, record: str, fields: list[str], purpose: str
) -> AccessResult:
    """``request_access`` in this process: a builder that decides, and for an allow releases, in the writer."""
    done = decide_and_release_many(node, [AccessAsk(requester, request_hash, dataset, record, fields, purpose)])[0]
    if isinstance(done, LedgerError):
        raise done
    return done


def decide_and_release_many(node: Node, asks: Sequence[AccessAsk]) -> list[AccessResult | LedgerError]:
    """Decide several requests in one commit where they fit, each as its own builder: one result each, in
    order (a request refused by an error leaves the others to go on)."""
    service = node.local_key("service").signing
    made: list[dict[str, Any]] = [{} for _ in asks]
    ahead = _seal_keys_ahead(node, asks)
    builds = [
        _access_builder(node, service, ask, out, seal_key) for ask, out, seal_key in zip(asks, made, ahead, strict=True)
    ]
    results: list[AccessResult | LedgerError] = []
    for receipts, out in zip(node.sequencer.transact_many(builds), made, strict=True):
        if isinstance(receipts, LedgerError):
            results.append(receipts)
        else:
            results.append(AccessResult(out["decision"], receipts, out.get("sealed")))
    return results


def _seal_keys_ahead(node: Node, asks: Sequence[AccessAsk]) -> list[sodium.SealKey | None]:
    """Before the writer lock, for each ask the writer's cached state would allow now: the X25519 half
    of its release's sealed box, and the record version it would disclose opened into memory
    (``Vault.leaves``). An ask it would deny gets nothing: no record is opened for a request that is
    not going to be released.

    All of it rests on the writer's cached state, a guess here (another writer may commit first, and a
    process deciding on several threads may be changing it): the decision is made again inside the
    lock, the builder uses a seal key only if it is for the requester's key at the commit and reads the
    version that decision names. The lock is the one thing all writers queue for, so what can be done
    before it is.
    """
    registry, machines = node.sequencer.cached_state()
    state = next((m for m in machines if isinstance(m, ConsentState)), None)
    out: list[sodium.SealKey | None] = []
    missing = []
    at = now()
    for ask in asks:
        out.append(None)
        if state is None:
            continue
        try:
            guess = decide(
                state, registry, requester=ask.requester, dataset=ask.dataset, record=ask.record, fields=ask.fields,
                purpose=ask.purpose, at=at,
            )  # fmt: skip
            commit = state.commit(guess.record_seq) if guess.allowed else None
            key = registry.keys.get(ask.requester)
        except Exception:  # noqa: S112 - a guess, on state another thread may be changing: it never fails a request
            continue
        if commit is None or key is None or key.x25519 is None:
            continue
        try:
            out[-1] = sodium.SealKey(key.x25519)
        except (ValueError, CryptoError):  # not a usable key: the builder refuses it with its reason
            continue
        found = state.datasets.get(ask.dataset)
        if found is not None and not node.vault.has_leaves(ask.dataset, ask.record, commit.version, commit.commitment):
            missing.append((found.dataset, ask.record, commit.version, commit.commitment))
    if missing:
        try:
            with node.store.reader() as conn:
                for ds, record_id, version, commitment in missing:
                    node.vault.leaves(conn, ds, record=record_id, version=version, commitment=commitment)
        except (LedgerError, KeystoreError):  # the builder reads it again inside the writer, and says what is wrong
            pass
    return out


def _access_builder(
    node: Node, service: SigningKey, ask: AccessAsk, made: dict[str, Any], seal_key: sodium.SealKey | None = None
) -> Builder:
    """The builder deciding ``ask`` inside the writer (and for an allow, releasing); what it made goes to ``made``.

    ``seal_key`` (``_seal_keys_ahead``) seals the release if it is for the requester's key as registered
    at the commit; once only, so a build run again seals afresh."""
    requester, request_hash, dataset, record = ask.requester, ask.request_hash, ask.dataset, ask.record

    def build(ctx: BuildContext) -> list[bytes]:
        state = ctx.machines[0]
        assert isinstance(state, ConsentState)
        if state.decision_of_request(request_hash) is not None:  # the replay check of an access request
            raise Replayed("this signed request was already received (and decided); sign it afresh")
        decision = decide(
            state, ctx.registry, requester=requester, dataset=dataset, record=record, fields=ask.fields,
            purpose=ask.purpose, at=ctx.time,
        )  # fmt: skip
        made["decision"] = decision
        made.pop("sealed", None)
        ts = format_ts(ctx.time)
        body = decision_body(
            decision, request=request_hash, requester=requester, dataset=dataset, record=record,
            fields=ask.fields, purpose=ask.purpose,
        )  # fmt: skip
        leaves = [sign_envelope(service, "access.decision", body, ts=ts)]
        if not decision.allowed:
            return leaves
        commit = state.commit(decision.record_seq)
        if commit is None:  # pragma: no cover - decide() found the record
            raise NotFoundError(f"record {dataset}/{record} has no commit")
        ds = state.require_dataset(dataset).dataset
        opened = node.vault.leaves(ctx.conn, ds, record=record, version=commit.version, commitment=commit.commitment)
        items = disclose_opened(ds, opened, decision.modes)
        payload = build_release(
            ctx.next_seq, decision.record_seq, dataset, record, decision.subject, commit.commitment, items
        )
        key = ctx.registry.keys[requester]
        if key.x25519 is None:
            raise Forbidden("the requesting key has no X25519 key to seal a release to")
        sealed = seal(payload, key.x25519, ahead=seal_key)
        made["sealed"] = sealed
        release = usage_release_body(
            decision=ctx.next_seq, requester=requester, record_seq=decision.record_seq, sealed=sealed
        )
        leaves.append(sign_envelope(service, "usage.release", release, ts=ts))
        return leaves

    return build


def proven_entries(node: Node, seqs: Iterable[int]) -> list[EntryOut]:
    """Entries by seq with inclusion proofs against the latest checkpoint (one read of each)."""
    wanted = list(seqs)
    if not wanted:
        return []
    size, checkpoint = node.reader.checkpoint()
    with node.store.sealed_reader(size) as (conn, _):  # the read replica when it holds them
        leaves = Store.entries_by_seq(conn, wanted)
    out: list[EntryOut] = []
    for seq in wanted:
        leaf = leaves.get(seq)
        if leaf is None or seq >= size:
            continue
        env = parse_envelope(leaf)
        h = leaf_hash(leaf)
        proof = node.reader.inclusion(h, size)
        out.append(
            EntryOut(
                seq=seq,
                type=env.type,
                ts=env.ts,
                actor=env.actor,
                body=json.loads(canonical_bytes(env.body)),
                leaf=b64(leaf),
                leaf_hash=b64(h),
                proof=Proof(tree_size=size, hashes=[b64(x) for x in proof.hashes]),
                checkpoint=checkpoint,
            )
        )
    return out
