"""Bad input: every malformed or misdirected request gets a 4xx problem and changes nothing.

"Nothing" is checked on the database: the ledger's size, and for record commits the vault's rows.
Each refusal is paired with a control that the same route takes a good request, so a test cannot pass
merely because the route refuses everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.auth import MAX_REQUEST_BYTES
from api.client import ClientError
from consent.catalogue import parse_dataset
from consent.commitment import commit_record, encode_salts
from keys.keystore import StoredKey
from ledger.canonical import canonical_bytes
from ledger.envelope import MAX_ENTRY_BYTES, sign_envelope
from tests.access.signing import assert_problem, send_signed
from tests.access.world import CONSENT_PURPOSE, DIBAO, DIBAO_FIELDS, World


def signer_for(world: World, route: str) -> StoredKey:
    """A key whose role the route accepts."""
    if route in ("/v1/consents", "/v1/objections"):
        return world.citizens["a"].key
    if route == "/v1/access/requests":
        return world.depts["gjj"].key
    return world.depts["mzj"].key


SIGNED_POSTS = (
    "/v1/datasets",
    "/v1/records",
    "/v1/agreements",
    "/v1/consents",
    "/v1/objections",
    "/v1/access/requests",
)


MISSING = [
    ("mzj.nothing", "mzj-a", ["name"], 404),  # unknown dataset
    (DIBAO, "mzj-zz", ["name"], 404),  # unknown record
    (DIBAO, "gjj-a", ["name"], 404),  # a record of another dataset
    (DIBAO, "mzj-a", ["salary"], 422),  # a field the dataset lacks
    (DIBAO, "mzj-a", ["name", "salary"], 422),
    (DIBAO, "mzj-a", [], 422),
    (DIBAO, "mzj-a", ["name", "name"], 422),
]


def test_request_for_what_does_not_exist(world: World) -> None:
    world.grant("a")
    gjj = world.depts["gjj"].client
    before = world.size()
    for dataset, record, fields, status in MISSING:
        with pytest.raises(ClientError) as caught:
            gjj.request(dataset=dataset, record=record, fields=fields, purpose=CONSENT_PURPOSE)
        assert caught.value.status == status, (dataset, record, fields, caught.value)
        assert "decision" not in caught.value.problem, "a request for nothing is refused before any decision"
    assert world.size() == before
    assert gjj.request(dataset=DIBAO, record="mzj-a", fields=["name"], purpose=CONSENT_PURPOSE).values


MALFORMED = (b"", b"{", b"not json", b"[]", b"null", b"1", b'{"a":1}', b"\xff\xfe{}", b'{"a":1} junk')


def test_malformed_json(world: World, http: httpx.Client) -> None:
    before = world.size()
    for route in SIGNED_POSTS:
        key = signer_for(world, route)
        for body in MALFORMED:
            assert_problem(send_signed(http, key, "POST", route, body), 400, 403, 404, 409, 413, 422)
    assert world.size() == before


def _new_dataset(world: World) -> dict[str, Any]:
    return {
        "dataset": "mzj.marriage", "owner": world.depts["mzj"].key_id, "title": "婚姻登记信息",
        "fields": [{"name": "name", "sensitivity": "high"}], "level": "重要", "personal": True,
        "update_frequency": "每日",
    }  # fmt: skip


def test_wrong_entry_type_on_a_route(world: World, http: httpx.Client) -> None:
    mzj, a = world.depts["mzj"].key, world.citizens["a"].key
    dataset = sign_envelope(mzj.signing, "dataset.register", _new_dataset(world))
    agreement = sign_envelope(mzj.signing, "agreement.approve", world.agreement_body(requester="rsj"))
    grant = sign_envelope(a.signing, "consent.grant", world.grant_body("a"))
    objection = sign_envelope(
        a.signing, "objection.file",
        {"subject": world.citizens["a"].subject, "dataset": DIBAO, "record": "mzj-a", "fields": ["phone"],
         "reason": "电话号码有误"},
    )  # fmt: skip
    wrong = [
        ("/v1/agreements", mzj, dataset),
        ("/v1/datasets", mzj, agreement),
        ("/v1/consents", a, objection),
        ("/v1/objections", a, grant),
        ("/v1/objections", mzj, dataset),  # a department only resolves objections
        ("/v1/records", mzj, canonical_bytes({"entry": json.loads(agreement), "values": {}, "salts": {}})),
    ]
    before = world.size()
    for route, key, body in wrong:
        problem = assert_problem(send_signed(http, key, "POST", route, body), 422)
        assert "this route takes" in str(problem["detail"]), (route, problem)
    assert world.size() == before
    # the same entries are taken on their own routes
    for route, key, body in [
        ("/v1/datasets", mzj, dataset),
        ("/v1/agreements", mzj, agreement),
        ("/v1/consents", a, grant),
        ("/v1/objections", a, objection),
    ]:
        assert send_signed(http, key, "POST", route, body).status_code == 201, route
    assert world.size() == before + 4


def test_entry_signed_by_another_than_the_request_signer(world: World, http: httpx.Client) -> None:
    mzj, gjj = world.depts["mzj"].key, world.depts["gjj"].key
    a, b = world.citizens["a"].key, world.citizens["b"].key
    agreement = sign_envelope(mzj.signing, "agreement.approve", world.agreement_body(requester="rsj"))
    grant = sign_envelope(a.signing, "consent.grant", world.grant_body("a"))
    dataset = sign_envelope(mzj.signing, "dataset.register", _new_dataset(world))
    before = world.size()
    for route, key, body in [
        ("/v1/agreements", gjj, agreement),
        ("/v1/consents", b, grant),
        ("/v1/datasets", gjj, dataset),
    ]:
        problem = assert_problem(send_signed(http, key, "POST", route, body), 403)
        assert "signed by the key that signs the request" in str(problem["detail"])
    assert world.size() == before
    assert send_signed(http, mzj, "POST", "/v1/agreements", agreement).status_code == 201


def _record_doc(
    world: World, record: str, values: dict[str, Any], salts: Any, commitment: str, *, dataset: str = DIBAO
) -> bytes:
    a = world.citizens["a"]
    body = {
        "dataset": dataset, "record": record, "subject": a.subject, "commitment": commitment,
        "version": 1, "replaces": None,
    }  # fmt: skip
    entry = json.loads(sign_envelope(world.depts["mzj"].key.signing, "record.commit", body))
    return canonical_bytes({"entry": entry, "values": values, "salts": salts})


def test_record_values_must_open_the_commitment(world: World, http: httpx.Client) -> None:
    spec = parse_dataset(
        {
            "dataset": DIBAO, "owner": world.depts["mzj"].key_id, "title": "t",
            "fields": [{"name": n, "sensitivity": s} for n, s in DIBAO_FIELDS], "level": "重要",
            "personal": True, "update_frequency": "每月",
        }
    )  # fmt: skip
    values = dict(world.values["mzj-a"])
    made = commit_record(spec, values)
    salts = encode_salts(made.salts)
    other_phone = values | {"phone": "13900000000"}
    swapped = dict(salts) | {"name": salts["phone"], "phone": salts["name"]}
    short = {k: v for k, v in values.items() if k != "address"}
    bad: list[tuple[dict[str, Any], Any]] = [
        (other_phone, salts),  # a value changed after committing
        (values, swapped),  # salts of two fields swapped
        (short, salts),  # a field missing
        (values | {"salary": 1}, salts),  # a field the dataset lacks
        (values, {k: v for k, v in salts.items() if k != "name"}),  # a salt missing
        (values, dict(salts) | {"name": ["not base64!", "x"]}),
        (values, []),
        ([], salts),  # type: ignore[list-item]
    ]
    vault, before = world.vault_rows(), world.size()
    mzj = world.depts["mzj"].key
    for i, (vals, slt) in enumerate(bad):
        r = send_signed(http, mzj, "POST", "/v1/records", _record_doc(world, f"mzj-x{i}", vals, slt, made.root_b64))
        assert_problem(r, 404, 422)
    assert (world.vault_rows(), world.size()) == (vault, before), "a refused record left something behind"
    good = send_signed(http, mzj, "POST", "/v1/records", _record_doc(world, "mzj-ok", values, salts, made.root_b64))
    assert good.status_code == 201, good.text
    assert (world.vault_rows(), world.size()) == (vault + 1, before + 1)


def test_record_for_a_dataset_not_registered(world: World, http: httpx.Client) -> None:
    values, salts = {"name": "测试"}, {"name": ["AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAA=="]}
    root = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    vault, before = world.vault_rows(), world.size()
    r = send_signed(
        http,
        world.depts["mzj"].key,
        "POST",
        "/v1/records",
        _record_doc(world, "r1", values, salts, root, dataset="mzj.nothing"),
    )
    assert_problem(r, 404)
    assert (world.vault_rows(), world.size()) == (vault, before)


def _chunks(total: int) -> Iterator[bytes]:
    piece = b"x" * 65536
    for _ in range(total // len(piece)):
        yield piece


def test_oversize_bodies(world: World, http: httpx.Client) -> None:
    before = world.size()
    for route in [*SIGNED_POSTS, "/v1/entries"]:
        key = signer_for(world, route)
        limit = MAX_ENTRY_BYTES if route == "/v1/entries" else MAX_REQUEST_BYTES
        big = b'{"pad":"' + b"x" * limit + b'"}'
        # signed, with Content-Length
        assert_problem(send_signed(http, key, "POST", route, big), 413)
        # unsigned, with Content-Length, and streamed (chunked, no Content-Length): refused before it is all read
        assert_problem(http.post(route, content=big), 413)
        assert_problem(http.post(route, content=_chunks(limit + 2 * 65536)), 413)
    assert world.size() == before
