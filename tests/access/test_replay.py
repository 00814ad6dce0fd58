"""Replays and clock skew: a signed request is taken once, within 300 s of its ``created``, from a current key.

The nonce register lives in the database, so these run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import httpx
import pytest

import api.auth
from api.app import create_app
from api.client import ClientError, ShulianClient
from api.node import Node, identity_body
from keys.keystore import StoredKey
from ledger.canonical import canonical_bytes
from ledger.envelope import sign_envelope
from tests.access.signing import assert_problem, send_signed, signed_headers
from tests.access.world import CONSENT_PURPOSE, DIBAO, DUTY_PURPOSE, World

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient on httpx: deprecated, still what it runs on
    from starlette.testclient import TestClient

REQUEST = canonical_bytes({"dataset": DIBAO, "record": "mzj-b", "fields": ["household_size"], "purpose": DUTY_PURPOSE})


def early_in_a_second() -> int:
    """Now, at least 0.6 s before the next second starts, so a skew of exactly N s stays N s at the server."""
    while time.time() % 1 > 0.4:
        time.sleep(0.05)
    return int(time.time())


def test_same_signed_request_twice(world: World, http: httpx.Client) -> None:
    gjj = world.depts["gjj"].key
    request, headers = signed_headers(http, gjj, "POST", "/v1/access/requests", REQUEST)
    request.headers.update(headers)
    before = world.size()
    first = http.send(request)
    assert first.status_code == 201, first.text
    assert world.size() == before + 2
    again = http.build_request("POST", "/v1/access/requests", content=REQUEST, headers=dict(request.headers))
    second = http.send(again)
    problem = assert_problem(second, 401)
    assert "replayed" in str(problem["title"]).lower()
    assert world.size() == before + 2, "a replayed request appended something"
    # the same request signed afresh is a new request, decided anew
    assert send_signed(http, gjj, "POST", "/v1/access/requests", REQUEST).status_code == 201
    assert world.size() == before + 4


def test_replayed_reads_and_grants_are_refused(world: World, http: httpx.Client) -> None:
    a = world.citizens["a"].key
    grant = sign_envelope(a.signing, "consent.grant", world.grant_body("a"))
    for method, path, body, status in [("GET", "/v1/consents", b"", 200), ("POST", "/v1/consents", grant, 201)]:
        request, headers = signed_headers(http, a, method, path, body)
        request.headers.update(headers)
        assert http.send(request).status_code == status
        size = world.size()
        replay = http.build_request(method, path, content=body, headers=dict(request.headers))
        assert "replayed" in str(assert_problem(http.send(replay), 401)["title"]).lower()
        assert world.size() == size


@pytest.mark.parametrize(("skew", "reason"), [(-301, "old"), (301, "future")])
def test_clock_skew_is_refused(world: World, http: httpx.Client, skew: int, reason: str) -> None:
    gjj = world.depts["gjj"].key
    before, nonces = world.size(), world.nonce_rows()
    r = send_signed(http, gjj, "POST", "/v1/access/requests", REQUEST, created=early_in_a_second() + skew)
    problem = assert_problem(r, 401)
    assert reason in str(problem["detail"]), problem
    assert (world.size(), world.nonce_rows()) == (before, nonces)
    # just inside the window it is taken
    inside = int(time.time()) + (290 if skew > 0 else -290)
    assert send_signed(http, gjj, "POST", "/v1/access/requests", REQUEST, created=inside).status_code == 201
    assert world.size() == before + 2


def rotate(world: World, dept: str) -> StoredKey:
    """The department rotates its own key (identity.rotate signed by the old key, posted to /v1/entries)."""
    old = world.depts[dept].key
    new = StoredKey.generate(f"{dept}-2", x25519=True, role="department")
    body = identity_body(new, "department", world.depts[dept].name) | {"replaces": old.key_id}
    r = httpx.post(world.auditor.base_url + "/v1/entries", content=sign_envelope(old.signing, "identity.rotate", body))
    assert r.status_code == 201, r.text
    return new


def test_rotated_away_key_is_refused(world: World, http: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.auth, "DECIDED_KEY_AGE_S", 0.0)  # every request looks the key up afresh
    old = world.depts["gjj"]
    presigned, headers = signed_headers(http, old.key, "GET", "/v1/agreements")
    presigned.headers.update(headers)
    new = rotate(world, "gjj")
    before = world.size()
    with pytest.raises(ClientError) as caught:
        old.client.request(dataset=DIBAO, record="mzj-b", fields=["household_size"], purpose=DUTY_PURPOSE)
    assert caught.value.status == 403 and "rotated" in caught.value.problem["detail"]
    assert_problem(http.send(presigned), 403)  # signed before the rotation, sent after it
    assert world.size() == before
    # the new key carries on under the same agreements
    client = world.client(new)
    release = client.request(dataset=DIBAO, record="mzj-b", fields=["household_size"], purpose=DUTY_PURPOSE)
    assert release.basis == [world.duty_agreement] and release.values == {"household_size": 2}
    world.grant("a", grantee="gjj")
    assert client.request(dataset=DIBAO, record="mzj-a", fields=["name"], purpose=CONSENT_PURPOSE).values


def test_a_key_rotated_since_the_last_look_up_is_denied_on_the_ledger(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An access request may use a look-up of its key up to DECIDED_KEY_AGE_S old: the decision checks the
    key again on the ledger, so a key rotated since is denied there, logged, and nothing is released."""
    monkeypatch.setattr(api.auth, "DECIDED_KEY_AGE_S", 3600.0)
    old = world.depts["gjj"]
    ask = {"dataset": DIBAO, "record": "mzj-b", "fields": ["household_size"], "purpose": DUTY_PURPOSE}
    assert old.client.request(**ask).values == {"household_size": 2}  # type: ignore[arg-type]
    rotate(world, "gjj")
    before = world.size()
    with pytest.raises(ClientError) as caught:
        old.client.request(**ask)  # type: ignore[arg-type]
    assert caught.value.status == 403 and caught.value.problem["reasons"] == ["requester_key_invalid"]
    assert caught.value.problem["decision"] == before
    assert world.types_from(before) == ["access.decision"]
    monkeypatch.setattr(api.auth, "DECIDED_KEY_AGE_S", 0.0)
    with pytest.raises(ClientError) as caught:  # looked up afresh: refused before any decision
        old.client.request(**ask)  # type: ignore[arg-type]
    assert caught.value.status == 403 and "rotated" in caught.value.problem["detail"]
    assert world.types_from(before) == ["access.decision"]


