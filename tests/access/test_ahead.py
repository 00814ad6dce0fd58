"""api.services: what is made before the writer lock (seal keys, opened record versions), and only for
requests the writer's state would allow."""

from __future__ import annotations

from typing import Any

import pytest

import api.services
from api.node import Node
from api.services import AccessAsk, decide_and_release_many
from consent.release import open_release
from ledger import sodium
from tests.access.world import CONSENT_PURPOSE, DIBAO, World


def test_only_an_allowed_request_gets_its_record_opened_and_a_seal_key_ahead(
    world: World, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.grant("a", max_uses=None)
    world.depts["gjj"].client.request(dataset=DIBAO, record="mzj-a", fields=["name"], purpose=CONSENT_PURPOSE)
    opened: list[str] = []
    made: list[sodium.SealKey] = []
    real_read, real_seal_key = node.vault._read, sodium.SealKey

    def read(conn: Any, **kw: Any) -> Any:
        opened.append(kw["record"])
        return real_read(conn, **kw)

    def seal_key(public: bytes) -> sodium.SealKey:
        made.append(real_seal_key(public))
        return made[-1]

    monkeypatch.setattr(node.vault, "_read", read)
    monkeypatch.setattr(api.services.sodium, "SealKey", seal_key)
    node.vault._leaves.clear()

    rsj = world.depts["rsj"]  # holds no agreement: denied
    denied = decide_and_release_many(node, [AccessAsk(rsj.key_id, "1" * 64, DIBAO, "mzj-a", ["name"], CONSENT_PURPOSE)])
    assert not isinstance(denied[0], Exception) and not denied[0].decision.allowed
    assert opened == [] and made == [], "a record opened, or a box begun, for a denied request"

    gjj = world.depts["gjj"]
    allowed = decide_and_release_many(
        node, [AccessAsk(gjj.key_id, "2" * 64, DIBAO, "mzj-a", ["name"], CONSENT_PURPOSE)]
    )
    result = allowed[0]
    assert not isinstance(result, Exception) and result.decision.allowed and result.sealed is not None
    assert opened == ["mzj-a"]  # once, ahead of the lock: the builder found it in memory
    assert len(made) == 1 and made[0].used and result.sealed[:32] == made[0].ephemeral
    assert gjj.key.x25519 is not None
    assert open_release(result.sealed, gjj.key.x25519)["record"] == "mzj-a"


def test_a_guess_that_fails_fails_no_request(world: World, node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guess runs on state another thread may be changing: whatever it raises, the request is decided
    as without it (here the first call of decide, the guess, raises; the decision's own call does not)."""
    world.grant("a", max_uses=None)
    real_decide = api.services.decide
    calls: list[int] = []

    def decide_failing_first(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("torn state")
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(api.services, "decide", decide_failing_first)
    gjj = world.depts["gjj"]
    done = decide_and_release_many(node, [AccessAsk(gjj.key_id, "3" * 64, DIBAO, "mzj-a", ["name"], CONSENT_PURPOSE)])
    assert len(calls) == 2
    result = done[0]
    assert not isinstance(result, Exception) and result.decision.allowed and result.sealed is not None
