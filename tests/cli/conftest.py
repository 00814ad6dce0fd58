"""The people's CLI against a real `shulian serve` (the server of tests/api: init, demo, serve on loopback)."""

from __future__ import annotations

from pathlib import Path

import httpx

from api.node import identity_body
from keys.keystore import load_key, load_keystore
from ledger.envelope import sign_envelope
from tests.api.conftest import Server, run_cli, server

__all__ = ["Server", "register", "run_cli", "server", "tree_size"]


def register(srv: Server, keystore: Path, role: str, **extra: str) -> str:
    """The admin registers the key in ``keystore`` (as an operator would: POST /v1/entries); its key id."""
    admin = load_key(srv.home / "keys" / "admin.json", "admin", b"test passphrase")
    key = load_keystore(keystore, b"test passphrase")[0]
    leaf = sign_envelope(admin.signing, "identity.register", identity_body(key, role, key.name, **extra))
    response = httpx.post(srv.url + "/v1/entries", content=leaf, timeout=30)
    assert response.status_code == 201, response.text
    return key.key_id


def tree_size(srv: Server) -> int:
    note = httpx.get(srv.url + "/v1/checkpoint", timeout=30).text
    return int(note.splitlines()[1])
