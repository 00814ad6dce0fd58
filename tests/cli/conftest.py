"""The people's CLI against a real `shulian serve` (the server of tests/api: init, demo, serve on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.node import identity_body
from keys.keystore import load_key, load_keystore
from ledger.envelope import sign_envelope
from tests.api.conftest import Server, cli_env, run_cli, start_serve

__all__ = ["Server", "register", "run_cli", "server", "tree_size"]


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`shulian init`, `shulian demo`, then `shulian serve` on a free loopback port, once for these tests."""
    tmp = tmp_path_factory.mktemp("cli")
    env = cli_env(tmp)
    run_cli(env, "init", "--origin", "cli.example.gov.cn/shulian")
    run_cli(env, "demo")
    proc, url = start_serve(env)
    yield Server(url, env, Path(env["SHULIAN_HOME"]), env["SHULIAN_DB"])
    proc.terminate()
    proc.wait(10)


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
