"""The decision table over HTTP: one test per deny reason, and the allows, each read back from the ledger.

Every deny answers 403 with the seq of the logged ``access.decision`` and its reason; the ledger grows
by exactly that one entry, which an auditor reads back as outcome deny with that reason. An allow
appends the decision and its ``usage.release`` together; the SDK opens the sealed release and checks
it against the record commitment on the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import api.auth
import api.services
from api.client import ClientError, Release
from api.node import Node
from api.routes import access as access_route
from consent.decision import DENY_REASONS
from consent.errors import ReleaseError
from consent.masking import mask
from ledger.envelope import sign_envelope
from tests.access.world import CONSENT_PURPOSE, DIBAO, DUTY_PURPOSE, DUTY_SCOPE, World

DAY = 86400.0


def ask(
    world: World, dept: str, fields: list[str], *, record: str = "mzj-a", purpose: str = CONSENT_PURPOSE
) -> Release:
    return world.depts[dept].client.request(dataset=DIBAO, record=record, fields=fields, purpose=purpose)


def assert_denied(world: World, reason: str, call: Callable[[], Any], *, requester: str) -> None:
    """``call`` is refused with a logged deny for ``reason``: one new entry, the decision, and nothing else."""
    before = world.size()
    with pytest.raises(ClientError) as caught:
        call()
    err = caught.value
    assert err.status == 403, err
    assert err.problem["reasons"] == [reason]
    assert reason in err.problem["detail"]
    seq = err.problem["decision"]
    assert seq == before and world.size() == before + 1, "a deny appends its decision and nothing else"
    entry = world.entry(seq)
    assert entry["type"] == "access.decision"
    body = entry["body"]
    assert (body["outcome"], body["reasons"], body["basis"], body["modes"]) == ("deny", [reason], [], {})
    assert body["requester"] == world.depts[requester].key_id
    assert body["record_seq"] == world.records[body["record"]]


# Each scenario sets up its state and returns the call that must be denied and who makes it.
Scenario = Callable[[World], tuple[Callable[[], Any], str]]


def _no_agreement(w: World) -> tuple[Callable[[], Any], str]:
    return lambda: ask(w, "rsj", ["monthly_allowance"]), "rsj"


def _agreement_revoked(w: World) -> tuple[Callable[[], Any], str]:
    seq = w.approve(requester="rsj", consent_required=False)
    w.depts["mzj"].client.revoke_agreement(seq, "场景已结束")
    return lambda: ask(w, "rsj", ["monthly_allowance"]), "rsj"


def _agreement_expired(w: World) -> tuple[Callable[[], Any], str]:
    w.approve(requester="rsj", consent_required=False, start=-2 * DAY, end=-DAY)
    return lambda: ask(w, "rsj", ["monthly_allowance"]), "rsj"


def _agreement_not_yet_valid(w: World) -> tuple[Callable[[], Any], str]:
    w.approve(requester="rsj", consent_required=False, start=DAY, end=2 * DAY)
    return lambda: ask(w, "rsj", ["monthly_allowance"]), "rsj"


def _field_out_of_scope(w: World) -> tuple[Callable[[], Any], str]:
    w.grant("a", fields=["name", "address"])  # consent alone does not widen the agreement
    return lambda: ask(w, "gjj", ["name", "address"]), "gjj"


def _purpose_not_allowed(w: World) -> tuple[Callable[[], Any], str]:
    w.grant("a", purpose="商业营销")
    return lambda: ask(w, "gjj", ["monthly_allowance"], purpose="商业营销"), "gjj"


def _consent_missing(w: World) -> tuple[Callable[[], Any], str]:
    w.grant("b")  # another subject's consent does not count
    w.grant("a", purpose=DUTY_PURPOSE)  # nor one for another purpose
    return lambda: ask(w, "gjj", ["name", "monthly_allowance"]), "gjj"


def _consent_revoked(w: World) -> tuple[Callable[[], Any], str]:
    seq = w.grant("a")
    w.citizens["a"].client.revoke_consent(seq, "不再同意")
    return lambda: ask(w, "gjj", ["name"]), "gjj"


def _consent_expired(w: World) -> tuple[Callable[[], Any], str]:
    w.grant("a", start=-2 * DAY, end=-DAY)
    return lambda: ask(w, "gjj", ["name"]), "gjj"


def _consent_uses_exhausted(w: World) -> tuple[Callable[[], Any], str]:
    w.grant("a", max_uses=1)
    ask(w, "gjj", ["name"])  # the one use
    return lambda: ask(w, "gjj", ["name"]), "gjj"


def _requester_key_invalid(w: World) -> tuple[Callable[[], Any], str]:
    """Revoked after the request was authenticated, before it is decided (see the HTTP-only test below)."""
    gjj = w.depts["gjj"].key_id
    revoke = sign_envelope(w.admin.signing, "identity.revoke", {"key_id": gjj})
    original = access_route.request_access

    def revoke_after_auth(node: Node, requester: str, *args: Any, **kwargs: Any) -> Any:
        if requester == gjj:
            w.node.append(revoke)
        return original(node, requester, *args, **kwargs)

    def call() -> Any:
        access_route.request_access = revoke_after_auth  # the server runs in this process
        try:
            return ask(w, "gjj", ["monthly_allowance"], purpose=DUTY_PURPOSE)
        finally:
            access_route.request_access = original

    return call, "gjj"


SCENARIOS: dict[str, Scenario] = {
    "requester_key_invalid": _requester_key_invalid,
    "no_agreement": _no_agreement,
    "agreement_revoked": _agreement_revoked,
    "agreement_expired": _agreement_expired,
    "agreement_not_yet_valid": _agreement_not_yet_valid,
    "field_out_of_scope": _field_out_of_scope,
    "purpose_not_allowed": _purpose_not_allowed,
    "consent_missing": _consent_missing,
    "consent_revoked": _consent_revoked,
    "consent_expired": _consent_expired,
    "consent_uses_exhausted": _consent_uses_exhausted,
}


def test_every_deny_reason_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(DENY_REASONS)


@pytest.mark.parametrize("reason", DENY_REASONS)
def test_deny(world: World, reason: str) -> None:
    call, requester = SCENARIOS[reason](world)
    if reason == "requester_key_invalid":
        # the revocation lands between authentication and decision: two entries, the decision last
        before = world.size()
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.problem["decision"] == before + 1
        assert world.types_from(before) == ["identity.revoke", "access.decision"]
        body = world.entry(before + 1)["body"]
        assert (body["outcome"], body["reasons"]) == ("deny", ["requester_key_invalid"])
        assert caught.value.status == 403 and caught.value.problem["reasons"] == ["requester_key_invalid"]
        return
    assert_denied(world, reason, call, requester=requester)


def test_revoked_requester_is_refused_at_authentication(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key revoked before its request's look-up fails authentication (403, nothing appended) and a key
    of another role is refused by the route (403, nothing appended). (A look-up may be up to
    api.auth.DECIDED_KEY_AGE_S old: one revoked since is denied by the decision, requester_key_invalid.)"""
    monkeypatch.setattr(api.auth, "DECIDED_KEY_AGE_S", 0.0)
    gjj = world.depts["gjj"]
    world.node.append(sign_envelope(world.admin.signing, "identity.revoke", {"key_id": gjj.key_id}))
    before = world.size()
    with pytest.raises(ClientError) as caught:
        ask(world, "gjj", ["monthly_allowance"], purpose=DUTY_PURPOSE)
    assert caught.value.status == 403 and "revoked" in caught.value.problem["detail"]
    assert "decision" not in caught.value.problem
    with pytest.raises(ClientError) as caught:
        world.citizens["a"].client.request(dataset=DIBAO, record="mzj-a", fields=["name"], purpose=CONSENT_PURPOSE)
    assert caught.value.status == 403 and "decision" not in caught.value.problem
    assert world.size() == before


