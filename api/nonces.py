"""The register of request nonces already seen, shared by every API worker and replica.

On PostgreSQL it is a table of the ledger's database (row inserts do not wait for the ledger's
writer lock). On SQLite it is a sibling database file, so that remembering a nonce never queues
behind a ledger commit: SQLite has one writer per file. Nonces are kept for twice the allowed clock
skew; after that a request carrying one is refused as stale anyway.
"""

from __future__ import annotations

import time

from sqlalchemy import create_engine, delete, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from api import tables
from api.httpsig import MAX_SKEW
from ledger.errors import LedgerError
from ledger.store import StorageError, Store


class Replayed(LedgerError):
    status = 401
    title = "Request replayed"


def _sqlite_nonce_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # a lost nonce after a power cut allows no write twice
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


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
                    pool_size=8,
                    max_overflow=8,
                )
                event.listen(self.engine, "connect", _sqlite_nonce_pragmas)
        else:
            self.engine = store.engine
        self._ready = False

    def _create(self) -> None:
        if not self._ready:
            tables.request_nonces.create(self.engine, checkfirst=True)
            self._ready = True

    def remember(self, nonce: str, key_id: str, created: int) -> None:
        """Record a nonce once; a second use is a replay. Old nonces are purged now and then."""
        t = tables.request_nonces
        try:
            self._create()
            with self.engine.begin() as conn:
                conn.execute(t.insert(), [{"nonce": nonce, "key_id": key_id, "created": created}])
                if created % 64 == 0:
                    conn.execute(delete(t).where(t.c.created < int(time.time()) - 2 * MAX_SKEW))
        except IntegrityError as exc:
            raise Replayed("this signed request was already received (nonce reused); sign it afresh") from exc
        except OperationalError as exc:
            raise StorageError(f"nonce register unavailable: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()
