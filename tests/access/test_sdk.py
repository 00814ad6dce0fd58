"""SDK round trips over the live uvicorn server: the client pins the log key, keeps its last checkpoint in
a state file, and refuses what does not verify: a checkpoint by another key, a bit flipped in any proof
or in a sealed release (by a transport that sits between it and the server), and a log inconsistent with
the one it saw (another ledger served under the same log key).

These are about the client, not storage: they run on SQLite only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import ClientError, ShulianClient
from api.node import Node, identity_body
from keys.keystore import StoredKey
from ledger.envelope import sign_envelope
from tests.access.conftest import LiveServer
from tests.access.world import CONSENT_PURPOSE, DIBAO, DUTY_PURPOSE, World

ORIGIN = "test.shulian.example/log"  # the node fixture's origin


@pytest.fixture
def ledger_url(sqlite_url: str) -> str:
    return sqlite_url


Edit = Callable[[httpx.Request, Any], Any]


class Tamper(httpx.BaseTransport):
    """A transport that passes requests to the server and lets ``edit`` rewrite JSON responses on the way back."""

    def __init__(self, edit: Edit | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.edit = edit
        self.edited = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.edit is None or not response.headers.get("content-type", "").startswith("application/json"):
            return response
        response.read()
        doc = self.edit(request, json.loads(response.content))
        if doc is None:
            return response
        self.edited += 1
        return httpx.Response(
            response.status_code, headers={"content-type": "application/json"}, content=json.dumps(doc).encode()
        )

    def close(self) -> None:
        self.inner.close()


def flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def tampered_client(world: World, key: StoredKey, edit: Edit | None) -> tuple[ShulianClient, Tamper]:
    transport = Tamper(edit)
    client = ShulianClient(world.auditor.base_url, key, http=httpx.Client(transport=transport, timeout=30))
    world.clients.append(client)
    return client, transport


def log_key_text(node: Node) -> str:
    return node.reader.vkey.encode()


def test_round_trip_with_a_state_file(world: World, tmp_path: Path) -> None:
    state = tmp_path / "gjj-state.json"
    gjj_key = world.depts["gjj"].key
    client = ShulianClient(world.auditor.base_url, gjj_key, log_key=log_key_text(world.node), state_path=state)
    world.clients.append(client)
    assert client.me()["role"] == "department"
    world.grant("a", max_uses=1)
    release = client.request(
        dataset=DIBAO, record="mzj-a", fields=["name", "monthly_allowance"], purpose=CONSENT_PURPOSE
    )
    assert release.values == {"name": "测****", "monthly_allowance": 860}
    saved = json.loads(state.read_text())
    size, _ = world.node.reader.checkpoint()
    assert saved["log_key"] == log_key_text(world.node) and saved["size"] == size == world.size()
    assert client.last is not None and base64.b64decode(saved["root"]) == client.last.root
    assert [a["status"] for a in client.agreements()] == ["live", "live"]
    # a new client starts from the state file alone: pinned to the saved key, consistent from the saved size
    world.grant("b")
    again = ShulianClient(world.auditor.base_url, gjj_key, state_path=state)
    world.clients.append(again)
    assert again.last is not None and again.last.size == size
    assert again.checkpoint().size == world.size() and json.loads(state.read_text())["size"] == world.size()
    usage = again.usage()
    assert {u["type"] for u in usage} == {"access.decision", "usage.release"}


def test_checkpoint_by_another_log_key_is_refused(world: World, tmp_path: Path, shulian_home: Path) -> None:
    other = Node(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other-home")
    other.init(origin=ORIGIN)  # same origin, its own log key
    foreign = log_key_text(other)
    other.close()
    assert foreign != log_key_text(world.node)
    client = ShulianClient(world.auditor.base_url, world.depts["gjj"].key, log_key=foreign)
    world.clients.append(client)
    with pytest.raises(ClientError, match="checkpoint does not verify"):
        client.checkpoint()
    with pytest.raises(ClientError, match="checkpoint does not verify"):
        client.entry(world.consent_agreement)
    # a state file written under one log key is not used with another
    state = tmp_path / "state.json"
    mine = ShulianClient(world.auditor.base_url, world.depts["gjj"].key, state_path=state)
    world.clients.append(mine)
    mine.checkpoint()
    with pytest.raises(ClientError, match="another log key"):
        ShulianClient(world.auditor.base_url, world.depts["gjj"].key, log_key=foreign, state_path=state)


def _flip_entry_proof(request: httpx.Request, doc: Any) -> Any:
    if request.url.path.startswith("/v1/entries/") and doc["proof"]["hashes"]:
        doc["proof"]["hashes"][0] = flip(doc["proof"]["hashes"][0])
        return doc
    return None


def _swap_entry_leaf(request: httpx.Request, doc: Any) -> Any:
    if request.url.path.startswith("/v1/entries/"):
        leaf = json.loads(base64.b64decode(doc["leaf"]))
        leaf["body"]["reason"] = "tampered"
        doc["leaf"] = base64.b64encode(json.dumps(leaf).encode()).decode()
        return doc
    return None


def _flip_append_inclusion(request: httpx.Request, doc: Any) -> Any:
    if request.method == "POST" and isinstance(doc, dict) and doc.get("inclusion"):
        doc["inclusion"][-1] = flip(doc["inclusion"][-1])
        return doc
    return None


def _flip_consistency(request: httpx.Request, doc: Any) -> Any:
    if request.url.path == "/v1/proof/consistency" and doc["hashes"]:
        doc["hashes"][0] = flip(doc["hashes"][0])
        return doc
    return None


def _flip_sealed(request: httpx.Request, doc: Any) -> Any:
    if request.url.path == "/v1/access/requests":
        doc["release"]["sealed"] = flip(doc["release"]["sealed"])
        return doc
    return None


def _flip_sealed_and_its_hash(request: httpx.Request, doc: Any) -> Any:
    from consent.release import delivered_hash

    if request.url.path == "/v1/access/requests":
        sealed = flip(doc["release"]["sealed"])
        doc["release"]["sealed"] = sealed
        doc["release"]["delivered"] = delivered_hash(base64.b64decode(sealed))
        return doc
    return None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (None, None),  # control: the same transport without edits
        (_flip_entry_proof, "inclusion proof does not verify"),
        (_swap_entry_leaf, "leaf hash does not match"),
        (_flip_append_inclusion, "inclusion proof does not verify"),
        (_flip_consistency, "not consistent"),
        (_flip_sealed, "does not match its logged hash"),
        (_flip_sealed_and_its_hash, "names other bytes"),
    ],
    ids=["untouched", "entry-proof", "entry-leaf", "append-inclusion", "consistency", "sealed", "sealed-and-hash"],
)
def test_tampered_responses_are_refused(world: World, edit: Edit | None, message: str | None) -> None:
    gjj, transport = tampered_client(world, world.depts["gjj"].key, edit)
    gjj.checkpoint()
    world.grant("a")  # the log grows: the next checkpoint needs a consistency proof
    steps: list[Callable[[], Any]] = [
        gjj.checkpoint,
        lambda: gjj.entry(world.consent_agreement),
        lambda: gjj.request(dataset=DIBAO, record="mzj-b", fields=["household_size"], purpose=DUTY_PURPOSE),
    ]
    if edit is _flip_append_inclusion:
        steps = [lambda: gjj.register_dataset(_dataset(world))]
    if message is None:
        for step in steps:
            step()
        assert transport.edited == 0
        return
    with pytest.raises(ClientError, match=message):
        for step in steps:
            step()
    assert transport.edited >= 1


def _dataset(world: World) -> dict[str, Any]:
    return {
        "dataset": "gjj.loans", "owner": world.depts["gjj"].key_id, "title": "公积金贷款信息",
        "fields": [{"name": "loan_balance", "sensitivity": "high"}], "level": "重要", "personal": True,
        "update_frequency": "每月",
    }  # fmt: skip


def fork(world: World, tmp_path: Path, size: int) -> Node:
    """Another ledger under the same SHULIAN_HOME (so the same log key), grown to ``size`` entries."""
    other = Node(f"sqlite:///{tmp_path / 'fork.db'}", world.node.home)
    other.init(origin=ORIGIN)
    admin = world.admin
    i = 0
    while other.reader.size() < size:
        key = StoredKey.generate(f"fork-{i}", role="auditor")
        other.append(sign_envelope(admin.signing, "identity.register", identity_body(key, "auditor", f"审计{i}")))
        i += 1
    assert log_key_text(other) == log_key_text(world.node)
    return other


@pytest.mark.parametrize("delta", [5, 0, -3], ids=["longer", "same-size", "shorter"])
def test_a_client_detects_another_ledger_under_the_same_log_key(
    world: World, live_server: LiveServer, tmp_path: Path, delta: int
) -> None:
    state = tmp_path / "state.json"
    client = ShulianClient(world.auditor.base_url, world.depts["gjj"].key, state_path=state)
    world.clients.append(client)
    seen = client.checkpoint()
    saved = state.read_text()
    other = fork(world, tmp_path, seen.size + delta)
    try:
        live_server.serve(other)  # the same URL now serves the other ledger
        with pytest.raises(ClientError, match="consistent"):
            client.checkpoint()
        assert state.read_text() == saved, "the state file took the other ledger's checkpoint"
    finally:
        live_server.serve(world.node)
        other.close()
