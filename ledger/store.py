"""Ledger storage on SQLite (embedded) or PostgreSQL, through SQLAlchemy Core on the hot paths.

Writes happen only in ``writer()``: one writer at a time across processes (SQLite ``BEGIN
IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``). Reads never take the writer lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine, RootTransaction, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool, PoolProxiedConnection, QueuePool
from sqlalchemy.schema import Table

from ledger import schema
from ledger.block import BlockHeader, parse_header
from ledger.errors import LedgerError
from ledger.tree import Node

WRITER_LOCK_ID = 0x5348554C49414E  # "SHULIAN"
_log = logging.getLogger("shulian.store")
DEFAULT_DB = "sqlite:///var/shulian.db"


class StorageError(LedgerError):
    """The database could not be reached or refused a statement."""

    status = 503
    title = "Database unavailable"


class StorageConflict(StorageError):
    """``insert_rows``: a row clashes with one already stored (a key or a unique value)."""


class HeadRow(NamedTuple):
    """The newest block's row: its position, and its header JSON and checkpoint, parsed on demand."""

    height: int
    tree_size: int
    header: str
    checkpoint: str

    @property
    def position(self) -> tuple[int, int]:
        return self.height, self.tree_size

    def parsed(self) -> tuple[BlockHeader, str]:
        return parse_header(json.loads(self.header)), self.checkpoint


def sqlite_wal(cur: Any, busy_timeout_ms: int) -> None:
    """Set the connection's busy timeout, then WAL journaling.

    Connections switching a new file to WAL together get "database is locked" at once, without the
    busy handler's wait (each holds a shared lock and wants the exclusive one: SQLite refuses rather
    than deadlock), seen in 7 of 30 trials of 8 threads opening a new file; two workers creating the
    nonce register's file met it. The switch is retried, for up to the busy timeout.
    """
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = threading.Event()
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            pause.wait(0.005)  # not time.sleep: it fails under libfaketime with a shifted clock


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
    cur = dbapi_conn.cursor()
    sqlite_wal(cur, 60000)
    cur.execute("PRAGMA synchronous=FULL")  # an acknowledged append survives power loss (NORMAL would not)
    # Checkpoint the WAL every ~40 MB rather than every 4 MB: fewer copy-backs on the commit path;
    # durability is unchanged (every commit is already synced in the WAL).
    cur.execute("PRAGMA wal_autocheckpoint=10000")
    cur.close()


def _sqlite_read_only_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
    dbapi_conn.execute("PRAGMA busy_timeout=60000")


def _remember_pid(_dbapi_conn: Any, record: Any) -> None:
    record.info["pid"] = os.getpid()


def _refuse_other_pid(_dbapi_conn: Any, record: Any, proxy: Any) -> None:
    """A pooled connection inherited through fork belongs to the parent: drop it, never use it."""
    if record.info["pid"] != os.getpid():
        record.dbapi_connection = proxy.dbapi_connection = None
        raise DisconnectionError(f"connection made in process {record.info['pid']}, checked out in {os.getpid()}")


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """PostgreSQL connection pool of each engine (per process): from SHULIAN_DB_POOL_* (see README)."""

    size: int = 5  # SHULIAN_DB_POOL_SIZE: connections kept open
    overflow: int = 10  # SHULIAN_DB_POOL_OVERFLOW: more opened under load, closed when returned
    timeout: float = 30.0  # SHULIAN_DB_POOL_TIMEOUT: seconds to wait for a connection, then 503
    recycle: int = 1800  # SHULIAN_DB_POOL_RECYCLE: seconds before a connection is replaced (-1: never)
    pre_ping: bool = True  # SHULIAN_DB_POOL_PRE_PING: test a connection at checkout (not the writer's)


