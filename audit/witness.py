"""A C2SP tlog-witness: ``POST /add-checkpoint`` cosigns a log's checkpoint only when it extends the last one.

The witness keeps, per log origin, the size and root it last cosigned in its own SQLite database under
``SHULIAN_HOME/witness/``. Each request is checked and stored in one ``BEGIN IMMEDIATE`` transaction
that commits before the answer is sent, so two concurrent requests can never both extend the same
size, and a restart loses nothing it has answered. Status codes are those of DESIGN §6.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import nacl.signing

from audit.errors import AuditError
from keys.keystore import StoredKey, home, load_key, save_keystore
from ledger.cosignature import AddCheckpointError, cosign, parse_add_checkpoint, witness_vkey
from ledger.errors import LedgerError, NoteError, ProofError
from ledger.note import VerifierKey, parse_checkpoint_text, parse_note, verify_checkpoint
from ledger.tree import verify_consistency

SIZE_TYPE = "text/x.tlog.size"
MAX_BODY = 64 * 1024


class WitnessRefusal(AuditError):
    """A request the witness refuses, with its HTTP status; ``size`` is set for a 409."""

    def __init__(self, status: int, message: str, *, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.size = size


def witness_dir(base: Path | None = None) -> Path:
    return (base or home()) / "witness"


def key_path(base: Path | None = None) -> Path:
    return witness_dir(base) / "witness-key.json"


def init_witness(name: str, base: Path | None = None) -> tuple[VerifierKey, bool]:
    """Create the witness key called ``name`` (idempotent); its verifier key and whether it was created."""
    path = key_path(base)
    if path.exists():
        key = load_key(path)
        if key.name != name:
            raise WitnessRefusal(409, f"this witness is already called {key.name}, not {name}")
        return witness_vkey(key.name, key.signing), False
    witness_vkey(name, nacl.signing.SigningKey.generate())  # check the name before writing anything
    key = StoredKey.generate(name, role="witness")
    save_keystore(path, [key])
    return witness_vkey(key.name, key.signing), True


def load_witness_key(base: Path | None = None) -> StoredKey:
    path = key_path(base)
    if not path.exists():
        raise WitnessRefusal(404, f"no witness key at {path} (run `shulian witness init --name NAME`)")
    return load_key(path)


class Witness:
    """The witness's decision and its state; no HTTP here."""

    def __init__(self, key: StoredKey, log_keys: list[VerifierKey], db_path: Path) -> None:
        self.key = key
        self.name = key.name
        self.vkey = witness_vkey(key.name, key.signing)
        self.logs: dict[str, list[VerifierKey]] = {}
        for k in log_keys:
            self.logs.setdefault(k.name, []).append(k)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS witness_log ("
                "origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL)"
            )

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        row = self._conn().execute("SELECT size, root FROM witness_log WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def add_checkpoint(self, body: bytes) -> str:
        """Decide on one add-checkpoint request; the cosignature line, or ``WitnessRefusal``."""
        try:
            req = parse_add_checkpoint(body)
            note = parse_note(req.note)
            cp = parse_checkpoint_text(note.text)
        except (AddCheckpointError, NoteError) as exc:
            raise WitnessRefusal(400, str(exc)) from exc
        keys = self.logs.get(cp.origin)
        if not keys:
            raise WitnessRefusal(404, f"unknown log origin {cp.origin!r}")
        if not any(_verifies(req.note, k) for k in keys):
            raise WitnessRefusal(403, f"no signature by a trusted key of {cp.origin} verifies")
        if req.old > cp.size:
            raise WitnessRefusal(400, f"old size {req.old} is larger than the checkpoint's {cp.size}")
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT size, root FROM witness_log WHERE origin = ?", (cp.origin,)).fetchone()
            size, root = (0, b"") if row is None else (int(row[0]), bytes(row[1]))
            if req.old != size:
                raise WitnessRefusal(409, f"old size {req.old} is not the last cosigned size {size}", size=size)
            if req.old == cp.size and size > 0 and root != cp.root:
                raise WitnessRefusal(409, f"checkpoint of size {size} has another root than cosigned", size=size)
            if req.old == 0:
                if req.proof:
                    raise WitnessRefusal(422, "a proof from size 0 must be empty")
            else:
                try:
                    verify_consistency(req.old, cp.size, root, cp.root, list(req.proof))
                except (ProofError, LedgerError) as exc:
                    raise WitnessRefusal(422, f"consistency proof does not verify: {exc}") from exc
            sig = cosign(note.text, self.name, self.key.signing, int(time.time()))
            conn.execute(
                "INSERT INTO witness_log (origin, size, root, note) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note",
                (cp.origin, cp.size, cp.root, req.note),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return sig.line()


def _verifies(note: str, key: VerifierKey) -> bool:
    try:
        verify_checkpoint(note, key)
    except NoteError:
        return False
    return True


def create_witness_app(witness: Witness) -> object:
    """A Starlette app serving ``POST /add-checkpoint`` for ``witness``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    async def add_checkpoint(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("request body too large\n", status_code=413)
        try:
            line = await run_in_threadpool(witness.add_checkpoint, body)
        except WitnessRefusal as exc:
            if exc.status == 409 and exc.size is not None:
                return Response(f"{exc.size}\n", status_code=409, media_type=SIZE_TYPE)
            return PlainTextResponse(f"{exc}\n", status_code=exc.status)
        return PlainTextResponse(line)

    async def key(_request: Request) -> Response:
        return PlainTextResponse(witness.vkey.encode() + "\n")

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"]), Route("/key", key)])
