"""One Shulian node: the store, the log's read side, the sequencer and the local keys under SHULIAN_HOME."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from api import tables  # noqa: F401 - registers the service tables with the schema
from api.index import write_index
from api.nonces import NonceRegister
from api.vault import Vault
from api.view import LedgerView
from api.writer import async_client_from_env, client_from_env
from consent.state import ConsentState
from keys.keystore import StoredKey, home, load_key, save_keystore
from ledger import schema
from ledger.envelope import sign_envelope
from ledger.errors import LedgerError
from ledger.log import LogReader
from ledger.note import signer_vkey
from ledger.sequencer import Receipt, Sequencer
from ledger.store import Store

DEFAULT_ORIGIN = "shulian.example.gov.cn/ledger"


class InitError(LedgerError):
    status = 409


def identity_body(key: StoredKey, role: str, name: str, **extra: Any) -> dict[str, Any]:
    """The body of an ``identity.register`` entry for ``key``."""
    body: dict[str, Any] = {"key_id": key.key_id, "role": role, "name": name, "ed25519": key.public_b64}
    if key.x25519 is not None:
        body["x25519"] = key.x25519_b64
    body.update(extra)
    return body


class Node:
    def __init__(self, db: str | None = None, home_dir: Path | None = None) -> None:
        self.store = Store(db)
        self.home = home_dir or home()
        self.reader = LogReader(self.store)
        self.view = LedgerView(self.store)
        self.nonces = NonceRegister(self.store)
        self.vault = Vault(self.key_path("vault-master"))
        self.writer = client_from_env()  # set when `serve` runs a writer process for its workers (api.writer)
        self.async_writer = async_client_from_env()  # the same, for the event loop (api.fastpath)
        self._sequencer: Sequencer | None = None
        self._keys: dict[str, StoredKey] = {}
        self._opening = threading.RLock()

    def key_path(self, name: str) -> Path:
        return self.home / "keys" / f"{name}.json"

    def local_key(self, name: str) -> StoredKey:
        """A key under SHULIAN_HOME/keys, opened once (Argon2 makes each opening cost ~0.1 s)."""
        key = self._keys.get(name)
        if key is None:
            with self._opening:  # one opening per key, however many requests ask at once
                key = self._keys.get(name)
                if key is None:
                    key = self._keys[name] = load_key(self.key_path(name), name)
        return key

    def _ensure_key(self, name: str, role: str, *, x25519: bool = False) -> StoredKey:
        path = self.key_path(name)
        if path.exists():
            return load_key(path, name)
        key = StoredKey.generate(name, x25519=x25519, role=role)
        save_keystore(path, [key])
        return key

    @property
    def sequencer(self) -> Sequencer:
        if self._sequencer is None:
            from api.metrics import observe_cache, observe_commit  # prometheus-client once appending (api.metrics)

            log_key = self.local_key("log").signing
            # The service key signs the decisions and releases that builders make in this process.
            own = [self.local_key("service").signing.verify_key.encode()] if self.key_path("service").exists() else []
            with self._opening:
                if self._sequencer is None:
                    self._sequencer = Sequencer(
                        self.store,
                        log_key,
                        self.reader.origin,
                        machines=lambda: [ConsentState()],
                        index=write_index,
                        observe=observe_commit,
                        own_keys=own,
                        on_cache=observe_cache,
                    )
        return self._sequencer

    def append(self, leaf: bytes) -> Receipt:
        return self.sequencer.append(leaf)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.async_writer is not None:
            self.async_writer.close()
        self.nonces.close()
        self.store.close()

    def init(self, origin: str | None = None) -> bool:
        """Create schema, keys and genesis; True if anything was created, False if already done."""
        self.store.create_schema()
        log_key = self._ensure_key("log", "log")
        with self.store.writer() as conn:
            meta = Store.meta(conn)
            if meta:
                if origin is not None and origin != meta["origin"]:
                    raise InitError(f"ledger already initialised with origin {meta['origin']}, not {origin}")
                if meta["log_key"] != signer_vkey(meta["origin"], log_key.signing).encode():
                    raise InitError(f"the log key in {self.key_path('log')} is not this ledger's log key")
                created = False
            else:
                origin = origin or os.environ.get("SHULIAN_ORIGIN") or DEFAULT_ORIGIN
                vkey = signer_vkey(origin, log_key.signing).encode()
                Store.insert(
                    conn, schema.meta, [{"name": "origin", "value": origin}, {"name": "log_key", "value": vkey}]
                )
                created = True
        self.reader._meta = None
        if self.reader.size() > 0:
            return created
        admin = self._ensure_key("admin", "admin")
        service = self._ensure_key("service", "service")
        genesis = sign_envelope(admin.signing, "identity.register", identity_body(admin, "admin", "市大数据中心管理员"))
        svc = sign_envelope(admin.signing, "identity.register", identity_body(service, "service", "数链授权服务"))
        for result in self.sequencer.append_many([genesis, svc]):
            if isinstance(result, LedgerError):
                raise result
        return True