def test_revoked_key_reads_nothing(world: World) -> None:
    a = world.citizens["a"]
    world.grant("a")
    assert len(a.client.consents()) == 1
    world.node.append(sign_envelope(world.admin.signing, "identity.revoke", {"key_id": a.key.key_id}))
    for call in (a.client.consents, a.client.usage, a.client.records, a.client.me):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.status == 403 and "revoked" in caught.value.problem["detail"]


def test_unknown_key_is_refused(world: World) -> None:
    stranger = StoredKey.generate("stranger", x25519=True, role="department")
    client: ShulianClient = world.client(stranger)
    with pytest.raises(ClientError) as caught:
        client.me()
    assert caught.value.status == 401 and "unknown key" in caught.value.problem["detail"]


def test_an_access_request_replayed_to_another_replica_is_refused(
    world: World, http: httpx.Client, ledger_url: str, shulian_home: Path
) -> None:
    """No nonce is written for an access request: the writer refuses a second decision of the same signed
    request by its hash on the ledger, whichever replica (here a second node on the same database) it reaches."""
    world.grant("b", max_uses=None)
    gjj = world.depts["gjj"].key
    request, headers = signed_headers(http, gjj, "POST", "/v1/access/requests", REQUEST)
    request.headers.update(headers)
    first = http.send(request)
    assert first.status_code == 201, first.text
    size = world.size()
    other = Node(ledger_url, shulian_home)
    try:
        with TestClient(create_app(other), base_url=str(http.base_url)) as replica:
            again = replica.post("/v1/access/requests", content=REQUEST, headers=dict(request.headers))
    finally:
        other.close()
    assert "replayed" in str(assert_problem(again, 401)["title"]).lower()
    assert world.size() == size, "a replayed request appended something"