def _check_allow(world: World, release: Release, before: int, basis: list[int], modes: dict[str, str]) -> None:
    assert (release.decision_seq, release.release_seq) == (before, before + 1)
    assert world.size() == before + 2
    assert release.basis == basis and release.modes == modes
    decision = world.entry(release.decision_seq)
    assert decision["type"] == "access.decision"
    body = decision["body"]
    assert (body["outcome"], body["reasons"], body["basis"], body["modes"]) == ("allow", [], basis, modes)
    logged = world.entry(release.release_seq)
    assert logged["type"] == "usage.release" and logged["body"]["decision"] == release.decision_seq


def test_allow_with_consent_masks_what_the_agreement_masks(world: World) -> None:
    grant = world.grant("a", max_uses=2)
    before = world.size()
    fields = ["name", "id_number", "phone", "monthly_allowance"]
    release = ask(world, "gjj", fields)
    modes = {"name": "masked", "id_number": "masked", "phone": "masked", "monthly_allowance": "full"}
    _check_allow(world, release, before, [world.consent_agreement, grant], modes)
    a, values = world.citizens["a"], world.values["mzj-a"]
    assert release.values == {
        "name": mask("name", a.name),
        "id_number": mask("id_number", a.id_number),
        "phone": mask("phone", a.phone),
        "monthly_allowance": 860,
    }
    assert release.values["name"] == "测****" and release.values["phone"] == "139****5678"
    assert release.values["id_number"] == a.id_number[:3] + "*" * 11 + a.id_number[-4:]
    opened = str(release.payload)
    for raw in (a.name, a.id_number, a.phone, values["address"]):
        assert raw not in opened, "a masked or withheld field's raw value was released"
    (consent,) = [c for c in a.client.consents() if c["entry"]["seq"] == grant]
    assert (consent["status"], consent["uses"], consent["uses_left"]) == ("live", 1, 1)


