"""Broken object-level authorisation (OWASP API1): each role sees and changes only what it is party to.

Citizens A and B both have grants, usage and objections; 公积金中心 (gjj) has agreements and a release;
人社局 (rsj) is party to nothing. Every refusal leaves the ledger as it was, and every "cannot see" is
paired with the owner seeing the same thing, so the tests fail if visibility is simply empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from api.client import ClientError, ShulianClient
from tests.access.world import CONSENT_PURPOSE, DIBAO, DUTY_PURPOSE, World


@dataclass
class Scene:
    grant_a: int
    grant_b: int
    release_a: int  # released to gjj, about A
    decision_a: int
    release_b: int
    decision_b: int
    objection_a: int
    objection_b: int


def objection(world: World, who: str, record: str) -> dict[str, Any]:
    c = world.citizens[who]
    return {"subject": c.subject, "dataset": DIBAO, "record": record, "fields": ["phone"], "reason": "电话号码有误"}


@pytest.fixture
def scene(world: World) -> Scene:
    grant_a, grant_b = world.grant("a"), world.grant("b")
    gjj = world.depts["gjj"].client
    ra = gjj.request(dataset=DIBAO, record="mzj-a", fields=["name"], purpose=CONSENT_PURPOSE)
    rb = gjj.request(dataset=DIBAO, record="mzj-b", fields=["household_size"], purpose=DUTY_PURPOSE)
    oa = world.citizens["a"].client.file_objection(objection(world, "a", "mzj-a"))["seq"]
    ob = world.citizens["b"].client.file_objection(objection(world, "b", "mzj-b"))["seq"]
    return Scene(grant_a, grant_b, ra.release_seq, ra.decision_seq, rb.release_seq, rb.decision_seq, oa, ob)


def refused(call: Any, *statuses: int) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    assert caught.value.status in statuses, caught.value
    return caught.value


def seqs(items: list[dict[str, Any]]) -> set[int]:
    return {int(i["entry"]["seq"]) if "entry" in i else int(i["seq"]) for i in items}


def test_citizens_see_only_their_own(world: World, scene: Scene) -> None:
    a, b = world.citizens["a"].client, world.citizens["b"].client
    assert seqs(a.consents()) == {scene.grant_a} and seqs(b.consents()) == {scene.grant_b}
    assert seqs(a.usage()) == {scene.decision_a, scene.release_a}
    assert seqs(b.usage()) == {scene.decision_b, scene.release_b}
    assert {r["record"] for r in a.records()} == {"mzj-a", "gjj-a"}
    assert {r["record"] for r in b.records()} == {"mzj-b"}
    assert seqs(a.objections()) == {scene.objection_a} and seqs(b.objections()) == {scene.objection_b}
    b_only = (scene.grant_b, scene.decision_b, scene.release_b, scene.objection_b, world.records["mzj-b"])
    for seq in b_only:
        refused(lambda s=seq: a.entry(s), 404)
        assert b.entry(seq)["seq"] == seq
    for seq in (world.consent_agreement, world.duty_agreement):  # agreements between departments
        refused(lambda s=seq: a.entry(s), 404)
    refused(a.agreements, 403)


def test_citizens_cannot_act_for_another_subject(world: World, scene: Scene) -> None:
    a = world.citizens["a"].client
    b_subject = world.citizens["b"].subject
    before = world.size()
    refused(lambda: a.grant_consent(world.grant_body("a", subject=b_subject)), 403)
    refused(lambda: a.revoke_consent(scene.grant_b, "替别人撤回"), 403)
    refused(lambda: a.file_objection(objection(world, "b", "mzj-b")), 403)  # in B's name
    refused(lambda: a.file_objection(objection(world, "a", "mzj-b")), 403)  # about B's record
    refused(lambda: a.request(dataset=DIBAO, record="mzj-b", fields=["name"], purpose=CONSENT_PURPOSE), 403)
    assert world.size() == before
    (grant_b,) = world.citizens["b"].client.consents()
    assert grant_b["status"] == "live"


def test_departments_see_only_what_they_are_party_to(world: World, scene: Scene) -> None:
    mzj, gjj, rsj = (world.depts[d].client for d in ("mzj", "gjj", "rsj"))
    both = {world.consent_agreement, world.duty_agreement}
    assert seqs(mzj.agreements()) == both and seqs(gjj.agreements()) == both
    assert rsj.agreements() == []
    assert seqs(gjj.consents()) == {scene.grant_a, scene.grant_b} and rsj.consents() == []
    assert seqs(gjj.usage()) == {scene.decision_a, scene.release_a, scene.decision_b, scene.release_b}
    assert rsj.usage() == [] and mzj.usage() == []
    assert {r["record"] for r in mzj.records()} == {"mzj-a", "mzj-b"}
    assert {r["record"] for r in gjj.records()} == {"gjj-a"} and rsj.records() == []
    assert seqs(mzj.objections()) == {scene.objection_a, scene.objection_b}
    assert gjj.objections() == [] and rsj.objections() == []
    hidden_from_rsj = [
        world.consent_agreement, world.duty_agreement, scene.grant_a, scene.decision_a, scene.release_a,
        world.records["mzj-a"], scene.objection_a,
    ]  # fmt: skip
    for seq in hidden_from_rsj:
        refused(lambda s=seq: rsj.entry(s), 404)
    for seq in (world.consent_agreement, scene.grant_a, scene.decision_a, scene.release_a, world.records["mzj-a"]):
        assert gjj.entry(seq)["seq"] == seq  # party to each of them
    refused(lambda: mzj.entry(scene.release_a), 404)  # the owner does not read the requester's releases
    refused(lambda: gjj.entry(scene.objection_a), 404)


def test_departments_cannot_act_for_another(world: World) -> None:
    mzj, gjj, rsj = (world.depts[d].client for d in ("mzj", "gjj", "rsj"))
    a = world.citizens["a"]
    before, vault = world.size(), world.vault_rows()
    for dept in (gjj, rsj):
        refused(lambda d=dept: d.revoke_agreement(world.consent_agreement, "越权撤销"), 403)
    refused(
        lambda: gjj.commit_record(
            dataset=DIBAO, record="mzj-x", subject=a.subject,
            values=world.values["mzj-a"],
        ),
        403,
    )  # fmt: skip
    body = world.agreement_body(requester="gjj")
    refused(lambda: gjj.approve_agreement(body | {"owner": world.depts["gjj"].key_id}), 403)  # not its dataset
    refused(lambda: gjj.approve_agreement(body), 403)  # in the owner's name
    refused(lambda: rsj.grant_consent(world.grant_body("a", grantee="rsj")), 403)  # departments do not consent
    assert (world.size(), world.vault_rows()) == (before, vault)
    statuses = {item["entry"]["seq"]: item["status"] for item in mzj.agreements()}
    assert statuses[world.consent_agreement] == "live"


def test_auditors_read_entries_but_request_nothing(world: World, scene: Scene) -> None:
    auditor: ShulianClient = world.auditor
    size = world.size()
    for seq in range(size):
        assert auditor.entry(seq)["seq"] == seq
    page = auditor._send("GET", "/v1/entries", params={"limit": 500})
    assert [e["seq"] for e in page["entries"]] == list(range(size))
    before = world.size()
    refused(lambda: auditor.request(dataset=DIBAO, record="mzj-a", fields=["name"], purpose=CONSENT_PURPOSE), 403)
    refused(lambda: auditor.grant_consent(world.grant_body("a")), 403)
    refused(lambda: auditor.approve_agreement(world.agreement_body()), 403)
    refused(lambda: auditor.file_objection(objection(world, "a", "mzj-a")), 403)
    assert world.size() == before
    # and the others cannot list entries
    for client in (world.citizens["a"].client, world.depts["mzj"].client):
        refused(lambda c=client: c._send("GET", "/v1/entries"), 403)