def pool_settings(environ: Mapping[str, str] | None = None) -> PoolSettings:
    """The pool settings from the environment; a malformed value is a ``StorageError`` naming it."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, kind, low in (("size", int, 1), ("overflow", int, 0), ("timeout", float, 0), ("recycle", int, -1)):
        raw = env.get(f"SHULIAN_DB_POOL_{name.upper()}")
        if raw is None or raw == "":
            continue
        try:
            value = kind(raw)
        except ValueError:
            value = None
        if value is None or value < low:
            raise StorageError(f"SHULIAN_DB_POOL_{name.upper()}={raw!r}: expected a number >= {low}")
        out[name] = value
    ping = env.get("SHULIAN_DB_POOL_PRE_PING", "").strip().lower()
    if ping:
        if ping not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise StorageError(f"SHULIAN_DB_POOL_PRE_PING={ping!r}: expected true or false")
        out["pre_ping"] = ping in ("1", "true", "yes", "on")
    return PoolSettings(**out)


SQLITE_POOL_SIZE = 16


def make_engine(url: str, *, writer: bool = False, pool_size: int | None = None) -> Engine:
    """An engine for ``url``; for SQLite a ``writer`` engine begins every transaction IMMEDIATE.

    PostgreSQL engines pool connections as ``pool_settings()`` says (``pool_size`` overrides the size).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)  # not for a URI (file:…?mode=ro)
        # A statement cache above the default 128: the append path's multi-row inserts have one
        # statement per batch size seen.
        args: dict[str, Any] = {"check_same_thread": False, "timeout": 60, "cached_statements": 512}
        if parsed.database and parsed.database != ":memory:":
            # Keep connections open: opening one costs a schema read and the pragmas, and closing
            # the last one checkpoints and deletes the WAL, which cost milliseconds per commit. Room
            # for every request thread of a busy worker: an overflow connection is closed on return.
            size = SQLITE_POOL_SIZE if pool_size is None else pool_size
            engine = create_engine(url, connect_args=args, poolclass=QueuePool, pool_size=size, max_overflow=10)
            event.listen(engine, "connect", _remember_pid)
            event.listen(engine, "checkout", _refuse_other_pid)
        else:
            engine = create_engine(url, connect_args=args, poolclass=NullPool)
        read_only = parsed.query.get("mode") == "ro"  # a read-only URI (a replica copy): no WAL switch
        event.listen(engine, "connect", _sqlite_read_only_pragmas if read_only else _sqlite_pragmas)
        begin = "BEGIN IMMEDIATE" if writer else "BEGIN"
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(begin))
        return engine
    if parsed.get_backend_name() == "postgresql":
        # A writer engine pings nothing: its transaction's first statement (the advisory lock) is
        # the liveness check, retried once on a fresh connection (see ``Store.writer``).
        pool = pool_settings()
        return create_engine(
            url,
            pool_size=pool.size if pool_size is None else pool_size,
            max_overflow=pool.overflow,
            pool_timeout=pool.timeout,
            pool_recycle=pool.recycle,
            pool_pre_ping=pool.pre_ping and not writer,
        )
    raise StorageError(f"unsupported database URL {parsed.get_backend_name()!r}: use sqlite or postgresql")