def test_allow_without_consent_under_statutory_duty(world: World) -> None:
    before = world.size()
    release = ask(world, "gjj", ["household_size", "monthly_allowance"], record="mzj-b", purpose=DUTY_PURPOSE)
    _check_allow(world, release, before, [world.duty_agreement], dict(DUTY_SCOPE))
    assert release.values == {"household_size": 2, "monthly_allowance": 720}
    usage = world.citizens["b"].client.usage()
    assert [(u["seq"], u["type"]) for u in usage] == [(before, "access.decision"), (before + 1, "usage.release")]
    assert world.citizens["a"].client.usage() == []


def test_uses_are_counted_per_grant(world: World) -> None:
    """max_uses 2: two allows, then the third is a deny; a fresh grant allows again, resting on it."""
    first = world.grant("a", max_uses=2)
    for _ in range(2):
        assert ask(world, "gjj", ["name"]).basis == [world.consent_agreement, first]
    assert_denied(world, "consent_uses_exhausted", lambda: ask(world, "gjj", ["name"]), requester="gjj")
    second = world.grant("a", max_uses=None)
    assert ask(world, "gjj", ["name"]).basis == [world.consent_agreement, second]


def test_decision_and_release_commit_together_or_not_at_all(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the release cannot be made (here: sealing fails), the allow decision is not logged either."""

    def broken_seal(payload: Any, key: bytes, **_: Any) -> bytes:
        raise ReleaseError("sealing failed")

    monkeypatch.setattr(api.services, "seal", broken_seal)  # the server runs in this process
    before = world.size()
    with pytest.raises(ClientError) as caught:
        ask(world, "gjj", ["household_size"], record="mzj-b", purpose=DUTY_PURPOSE)
    assert caught.value.status == 422
    assert world.size() == before, "a decision was logged without its release"
    monkeypatch.undo()
    assert ask(world, "gjj", ["household_size"], record="mzj-b", purpose=DUTY_PURPOSE).values == {"household_size": 2}


def test_concurrent_requests_for_the_last_use(world: World) -> None:
    """Four requests at once against a grant with one use left: one allow, three denies, one release."""
    world.grant("a", max_uses=1)
    clients = [world.client(world.depts["gjj"].key) for _ in range(4)]
    before = world.size()

    def one(client: Any) -> str:
        try:
            client.request(dataset=DIBAO, record="mzj-a", fields=["name"], purpose=CONSENT_PURPOSE)
            return "allow"
        except ClientError as exc:
            assert exc.status == 403, exc
            return str(exc.problem["reasons"][0])

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(one, clients))
    assert outcomes == ["allow"] + ["consent_uses_exhausted"] * 3
    types = world.types_from(before)
    assert sorted(types) == ["access.decision"] * 4 + ["usage.release"]
