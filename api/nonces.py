"""The register of request nonces already seen, shared by every API worker and replica.

On PostgreSQL it is a table of the ledger's database (row inserts do not wait for the ledger's
writer lock). On SQLite it is a sibling database file, so that remembering a nonce never queues
behind a ledger commit: SQLite has one writer per file. Nonces are kept for twice the allowed clock
skew; after that a request carrying one is refused as stale anyway.

Each process remembers the nonces it has seen in memory too, so a replay to the same process is
refused without a database round trip. A new nonce is written before its request goes on: the
nonces of requests arriving together are inserted by one transaction (group commit, one statement,
``ON CONFLICT DO NOTHING RETURNING``), and a nonce the database already held — seen by another worker
or replica, or before a restart — is a replay. Nobody is answered before the transaction holding
their nonce has committed.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Sequence

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from api import tables
from api.httpsig import MAX_SKEW
from ledger.errors import LedgerError
from ledger.store import StorageError, Store, make_engine, sqlite_wal

# Nonces per insert statement (at most: those waiting when the previous transaction committed).
MAX_BATCH = 1000
# Nonces kept in memory beyond which the expired ones are dropped.
MEMORY_SWEEP = 50_000
TABLE = tables.request_nonces.name


class Replayed(LedgerError):
    status = 401
    title = "Request replayed"


def _replayed() -> Replayed:
    return Replayed("this signed request was already received (nonce reused); sign it afresh")


def _sqlite_nonce_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    sqlite_wal(cur, 10000)  # workers creating the file together (ledger.store.sqlite_wal)
    cur.execute("PRAGMA synchronous=NORMAL")  # a lost nonce after a power cut allows no write twice
    cur.close()


class _Ask:
    __slots__ = ("created", "done", "error", "key_id", "nonce")

    def __init__(self, nonce: str, key_id: str, created: int) -> None:
        self.nonce = nonce
        self.key_id = key_id
        self.created = created
        self.done = False
        self.error: LedgerError | None = None


class NonceRegister:
    def __init__(self, store: Store) -> None:
        self.engine: Engine
        if store.is_sqlite:
            url = make_url(store.url)
            database = url.database or ""
            if database in ("", ":memory:"):
                self.engine = store.engine
            else:
                self.engine = create_engine(
                    url.set(database=database + ".nonces"),
                    connect_args={"check_same_thread": False, "timeout": 10},
                    pool_size=2,
                    max_overflow=8,
                )
                event.listen(self.engine, "connect", _sqlite_nonce_pragmas)
        else:
            # Its own engine without a pre-ping: a connection the server dropped fails on the insert,
            # before anything is written, and the insert is retried once on a fresh one.
            self.engine = make_engine(store.url, writer=True, pool_size=2)
        self._ready = False
        self._cv = threading.Condition()
        self._queue: list[_Ask] = []
        self._leader = False
        self._seen: dict[str, int] = {}  # nonce -> created, for the nonces this process has had
        self._sweep_at = MEMORY_SWEEP
        self._purged_at = 0

    def _create(self) -> None:
        if self._ready:
            return
        try:
            tables.request_nonces.create(self.engine, checkfirst=True)
        except DBAPIError:
            if not inspect(self.engine).has_table(TABLE):  # not another worker creating it meanwhile
                raise
        self._ready = True

    def remember(self, nonce: str, key_id: str, created: int) -> None:
        """Record a nonce once, durably and for every worker; a second use is a replay (``Replayed``)."""
        ask = _Ask(nonce, key_id, created)
        with self._cv:
            if nonce in self._seen:
                raise _replayed()
            self._seen[nonce] = created
            self._queue.append(ask)
            while not ask.done and self._leader:
                self._cv.wait()
            lead = not ask.done
            if lead:
                self._leader = True
        if lead:
            self._lead()
        if ask.error is not None:
            raise ask.error

    def _lead(self) -> None:
        """Insert everything waiting in one transaction, answer it, and give the lead up."""
        with self._cv:
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
        try:
            fresh = self._insert(batch)
            for ask in batch:
                if ask.nonce not in fresh:
                    ask.error = _replayed()
        except LedgerError as exc:
            for ask in batch:
                ask.error = exc
        except Exception as exc:
            failure = StorageError(f"nonce register unavailable: {exc}")
            for ask in batch:
                ask.error = failure
            raise
        finally:
            with self._cv:
                for ask in batch:
                    ask.done = True
                    if isinstance(ask.error, StorageError):  # never recorded: the same request may come again
                        self._seen.pop(ask.nonce, None)
                if len(self._seen) > self._sweep_at:
                    oldest = int(time.time()) - 2 * MAX_SKEW
                    self._seen = {n: c for n, c in self._seen.items() if c >= oldest}
                    self._sweep_at = max(MEMORY_SWEEP, 2 * len(self._seen))
                self._leader = False
                self._cv.notify_all()

    def _insert(self, batch: Sequence[_Ask]) -> set[str]:
        """The nonces of ``batch`` that were not in the database (now they are), in one transaction."""
        now = int(time.time())
        purge = now // 64 != self._purged_at // 64
        for attempt in (0, 1):
            try:
                self._create()
                with self.engine.begin() as conn:
                    fresh = _insert_new(conn, batch)
                    if purge:
                        sql = f"DELETE FROM {TABLE} WHERE created < {now - 2 * MAX_SKEW}"  # noqa: S608 (an int)
                        conn.exec_driver_sql(sql)
                if purge:
                    self._purged_at = now
                return fresh
            except DBAPIError as exc:
                if attempt == 0 and exc.connection_invalidated:
                    continue
                if isinstance(exc, OperationalError) or exc.connection_invalidated:
                    raise StorageError(f"nonce register unavailable: {exc.orig}") from exc
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.engine.dispose()


def _insert_new(conn: Connection, batch: Sequence[_Ask]) -> set[str]:
    if conn.dialect.name == "sqlite":
        params = tuple(v for a in batch for v in (a.nonce, a.key_id, a.created))
        rows = conn.exec_driver_sql(_sqlite_insert(len(batch)), params).all()
    else:
        arrays = ([a.nonce for a in batch], [a.key_id for a in batch], [a.created for a in batch])
        rows = conn.exec_driver_sql(_PG_INSERT, arrays).all()
    return {r[0] for r in rows}


@functools.lru_cache(maxsize=128)
def _sqlite_insert(count: int) -> str:
    values = ", ".join(["(?, ?, ?)"] * count)
    return (
        f"INSERT INTO {TABLE} (nonce, key_id, created) VALUES {values}"  # noqa: S608 (constants only)
        " ON CONFLICT (nonce) DO NOTHING RETURNING nonce"
    )


_PG_INSERT = (
    f"INSERT INTO {TABLE} (nonce, key_id, created)"  # noqa: S608 (constants only)
    " SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[])"
    " ON CONFLICT (nonce) DO NOTHING RETURNING nonce"
)
