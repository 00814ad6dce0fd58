"""The portal's server side: pages in both languages, strings, headers, static files, demo sign-in rules.

No browser here: pages are fetched with Starlette's TestClient over a fresh ledger, and the demo
sign-in is checked over the session's real server (SHULIAN_ENV=development, demo city seeded).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from api import world
from api.app import create_app
from api.node import Node
from api.portal.data import STEPS
from api.portal.pages import LANGS, PAGES, PORTAL_DIR, catalogue, render_page
from audit.rules import SEVERITIES, default_rules
from consent.decision import DENY_REASONS
from keys.roles import ROLES
from ledger.envelope import ENTRY_TYPES
from tests.portal.conftest import PortalServer

JS = PORTAL_DIR / "static" / "js"
PATHS = {"home": "/", "citizen": "/citizen", "department": "/department", "audit": "/audit"}


@pytest.fixture
def client(sqlite_url: str, shulian_home: Path) -> Iterator[TestClient]:
    node = Node(sqlite_url, shulian_home)
    node.init(origin="pages.example.gov.cn/shulian")
    with TestClient(create_app(node)) as c:
        yield c
    node.close()


def test_catalogues_have_the_same_keys_and_every_string_used() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert set(zh) == set(en)
    used: set[str] = set()
    for template in (PORTAL_DIR / "templates").glob("*.html"):
        used |= set(re.findall(r"\{\{t:([A-Za-z0-9_.\-]+)\}\}", template.read_text(encoding="utf-8")))
    for module in JS.glob("*.js"):
        used |= set(re.findall(r"""\bt\(\s*["']([A-Za-z0-9_.\-]+)["']""", module.read_text(encoding="utf-8")))
    assert used - set(zh) == set()
    # families the modules build keys for
    needed = {f"reason.{r}" for r in DENY_REASONS} | {f"type.{t}" for t in ENTRY_TYPES}
    needed |= {f"role.{r}" for r in ROLES if r != "service"} | {"role.service"}
    needed |= {f"status.{s}" for s in ("live", "revoked", "expired", "not_yet_valid", "exhausted")}
    needed |= {f"field.{name}" for ds in world.DATASETS for name, _ in ds.fields}
    needed |= {f"objection.{s}" for s in ("open", "corrected", "rejected")}
    needed |= {f"chart.unit.{unit}" for unit, _ in STEPS}
    needed |= {f"alert.rule.{r.code}" for r in default_rules()} | {f"alert.severity.{s}" for s in SEVERITIES}
    assert needed - set(zh) == set()
    assert all(v.strip() for v in zh.values()) and all(v.strip() for v in en.values())


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_page_renders(page: str, lang: str) -> None:
    html = render_page(
        page,
        lang,
        path=PATHS[page],
        extra={
            "env": "test",
            "checkpoint_note": "",
            "witness_keys": "[]",
            "witness_policy": "{}",
            "objection_deadline_days": "15",
        },
    )
    assert f'<html lang="{lang}">' in html and "{{" not in html
    assert f'src="/portal/static/js/{PAGES[page][1]}"' in html
    assert (JS / PAGES[page][1]).is_file()
    strings = json.loads(re.search(r'<script type="application/json" id="i18n">(.*?)</script>', html, re.S)[1])
    assert strings == catalogue(lang)


def test_pages_are_chinese_first_with_an_english_switch(client: TestClient) -> None:
    for path in PATHS.values():
        r = client.get(path)
        assert r.status_code == 200 and '<html lang="zh-CN">' in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        for url in re.findall(r'(?:src|href)="([^"]+)"', r.text):
            assert url[0] in "/?#" and not url.startswith("//"), f"{path} loads {url} from elsewhere"
    r = client.get("/citizen?lang=en")
    assert '<html lang="en">' in r.text and r.cookies.get("lang") == "en"
    assert '<html lang="en">' in client.get("/audit").text  # the cookie keeps the choice
    client.cookies.set("lang", "xx")
    assert '<html lang="zh-CN">' in client.get("/?lang=fr").text


def test_audit_page_renders_the_latest_checkpoint(client: TestClient) -> None:
    note = client.get("/v1/checkpoint").text
    assert note.splitlines()[0] in client.get("/audit").text


def test_static_files_stay_inside_the_portal(client: TestClient) -> None:
    r = client.get("/portal/static/js/merkle.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    for path in ("/portal/static/../routes/portal.py", "/portal/static/%2e%2e/pages.py", "/portal/static/nope.js"):
        assert client.get(path).status_code == 404
    modules = {m.name for m in JS.glob("*.js")}
    for module in JS.glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', module.read_text(encoding="utf-8")):
            assert imported in modules, f"{module.name} imports a missing {imported}"
        assert "http://" not in module.read_text(encoding="utf-8").replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize("env", [None, "production", "staging", "Development"])
def test_demo_sign_in_refused_outside_development(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, env: str | None
) -> None:
    if env is None:
        monkeypatch.delenv("SHULIAN_ENV", raising=False)
    else:
        monkeypatch.setenv("SHULIAN_ENV", env)
    for r in (client.get("/portal/demo/identities"), client.post("/portal/demo/sign-in", json={"name": "dept-gjj"})):
        assert r.status_code == 404
        assert "SHULIAN_ENV=development" in r.json()["detail"]
    assert 'data-env="development"' not in client.get("/").text


def test_portal_read_models_need_a_signed_request(client: TestClient) -> None:
    for path in ("directory", "consent-options", "objection-resolutions", "stats", "blocks"):
        r = client.get(f"/portal/api/{path}")
        assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


def test_demo_identities_in_development(portal: PortalServer) -> None:
    found = httpx.get(portal.url + "/portal/demo/identities", timeout=30).json()["identities"]
    roles = {i["role"] for i in found}
    assert roles == {"citizen", "department", "auditor"}
    assert {i["label"] for i in found if i["role"] == "department"} == {d.name for d in world.DEPARTMENTS}
    r = httpx.post(portal.url + "/portal/demo/sign-in", json={"name": "citizen-9999"}, timeout=30)
    assert r.status_code == 404
    r = httpx.post(portal.url + "/portal/demo/sign-in", json={"name": "citizen-0001"}, timeout=30)
    doc = r.json()
    assert r.headers["cache-control"] == "no-store"
    assert doc["keystore"]["kdf"]["name"] == "pbkdf2-sha256" and doc["keystore"]["cipher"] == "aes-256-gcm"
    assert doc["keystore"]["key_ids"] == [doc["identity"]["key_id"]]