class Store:
    """The ledger's tables behind a small set of reads and one writer transaction."""

    def __init__(self, url: str | None = None, *, read_url: str | None = None) -> None:
        self.url = url or os.environ.get("SHULIAN_DB") or DEFAULT_DB
        self.engine = make_engine(self.url)
        self.write_engine = make_engine(self.url, writer=True, pool_size=1) if self.is_sqlite else self.engine
        # writer()'s own engine: on PostgreSQL without pre-ping (see _begin_writer).
        self._writer_engine = self.write_engine if self.is_sqlite else make_engine(self.url, writer=True, pool_size=1)
        read = read_url or os.environ.get("SHULIAN_DB_READ")
        self.read_engine = make_engine(read) if read else self.engine
        self._replica_ok: bool | None = None  # whether SHULIAN_DB_READ holds this ledger (checked once)
        self._probe: tuple[int, PoolProxiedConnection] | None = None  # (pid, connection): see seqs_committed
        database = self.engine.url.database if self.is_sqlite else None
        self._gate_path = f"{database}-writer.lock" if database and database != ":memory:" else None
        self._gate: tuple[int, threading.Lock, int] | None = None  # (pid, lock, descriptor): see _writer_gate

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        self._close_probe()
        gate, self._gate = self._gate, None
        if gate is not None and gate[0] == os.getpid():
            os.close(gate[2])
        for engine in {self.engine, self.write_engine, self._writer_engine, self.read_engine}:
            engine.dispose()

    def seqs_committed(self, hashes: list[bytes]) -> dict[bytes, int]:
        """``seqs_of_hashes`` over what is committed, outside any transaction (for one caller at a time).

        The sequencer looks up duplicates here before its transaction, once per commit: on a primary
        connection kept for it in autocommit, one statement and no BEGIN, ROLLBACK, pool checkout or
        ping around it (each a GIL release the committing thread queues behind, or a round trip).
        """
        stale = self._probe is not None and self._probe[0] == os.getpid()
        try:
            return self._lookup_committed(hashes)
        except StorageError as exc:
            if not stale or not isinstance(exc.__cause__, self.engine.dialect.loaded_dbapi.OperationalError):
                raise
        # The kept connection had been closed while idle (the server restarted or ended the session, an
        # idle timeout): once more, on a new one. A read, so nothing is done twice.
        return self._lookup_committed(hashes)

    def _lookup_committed(self, hashes: list[bytes]) -> dict[bytes, int]:
        probe = self._probe
        if probe is None or probe[0] != os.getpid():  # never a connection inherited through fork
            if probe is not None:
                # The parent's: never close it here (closing a PostgreSQL connection from the child
                # would end the parent's session); keep it referenced so nothing finalizes it.
                _INHERITED.append(probe[1])
            try:
                raw = self.engine.raw_connection()
            except self.engine.dialect.loaded_dbapi.Error as exc:  # the pool's connect does not wrap it
                raise StorageError(f"database unavailable: {exc}") from exc
            if not self.is_sqlite:  # SQLite connections already run without implicit transactions
                raw.rollback()
                raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            raw.detach()  # ours until close(); closing it closes the connection
            probe = self._probe = (os.getpid(), raw)
        mark = "?" if self.is_sqlite else "%s"
        out: dict[bytes, int] = {}
        try:
            cur = probe[1].cursor()
            try:
                for sql, params in _hashes_queries(mark, hashes):
                    cur.execute(sql, params)
                    out.update({bytes(r[0]): r[1] for r in cur.fetchall()})
            finally:
                cur.close()
        except Exception as exc:
            self._close_probe()
            if isinstance(exc, self.engine.dialect.loaded_dbapi.Error):
                raise StorageError(f"database unavailable: {exc}") from exc
            raise
        return out

    def _close_probe(self) -> None:
        probe, self._probe = self._probe, None
        if probe is None:
            return
        if probe[0] != os.getpid():
            _INHERITED.append(probe[1])
            return
        with contextlib.suppress(Exception):  # closing a broken connection: nothing more to do
            probe[1].close()

    def create_schema(self) -> None:
        """Create or upgrade the schema to the newest migration (once, however many processes ask)."""
        from ledger import migrate

        migrate.upgrade(self.write_engine)

    @contextmanager
    def writer(self, *, recent_from: int | None = None) -> Iterator[Connection]:
        """A transaction holding the single-writer lock; commits on exit, rolls back on error.

        ``recent_from``: PostgreSQL also reads the entries from that seq on (up to ``RECENT_LIMIT``) in the
        lock's round trip, for ``Store.locked_recent``: what other writers committed since a cache.
        """
        try:
            with self._writer_gate():
                conn, transaction = self._begin_writer(recent_from)
                with conn, transaction:
                    yield conn
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc

    @contextmanager
    def _writer_gate(self) -> Iterator[None]:
        """SQLite file: queue for the writer on a lock that wakes the next writer as soon as it is free.

        ``BEGIN IMMEDIATE`` alone waits in SQLite's busy handler, which polls with sleeps of up to
        100 ms: a writer released meanwhile leaves the database idle. Writers therefore first take an
        in-process lock, then ``flock`` on ``<database>-writer.lock`` (other processes); both are
        released right after COMMIT or ROLLBACK, and the kernel releases the ``flock`` of a killed
        process. ``BEGIN IMMEDIATE`` stays the lock that matters: a writer that skips this gate is
        still excluded by SQLite, only woken later. PostgreSQL's advisory lock already wakes at once.
        """
        path = self._gate_path
        if path is None:
            yield
            return
        gate = self._gate
        if gate is None or gate[0] != os.getpid():  # never a lock or descriptor inherited through fork
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            gate = self._gate = (os.getpid(), threading.Lock(), fd)
        _pid, lock, fd = gate
        with lock:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks without the GIL
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _begin_writer(self, recent_from: int | None = None) -> tuple[Connection, RootTransaction]:
        """Begin the writer transaction. PostgreSQL: the advisory lock is also the liveness check that
        a pool pre-ping would make (one round trip less per commit); a connection the server dropped
        fails there, before anything is written, and is replaced once."""
        for attempt in (0, 1):
            conn = self._writer_engine.connect()
            try:
                transaction = conn.begin()  # SQLite: BEGIN IMMEDIATE (the engine's begin event)
                if not self.is_sqlite:
                    conn.info[_LOCKED_HEAD], recent = _lock_and_read_head(conn, recent_from)
                    conn.info[_LOCKED_RECENT] = recent
            except DBAPIError as exc:
                conn.close()
                if attempt == 0 and exc.connection_invalidated:
                    continue
                raise
            return conn, transaction
        raise AssertionError("unreachable")

    @contextmanager
    def reader(self) -> Iterator[Connection]:
        """A connection to the primary database (current state)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StorageError(f"database unavailable: {exc.orig}") from exc

    @contextmanager
    def sealed_reader(
        self, need: int | None = None, *, by_height: bool = False
    ) -> Iterator[tuple[Connection, tuple[int, int] | None]]:
        """A connection for sealed state (entries, tree nodes, blocks: rows never change once written),
        and the primary's newest block as (height, tree_size) (None before the first).

        With a read replica (SHULIAN_DB_READ) the connection is the replica's when the replica has
        sealed at least ``need`` entries (``by_height``: blocks up to height ``need``), counted no
        further than the primary has sealed (default: all of it); otherwise it is the primary's. A
        replica that lags, is down, or holds another ledger never answers: the primary does.
        """
        if self.read_engine is self.engine:
            with self.reader() as conn:
                yield conn, Store.head_position(conn)
            return
        with self.reader() as conn:
            head = Store.head_position(conn)
        replica = self._replica_holding(head, need, by_height) if head is not None else None
        if replica is None:
            with self.reader() as conn:
                yield conn, head
            return
        try:
            with replica:
                yield replica, head
        except OperationalError as exc:
            raise StorageError(f"read replica unavailable: {exc.orig}") from exc

    def _replica_holding(self, head: tuple[int, int], need: int | None, by_height: bool) -> Connection | None:
        """An open replica connection if the replica holds what is needed, else None."""
        limit = head[0] if by_height else head[1]
        need = limit if need is None else min(need, limit)
        try:
            conn = self.read_engine.connect()
        except DBAPIError as exc:
            _log.warning("read replica unavailable, reading the primary: %s", exc.orig)
            return None
        try:
            if self._replica_ok is None:
                self._replica_ok = self._same_ledger(conn)
            there = Store.head_position(conn) if self._replica_ok else None
        except DBAPIError as exc:
            conn.close()
            _log.warning("read replica unavailable, reading the primary: %s", exc.orig)
            return None
        if there is None or (there[0] if by_height else there[1]) < need:
            conn.close()
            return None
        return conn

    def _same_ledger(self, replica: Connection) -> bool | None:
        """Whether the replica holds this ledger (same origin and log key); None while either is empty."""
        with self.reader() as conn:
            mine = Store.meta(conn)
        theirs = Store.meta(replica)
        if not mine or not theirs:
            return None
        if (mine.get("origin"), mine.get("log_key")) != (theirs.get("origin"), theirs.get("log_key")):
            _log.error("SHULIAN_DB_READ holds another ledger (origin %s); reading the primary", theirs.get("origin"))
            return False
        return True

    # -- reads usable inside or outside the writer transaction ---------------------------------
    @staticmethod
    def meta(conn: Connection) -> dict[str, str]:
        rows = conn.execute(select(schema.meta.c.name, schema.meta.c.value)).all()
        return {r[0]: r[1] for r in rows}

    @staticmethod
    def head(conn: Connection) -> tuple[BlockHeader, str] | None:
        """The newest block's header and checkpoint, or None before the first block."""
        row = _head_row(conn.exec_driver_sql(_HEAD_ROW).first())
        return None if row is None else row.parsed()

    @staticmethod
    def locked_head(conn: Connection) -> HeadRow | None:
        """In the writer transaction: the newest block as it stood when the writer lock was granted.

        PostgreSQL reads it in the lock's round trip (``Store.writer``); asked again, or on SQLite (in
        process, under ``BEGIN IMMEDIATE``), it is read now.
        """
        if _LOCKED_HEAD in conn.info:
            found: HeadRow | None = conn.info.pop(_LOCKED_HEAD)
            return found
        return _head_row(conn.exec_driver_sql(_HEAD_ROW).first())

    @staticmethod
    def locked_recent(conn: Connection) -> list[tuple[int, bytes, bytes]] | None:
        """In a PostgreSQL writer transaction begun with ``recent_from``: the entries (seq, leaf, leaf hash)
        from that seq on, in order, read with the lock (at most ``RECENT_LIMIT``); None otherwise."""
        found: list[tuple[int, bytes, bytes]] | None = conn.info.pop(_LOCKED_RECENT, None)
        return found

    @staticmethod
    def head_position(conn: Connection) -> tuple[int, int] | None:
        """(height, tree_size) of the newest block, or None before the first: the cheap check for a new head."""
        row = conn.exec_driver_sql(_HEAD_POSITION).first()
        return None if row is None else (int(row[0]), int(row[1]))

    @staticmethod
    def nodes(conn: Connection, wanted: Iterable[Node]) -> dict[Node, bytes]:
        keys = sorted(set(wanted))
        if not keys:
            return {}
        out: dict[Node, bytes] = {}
        mark = "?" if conn.dialect.name == "sqlite" else "%s"
        for i in range(0, len(keys), 200):
            chunk = keys[i : i + 200]
            # An OR of primary-key equalities: SQLite answers it with one index search per node,
            # where a row-value IN list makes it scan the whole table (O(n) per proof).
            where = " OR ".join([f"(level = {mark} AND idx = {mark})"] * len(chunk))
            params = tuple(v for key in chunk for v in key)
            sql = f"SELECT level, idx, hash FROM {schema.tree_nodes.name} WHERE {where}"  # noqa: S608 (constants only)
            rows = conn.exec_driver_sql(sql, params)
            out.update({(r[0], r[1]): bytes(r[2]) for r in rows})
        missing = [k for k in keys if k not in out]
        if missing:
            raise LedgerError(f"tree node {missing[0]} missing from storage")
        return out

    @staticmethod
    def seqs_of_hashes(conn: Connection, hashes: list[bytes]) -> dict[bytes, int]:
        """``{leaf hash: seq}`` for those of ``hashes`` already on the ledger (one index search each)."""
        out: dict[bytes, int] = {}
        if not hashes:
            return out
        mark = "?" if conn.dialect.name == "sqlite" else "%s"
        for sql, params in _hashes_queries(mark, hashes):
            rows = conn.exec_driver_sql(sql, params).all()
            out.update({bytes(r[0]): r[1] for r in rows})
        return out

    @staticmethod
    def entries_of_types(conn: Connection, types: Iterable[str], after: int) -> list[tuple[int, bytes]]:
        e = schema.entries
        rows = conn.execute(
            select(e.c.seq, e.c.leaf).where(e.c.type.in_(list(types)), e.c.seq >= after).order_by(e.c.seq)
        ).all()
        return [(r[0], bytes(r[1])) for r in rows]

    @staticmethod
    def entries_between(conn: Connection, start: int, end: int, chunk: int = 5000) -> Iterator[tuple[int, bytes]]:
        """Entries with start <= seq < end, in order, read in chunks."""
        e = schema.entries
        pos = start
        while pos < end:
            rows = conn.execute(
                select(e.c.seq, e.c.leaf).where(e.c.seq >= pos, e.c.seq < end).order_by(e.c.seq).limit(chunk)
            ).all()
            if not rows:
                return
            for seq, leaf in rows:
                yield seq, bytes(leaf)
            pos = rows[-1][0] + 1

    @staticmethod
    def entries_by_seq(conn: Connection, seqs: Iterable[int]) -> dict[int, bytes]:
        e = schema.entries
        wanted = sorted(set(seqs))
        out: dict[int, bytes] = {}
        for i in range(0, len(wanted), 500):
            rows = conn.execute(select(e.c.seq, e.c.leaf).where(e.c.seq.in_(wanted[i : i + 500]))).all()
            out.update({r[0]: bytes(r[1]) for r in rows})
        return out

    @staticmethod
    def entry(conn: Connection, seq: int) -> bytes | None:
        e = schema.entries
        row = conn.execute(select(e.c.leaf).where(e.c.seq == seq)).first()
        return bytes(row[0]) if row else None

    @staticmethod
    def entry_count(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(schema.entries)).scalar_one())

    def iter_entries(self, start: int = 0, end: int | None = None, chunk: int = 5000) -> Iterator[tuple[int, bytes]]:
        """Every entry from ``start`` in seq order, read in chunks (flat memory)."""
        e = schema.entries
        pos = start
        while True:
            upto = pos + chunk if end is None else min(end, pos + chunk)
            with self.sealed_reader(upto) as (conn, _):
                q = select(e.c.seq, e.c.leaf).where(e.c.seq >= pos).order_by(e.c.seq).limit(chunk)
                if end is not None:
                    q = q.where(e.c.seq < end)
                rows = conn.execute(q).all()
            if not rows:
                return
            for seq, leaf in rows:
                yield seq, bytes(leaf)
            pos = rows[-1][0] + 1

    def iter_blocks(self, chunk: int = 2000) -> Iterator[tuple[int, dict[str, Any], str]]:
        """Every block as (height, header JSON, checkpoint), in height order."""
        b = schema.blocks
        pos = 0
        while True:
            with self.sealed_reader(pos + chunk - 1, by_height=True) as (conn, _):
                rows = conn.execute(
                    select(b.c.height, b.c.header, b.c.checkpoint)
                    .where(b.c.height >= pos)
                    .order_by(b.c.height)
                    .limit(chunk)
                ).all()
            if not rows:
                return
            for height, header, checkpoint in rows:
                yield height, json.loads(header), checkpoint
            pos = rows[-1][0] + 1

    # -- writes: only inside writer() -----------------------------------------------------------
    @staticmethod
    def insert(conn: Connection, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            conn.execute(table.insert(), rows)

    @staticmethod
    def insert_rows(
        conn: Connection,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        upsert: str | None = None,
    ) -> None:
        """Insert positional ``rows`` at the driver level (the append hot path).

        Skips SQLAlchemy's per-row compilation and type processing; values must already be what the
        driver takes (int, str, bytes). psycopg 3 runs ``executemany`` in pipeline mode. With
        ``upsert`` (a unique column), a row whose key exists replaces the other columns of that row
        (``ON CONFLICT … DO UPDATE``: not for the append-only tables, whose triggers refuse it).
        """
        if not rows:
            return
        cols = tuple(columns)
        dialect = conn.dialect.name
        if dialect != "sqlite" and upsert is None:
            _copy_rows(conn, table.name, cols, rows)
            return
        # One multi-row VALUES statement (more only past the parameter limit). On SQLite
        # ``executemany`` steps once per row and releases the GIL around every step, and so does each
        # statement: the committing thread then queues for the GIL behind the submitter threads each
        # time, which cost more than the commit's own CPU. Batch sizes recur, so the statements stay
        # in the driver's statement cache.
        per = _rows_per_statement(dialect, len(columns))
        pos = 0
        while pos < len(rows):
            n = min(per, len(rows) - pos)
            sql = _insert_sql(dialect, table.name, cols, n, upsert)
            try:
                conn.exec_driver_sql(sql, tuple(itertools.chain.from_iterable(rows[pos : pos + n])))
            except IntegrityError as exc:
                raise StorageConflict(f"rows for {table.name} clash with stored ones: {exc.orig}") from exc
            pos += n


def _copy_rows(conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """PostgreSQL: ``COPY … FROM STDIN`` in the connection's transaction (no per-row statement on
    either side; the table's constraints hold as for INSERT, and no ledger table has an insert trigger)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    try:
        with raw.cursor() as cur, cur.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    except Exception as exc:  # psycopg's own errors, not wrapped by SQLAlchemy
        if type(exc).__module__.split(".")[0] != "psycopg":
            raise
        if any(c.__name__ == "IntegrityError" for c in type(exc).__mro__):
            raise StorageConflict(f"rows for {table} clash with stored ones: {exc}") from exc
        raise StorageError(f"database refused the rows for {table}: {exc}") from exc


_INHERITED: list[PoolProxiedConnection] = []  # connections a forked child must leave alone


# Host parameters per statement: 32766 since SQLite 3.32, 999 before.
_SQLITE_MAX_PARAMS = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


def _rows_per_statement(dialect: str, columns: int) -> int:
    """The most rows whose parameters fit one statement."""
    return (_SQLITE_MAX_PARAMS if dialect == "sqlite" else 65535) // columns


@functools.lru_cache(maxsize=512)
def _insert_sql(dialect: str, table: str, columns: tuple[str, ...], rows: int = 1, upsert: str | None = None) -> str:
    mark = "?" if dialect == "sqlite" else "%s"
    one = f"({', '.join([mark] * len(columns))})"
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * rows)}"  # noqa: S608
    if upsert is not None:
        update = ", ".join(f"{c} = excluded.{c}" for c in columns if c != upsert)
        sql += f" ON CONFLICT ({upsert}) DO UPDATE SET {update}"
    return sql


_HEAD_POSITION = f"SELECT height, tree_size FROM {schema.blocks.name} ORDER BY height DESC LIMIT 1"  # noqa: S608
_HEAD_ROW = f"SELECT height, tree_size, header, checkpoint FROM {schema.blocks.name} ORDER BY height DESC LIMIT 1"  # noqa: S608
_WRITER_LOCK = f"SELECT pg_advisory_xact_lock({WRITER_LOCK_ID})"
_LOCK_THEN_HEAD = f"{_WRITER_LOCK}; {_HEAD_ROW}"
_RECENT_ENTRIES = (
    f"SELECT seq, leaf, leaf_hash FROM {schema.entries.name} WHERE seq >= {{start}} ORDER BY seq LIMIT {{limit}}"  # noqa: S608
)
# Key in the connection's info: the head read with the writer lock, set afresh by every PostgreSQL
# writer transaction (a value no writer took stays until the next one replaces it).
_LOCKED_HEAD = "shulian.locked_head"
_LOCKED_RECENT = "shulian.locked_recent"
RECENT_LIMIT = 5000


def _head_row(row: Any) -> HeadRow | None:
    return None if row is None else HeadRow(int(row[0]), int(row[1]), str(row[2]), str(row[3]))


def _lock_and_read_head(
    conn: Connection, recent_from: int | None = None
) -> tuple[HeadRow | None, list[tuple[int, bytes, bytes]] | None]:
    """PostgreSQL: take the writer lock and read the newest block in ONE round trip: two statements in
    one query string (the simple query protocol; no parameters). With ``recent_from`` a third statement
    reads the entries from that seq on (a writer's cache catching up with what others committed).

    The server runs them in order and, in READ COMMITTED, each SELECT takes its snapshot when it starts,
    after the lock is granted: it sees every block committed by the writer before us, and no writer
    commits between the two SELECTs. (Not a psycopg pipeline: waiting in one for the lock polls the
    socket for writing too, spinning on a CPU the writer holding the lock needs: a tenth of the waiting
    writer's time, py-spy --gil.)
    Errors come back as SQLAlchemy's, a connection the server dropped marked invalidated (as
    ``exec_driver_sql`` would), so that ``Store.writer`` replaces it once and maps the rest to 503.
    """
    raw = conn.connection.driver_connection
    assert raw is not None
    query = _LOCK_THEN_HEAD
    if recent_from is not None:
        query += f"; {_RECENT_ENTRIES.format(start=int(recent_from), limit=RECENT_LIMIT)}"
    recent: list[tuple[int, bytes, bytes]] | None = None
    try:
        with raw.cursor() as cur:
            cur.execute(query)
            if not cur.nextset():
                raise AssertionError("the server answered the lock without the head")
            row = cur.fetchone()
            if recent_from is not None:
                if not cur.nextset():
                    raise AssertionError("the server answered the lock without the entries")
                recent = [(int(seq), bytes(leaf), bytes(digest)) for seq, leaf, digest in cur.fetchall()]
    except Exception as exc:  # psycopg's own errors, not wrapped by SQLAlchemy
        if type(exc).__module__.split(".")[0] != "psycopg":
            raise
        dropped = bool(raw.closed or raw.broken)
        if dropped:
            conn.invalidate(exc)
        raise OperationalError(_WRITER_LOCK, None, exc, connection_invalidated=dropped) from exc
    return _head_row(row), recent


def _hashes_queries(mark: str, hashes: list[bytes]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The queries for ``seqs_of_hashes``: SQLite, an IN list per 500; PostgreSQL, one ``= ANY`` of
    an array (the same statement every time, so the server prepares it once)."""
    if mark != "?":
        yield _ANY_HASHES, (hashes,)
        return
    for i in range(0, len(hashes), 500):
        chunk = hashes[i : i + 500]
        yield _hashes_sql(mark, len(chunk)), tuple(chunk)


_ANY_HASHES = f"SELECT leaf_hash, seq FROM {schema.entries.name} WHERE leaf_hash = ANY(%s)"  # noqa: S608


@functools.lru_cache(maxsize=64)
def _hashes_sql(mark: str, count: int) -> str:
    marks = ", ".join([mark] * count)
    return f"SELECT leaf_hash, seq FROM {schema.entries.name} WHERE leaf_hash IN ({marks})"  # noqa: S608
