"""The log's side of witnessing: the witnesses it submits to, pushing checkpoints, serving cosignatures.

Witnesses are recorded in the ledger database (table ``witness_state``) so every replica shares them
and each witness's last cosigned size. ``push_checkpoint`` submits the newest checkpoint with the
consistency proof from that size (C2SP tlog-witness), re-reads the size from a 409 and retries once,
and stores each cosignature that verifies under the witness's key. A witness that is down or refuses
costs nothing but its cosignature: appends never wait on witnesses.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, String, Table, Text, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from api.schemas import EntryOut, Proof
from ledger import schema
from ledger.cosignature import (
    AddCheckpoint,
    CosignatureError,
    add_signatures,
    parse_signature_lines,
    parse_witness_vkey,
    verify_cosignature,
)
from ledger.errors import LedgerError, NoteError
from ledger.log import LogReader
from ledger.note import Signature, parse_checkpoint_text, parse_note
from ledger.store import Store

log = logging.getLogger("shulian.witnesses")
SIZE_TYPE = "text/x.tlog.size"
DEFAULT_TIMEOUT = 2.0

_metadata = MetaData()
witness_state = Table(
    "witness_state",
    _metadata,
    Column("vkey", String(400), primary_key=True),
    Column("url", Text, nullable=False),
    Column("last_size", BigInteger, nullable=False),
    Column("last_root", LargeBinary, nullable=False),
    Column("last_cosignature", Text, nullable=False),
)


class WitnessPushError(LedgerError):
    """A witness refused a checkpoint, answered something unusable, or could not be reached."""

    status = 502


class StaleCheckpoint(WitnessPushError):
    """The witness already cosigned a newer checkpoint of this log (pushed by another replica): nothing to do."""


@dataclass(frozen=True)
class WitnessRow:
    vkey: str
    url: str
    last_size: int
    last_root: bytes
    last_cosignature: str


def create_table(store: Store) -> None:
    """Make sure the schema, ``witness_state`` included, is at the newest migration (ledger/migrations)."""
    store.create_schema()


def add_witness(store: Store, vkey: str, url: str) -> bool:
    """Record witness ``vkey`` at ``url`` (a base URL; ``/add-checkpoint`` is appended). True if new."""
    key = parse_witness_vkey(vkey)
    if not url.startswith(("http://", "https://")):
        raise WitnessPushError(f"witness URL {url!r} is not http(s)")
    create_table(store)
    with store.writer() as conn:
        row = conn.execute(select(witness_state.c.url).where(witness_state.c.vkey == key.encode())).first()
        if row is not None:
            conn.execute(witness_state.update().where(witness_state.c.vkey == key.encode()).values(url=url))
            return False
        conn.execute(
            witness_state.insert().values(vkey=key.encode(), url=url, last_size=0, last_root=b"", last_cosignature="")
        )
    return True


def _rows(conn: Connection) -> list[WitnessRow]:
    rows = conn.execute(select(witness_state)).all()
    return [WitnessRow(r[0], r[1], int(r[2]), bytes(r[3]), r[4]) for r in rows]


def list_witnesses(store: Store) -> list[WitnessRow]:
    try:
        with store.reader() as conn:
            return _rows(conn)
    except (SQLAlchemyError, LedgerError):  # no witness table yet: no witnesses
        return []


def with_cosignatures(store: Store, size: int, note: str) -> str:
    """``note`` (the checkpoint of ``size``) with every stored cosignature of exactly that checkpoint."""
    return attach_cosignatures(list_witnesses(store), size, note)


def attach_cosignatures(rows: list[WitnessRow], size: int, note: str) -> str:
    """``note`` (the checkpoint of ``size``) with the cosignatures in ``rows`` of exactly that checkpoint."""
    witnesses = [w for w in rows if w.last_size == size and w.last_cosignature]
    if not witnesses:
        return note
    try:
        parsed = parse_note(note)
        root = parse_checkpoint_text(parsed.text).root
    except NoteError:
        return note
    extra: list[Signature] = []
    for w in witnesses:
        if w.last_root == root:
            extra.extend(parse_signature_lines(w.last_cosignature))
    return add_signatures(note, extra)


def witnessed_checkpoint(store: Store, size: int, note: str) -> tuple[int, str]:
    """The checkpoint to prove entries against: the one the most witnesses cosigned (the newest of those,
    the latest ``note`` of ``size`` on a tie), with its cosignatures; the latest when none is cosigned."""
    rows = list_witnesses(store)
    counts: dict[int, int] = {}
    for w in rows:
        if w.last_cosignature and 0 < w.last_size <= size:
            counts[w.last_size] = counts.get(w.last_size, 0) + 1
    latest = attach_cosignatures(rows, size, note)
    best = max(counts.items(), key=lambda kv: (kv[1], kv[0]), default=None)
    if best is None or best[0] == size:
        return size, latest
    with store.reader() as conn:
        older = conn.execute(select(schema.blocks.c.checkpoint).where(schema.blocks.c.tree_size == best[0])).scalar()
    if older is None:  # a size that is not a block of this log: nothing to prove against
        return size, latest
    return best[0], attach_cosignatures(rows, best[0], older)


def witnessed_entries(reader: LogReader, store: Store, entries: list[EntryOut]) -> list[EntryOut]:
    """``entries`` (proved against one checkpoint) proved instead against the witnessed checkpoint where
    it covers them, each carrying that checkpoint with its cosignatures (DESIGN §6: a client may demand
    k of n); an entry newer than the witnessed checkpoint keeps its proof and the latest checkpoint."""
    if not entries:
        return entries
    size, note = entries[0].proof.tree_size, entries[0].checkpoint
    witnessed_size, witnessed = witnessed_checkpoint(store, size, note)
    latest = attach_cosignatures(list_witnesses(store), size, note) if witnessed_size != size else witnessed
    out: list[EntryOut] = []
    for e in entries:
        if e.proof.tree_size != size:  # not proved against the same checkpoint: leave it alone
            out.append(e)
        elif witnessed_size != size and e.seq < witnessed_size:
            proof = reader.inclusion(base64.b64decode(e.leaf_hash), witnessed_size)
            hashes = [base64.b64encode(h).decode() for h in proof.hashes]
            out.append(
                e.model_copy(update={"proof": Proof(tree_size=witnessed_size, hashes=hashes), "checkpoint": witnessed})
            )
        else:
            out.append(e.model_copy(update={"checkpoint": latest}))
    return out


def witness_policy(store: Store) -> dict[str, object]:
    """The portal's k-of-n policy: every recorded witness key, and k from SHULIAN_WITNESS_QUORUM (default,
    and whenever it is not a whole number from 1 to n: all of them, the strictest)."""
    keys = [w.vkey for w in list_witnesses(store)]
    wanted = os.environ.get("SHULIAN_WITNESS_QUORUM", "").strip()
    quorum = len(keys)
    if wanted.isdigit() and 1 <= int(wanted) <= len(keys):
        quorum = int(wanted)
    elif wanted:
        log.warning("SHULIAN_WITNESS_QUORUM=%s is not between 1 and %d witnesses: requiring all", wanted, len(keys))
    return {"witnesses": keys, "quorum": quorum}


def _store(store: Store, vkey: str, size: int, root: bytes, line: str) -> None:
    with store.writer() as conn:
        conn.execute(
            witness_state.update()
            .where(witness_state.c.vkey == vkey, witness_state.c.last_size <= size)
            .values(last_size=size, last_root=root, last_cosignature=line)
        )


def _submit(http: httpx.Client, url: str, request: AddCheckpoint) -> httpx.Response:
    return http.post(
        url.rstrip("/") + "/add-checkpoint", content=request.encode(), headers={"content-type": "text/plain"}
    )


def push_one(reader: LogReader, http: httpx.Client, witness: WitnessRow, size: int, note: str) -> str:
    """Submit checkpoint ``note`` of ``size`` to ``witness``; its verified cosignature line."""
    vkey = parse_witness_vkey(witness.vkey)
    parsed = parse_note(note)
    cp = parse_checkpoint_text(parsed.text)
    old = witness.last_size if witness.last_size <= size else 0
    for attempt in range(2):
        proof = reader.consistency(old, size) if 0 < old < size else []
        response = _submit(http, witness.url, AddCheckpoint(old, tuple(proof), note))
        if (
            response.status_code == 409
            and attempt == 0
            and response.headers.get("content-type", "").startswith(SIZE_TYPE)
        ):
            text = response.text.strip()
            if text.isdigit() and size < int(text) <= reader.size():
                # another process of this log (a replica) already had a newer checkpoint cosigned
                raise StaleCheckpoint(f"{vkey.name}: already cosigned size {text}, newer than {size}")
            if not text.isdigit() or int(text) > size:
                raise WitnessPushError(f"{vkey.name}: has cosigned size {text}, beyond this log's {size}")
            old = int(text)
            continue
        if response.status_code != 200:
            raise WitnessPushError(f"{vkey.name}: {response.status_code} {response.text.strip()[:200]}")
        try:
            sigs = parse_signature_lines(response.text)
            for sig in sigs:
                if sig.name == vkey.name and sig.key_hash == vkey.hash:
                    verify_cosignature(parsed.text, sig, vkey)
                    return sig.line()
        except (NoteError, CosignatureError) as exc:
            raise WitnessPushError(f"{vkey.name}: bad cosignature: {exc}") from exc
        raise WitnessPushError(f"{vkey.name}: answered no cosignature by its key")
    raise WitnessPushError(f"{vkey.name}: refused twice with 409 (size {old}, root {cp.root.hex()[:16]}…)")


def push_checkpoint(store: Store, reader: LogReader, timeout: float = DEFAULT_TIMEOUT) -> dict[str, str | None]:
    """Push the newest checkpoint to every witness not yet holding it; ``{vkey: error or None}``."""
    witnesses = list_witnesses(store)
    if not witnesses:
        return {}
    size, note = reader.checkpoint()
    root = parse_checkpoint_text(parse_note(note).text).root
    todo = [w for w in witnesses if (w.last_size, w.last_root) != (size, root) or not w.last_cosignature]
    out: dict[str, str | None] = {w.vkey: None for w in witnesses if w not in todo}

    def one(w: WitnessRow) -> tuple[str, str | None]:
        try:
            with httpx.Client(timeout=timeout) as http:
                line = push_one(reader, http, w, size, note)
            _store(store, w.vkey, size, root, line)
        except StaleCheckpoint:
            return w.vkey, None
        except (httpx.HTTPError, LedgerError, ValueError) as exc:
            return w.vkey, str(exc) or type(exc).__name__
        return w.vkey, None

    if todo:
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            out.update(dict(pool.map(one, todo)))
    return out


class WitnessFollower:
    """A daemon thread that pushes each new checkpoint to the witnesses (and retries the lagging ones)."""

    def __init__(self, store: Store, reader: LogReader, *, interval: float = 0.2, retry: float = 5.0) -> None:
        self.store = store
        self.reader = reader
        self.interval = interval
        self.retry = retry
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="witness-follower", daemon=True)

    def start(self) -> WitnessFollower:
        try:
            create_table(self.store)
        except (SQLAlchemyError, LedgerError) as exc:
            log.warning("witness table not created: %s", exc)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        seen: tuple[int, int] | None = None
        failed_at = 0.0
        while not self._stop.is_set():
            try:
                with self.store.reader() as conn:
                    head = Store.head_position(conn)
                now = time.monotonic()
                if head is not None and (head != seen or (failed_at and now - failed_at >= self.retry)):
                    seen = head
                    results = push_checkpoint(self.store, self.reader)
                    errors = {k: v for k, v in results.items() if v}
                    for vkey, error in errors.items():
                        log.warning("witness %s: %s", vkey.split("+", 1)[0], error)
                    failed_at = now if errors else 0.0
            except Exception as exc:
                log.warning("witness push failed: %s", exc)
                failed_at = time.monotonic()
            self._stop.wait(self.interval)
