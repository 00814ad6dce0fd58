"""JSON log lines and the request id: taken from X-Request-ID when well-formed, echoed, in every problem body."""

from __future__ import annotations

import re

import httpx

from api.client import ShulianClient
from keys.keystore import load_key
from tests.ops.conftest import PASSPHRASE, Live

ACCESS_FIELDS = {"time", "level", "logger", "message", "request_id", "method", "path", "status", "duration_ms"}


def test_request_id_round_trip_and_access_line(live: Live) -> None:
    rid = "ops-rid-0001"
    r = httpx.get(live.url + "/v1/checkpoint", headers={"X-Request-ID": rid}, timeout=30)
    assert r.status_code == 200
    assert r.headers["x-request-id"] == rid
    line = live.wait_for_log({"request_id": rid, "logger": "shulian.access"})
    assert set(line) >= ACCESS_FIELDS
    assert (line["level"], line["method"], line["path"], line["status"]) == ("info", "GET", "/v1/checkpoint", 200)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert "key_id" not in line  # not authenticated


def test_malformed_request_ids_are_replaced(live: Live) -> None:
    for bad in ("has spaces in it", "x" * 129, "semi;colon", ""):
        r = httpx.get(live.url + "/healthz", headers={"X-Request-ID": bad}, timeout=30)
        assert r.status_code == 200
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), (bad, r.headers["x-request-id"])
    r = httpx.get(live.url + "/healthz", timeout=30)
    generated = r.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    live.wait_for_log({"request_id": generated, "path": "/healthz", "status": 200})


def test_problem_bodies_carry_the_request_id(live: Live) -> None:
    rid = "ops-rid-problem"
    r = httpx.get(live.url + "/v1/proof/inclusion", params={"hash": "zz"}, headers={"X-Request-ID": rid}, timeout=30)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["request_id"] == rid == r.headers["x-request-id"]
    r = httpx.get(live.url + "/v1/me", timeout=30)  # unsigned: 401, with a generated id
    assert r.status_code == 401
    assert r.json()["request_id"] == r.headers["x-request-id"]
    line = live.wait_for_log({"request_id": r.headers["x-request-id"]})
    assert line["status"] == 401 and "key_id" not in line


def test_authenticated_lines_name_the_key(live: Live) -> None:
    admin = load_key(live.home / "keys" / "admin.json", "admin", PASSPHRASE)
    rid = "ops-rid-signed"
    with httpx.Client(headers={"X-Request-ID": rid}, timeout=60) as http:
        me = ShulianClient(live.url, admin, http=http).me()
    assert me["key_id"] == admin.key_id
    line = live.wait_for_log({"request_id": rid, "path": "/v1/me"})
    assert line["key_id"] == admin.key_id and line["status"] == 200


def test_every_line_is_one_json_object(live: Live) -> None:
    httpx.get(live.url + "/v1/log/key", timeout=30)
    lines = live.log_lines()  # json.loads of every line: a stray text line fails here
    assert lines
    assert {"uvicorn.error", "shulian.access"} <= {line["logger"] for line in lines}
    assert not [line for line in lines if line["logger"].startswith("alembic")]  # the schema check is quiet
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
