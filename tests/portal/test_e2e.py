"""The portal end to end in headless Chromium, against a real `shulian serve` with the demo city.

A citizen consents in the page → a department's request (Python SDK) is allowed → the citizen's
timeline shows the use, verified by the page itself; the department's own page requests, opens and
verifies a release; the citizen revokes → the next request is denied → the timeline shows the denial;
a proof altered in transit is shown as not verified. With ``SHULIAN_PORTAL_SCREENSHOTS=docs`` the
main pages are also saved to ``docs/`` for the README.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import ClientError, ShulianClient
from keys.keystore import StoredKey, load_keystore
from tests.portal.conftest import PortalServer, demo_sign_in, open_page

CITIZEN = "citizen-0003"  # a quiet demo citizen (no demo consents) with a 低保 record
DEPARTMENT = "dept-gjj"  # 市住房公积金管理中心: may ask for 低保 records with the citizen's consent
DATASET = "mzj.dibao"
RECORD = "mzj-db-000003"
PURPOSE = "住房保障资格审核"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def for_docs() -> bool:
    return os.environ.get("SHULIAN_PORTAL_SCREENSHOTS") == "docs"


def shoot(page: Any, name: str, tmp_path: Path) -> None:
    target = DOCS if for_docs() else tmp_path
    target.mkdir(exist_ok=True)
    page.screenshot(path=str(target / f"portal-{name}.png"), full_page=True)


def demo_key(portal: PortalServer, name: str, tmp_path: Path) -> StoredKey:
    """The demo identity's key as the portal hands it out, opened by the Python keystore reader."""
    answer = httpx.post(portal.url + "/portal/demo/sign-in", json={"name": name}, timeout=30)
    answer.raise_for_status()
    doc = answer.json()
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc["keystore"]))
    keys = load_keystore(path, doc["passphrase"].encode())
    assert [k.key_id for k in keys] == [doc["identity"]["key_id"]]
    return keys[0]


def flip_proof_bit(body: bytes, seq: int) -> bytes:
    """The /v1/usage page with one bit of the first proof hash of entry ``seq`` flipped."""
    page = json.loads(body)
    for entry in page["entries"]:
        if entry["seq"] == seq:
            raw = bytearray(base64.b64decode(entry["proof"]["hashes"][0]))
            raw[0] ^= 0x01
            entry["proof"]["hashes"][0] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(page).encode()


def timeline_item(page: Any, seq: int) -> Any:
    return page.locator(f'#timeline li[data-seq="{seq}"]')


def test_consent_use_revoke_deny_and_tampering(browser: Any, portal: PortalServer, tmp_path: Path) -> None:
    citizen = open_page(browser, portal.url + "/citizen")
    demo_sign_in(citizen, CITIZEN)

    # 1. the citizen consents, in plain language, to the 公积金中心 seeing two fields of the 低保 record
    option = citizen.locator(f'form.option-form[data-dataset="{DATASET}"]')
    assert option.count() == 1
    for box in option.locator('input[type="checkbox"]').all():
        if box.get_attribute("value") not in ("household_size", "monthly_allowance"):
            box.uncheck()
    option.locator('button[type="submit"]').click()
    citizen.wait_for_selector("#status .alert-success", timeout=30_000)
    grant = citizen.locator('li.grant[data-status="live"]')
    grant.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert "家庭人口数" in grant.inner_text() and "身份证号" not in grant.inner_text()

    # 2. the department asks with the Python SDK and is allowed
    department = ShulianClient(portal.url, demo_key(portal, DEPARTMENT, tmp_path))
    release = department.request(dataset=DATASET, record=RECORD, fields=["household_size"], purpose=PURPOSE)
    assert set(release.values) == {"household_size"}

    # 3. the citizen sees the use, marked verified by the page
    citizen.click("#timeline-refresh")
    used = timeline_item(citizen, release.decision_seq)
    used.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert used.get_attribute("data-outcome") == "allow"
    text = used.inner_text()
    assert "市住房公积金管理中心" in text and PURPOSE in text and "家庭人口数" in text
    assert f"共享协议第 {release.basis[0]} 条" in text and f"您的授权第 {release.basis[1]} 条" in text

    # 4. the department's own page asks, opens the sealed release and checks it against the ledger
    desk = open_page(browser, portal.url + "/department")
    demo_sign_in(desk, DEPARTMENT)
    options = desk.locator("#request-agreement option").all_inner_texts()
    desk.select_option("#request-agreement", str(next(i for i, o in enumerate(options) if "最低生活保障" in o)))
    for box in desk.locator('#request-fields input[type="checkbox"]').all():
        if box.get_attribute("value") == "monthly_allowance":
            box.check()
        else:
            box.uncheck()
    desk.fill("#request-record", RECORD)
    desk.click('#request-form button[type="submit"]')
    result = desk.locator('#request-result [data-outcome="allow"]')
    result.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert result.locator('tr[data-field="monthly_allowance"] .value').inner_text().strip().isdigit()
    desk.locator("#releases li.release").first.wait_for(timeout=10_000)
    shoot(desk, "department", tmp_path)

    # 5. the citizen revokes; the next request is denied and the timeline shows why
    live = citizen.locator('li.grant[data-status="live"]')
    live.locator('[data-action="revoke"]').click()
    live.locator('[data-action="confirm-revoke"]').click()
    citizen.locator('li.grant[data-status="revoked"]').wait_for(timeout=30_000)
    with pytest.raises(ClientError) as denied:
        department.request(dataset=DATASET, record=RECORD, fields=["household_size"], purpose=PURPOSE)
    assert denied.value.status == 403 and denied.value.problem["reasons"] == ["consent_revoked"]
    deny_seq = denied.value.problem["decision"]
    citizen.click("#timeline-refresh")
    refused = timeline_item(citizen, deny_seq)
    refused.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert refused.get_attribute("data-outcome") == "deny"
    assert "个人授权已撤回" in refused.inner_text()
    shoot(citizen, "citizen", tmp_path)

    # 6. a proof altered in transit is not verified (and the others still are)
    def tamper(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=flip_proof_bit(response.body(), release.decision_seq))

    citizen.route("**/v1/usage*", tamper)
    citizen.reload()
    citizen.wait_for_selector("body[data-ready=true]", timeout=60_000)
    bad = timeline_item(citizen, release.decision_seq)
    bad.locator('.badge[data-state="failed"]').wait_for(timeout=30_000)
    assert bad.locator('.badge[data-state="verified"]').count() == 0
    timeline_item(citizen, deny_seq).locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert citizen.errors == [] and desk.errors == []


def test_auditor_verifies_the_chain(browser: Any, portal: PortalServer, tmp_path: Path) -> None:
    page = open_page(browser, portal.url + "/audit")
    page.wait_for_selector('#cp-verdict[data-state="verified"]', timeout=30_000)
    demo_sign_in(page, "auditor-sjj")
    page.click("#run-start")
    page.wait_for_selector('#run-result [data-state="verified"]', timeout=60_000)
    assert page.locator('#blocks tr .badge[data-state="verified"]').count() == page.locator("#blocks tr").count() > 0
    assert page.locator('#entries li .badge[data-state="verified"]').count() == page.locator("#entries li").count() > 0
    assert page.locator("#chart-decisions svg").count() == 1 or "还没有" in page.inner_text("#chart-decisions")
    shoot(page, "auditor", tmp_path)
    assert page.errors == []


def test_home_in_english_on_a_phone(browser: Any, portal: PortalServer, tmp_path: Path) -> None:
    desktop = open_page(browser, portal.url + "/")
    desktop.wait_for_selector("#demo-signin:not([hidden])", timeout=30_000)
    shoot(desktop, "home", tmp_path)
    page = open_page(browser, portal.url + "/?lang=en", width=390)
    page.wait_for_selector("#demo-signin:not([hidden])", timeout=30_000)
    assert page.locator("html").get_attribute("lang") == "en"
    assert "Sign in" in page.inner_text("#signin")
    # no horizontal scrolling on a phone
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shoot(page, "home-phone-en", tmp_path)
    page.goto(portal.url + "/?lang=zh-CN")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.errors == []


def test_sign_in_with_files_and_new_keys(browser: Any, portal: PortalServer) -> None:
    """A keystore file (wrong then right passphrase), and a key made in the browser that is not registered."""
    page = open_page(browser, portal.url + "/citizen")
    page.wait_for_selector("#signin:not([hidden])", timeout=30_000)
    doc = httpx.post(portal.url + "/portal/demo/sign-in", json={"name": "citizen-0005"}, timeout=30).json()
    upload = {
        "name": "citizen-0005.json",
        "mimeType": "application/json",
        "buffer": json.dumps(doc["keystore"]).encode(),
    }

    page.set_input_files("#keystore-file", files=[upload])
    page.fill("#keystore-pass", "not the passphrase")
    page.click('#keystore-form button[type="submit"]')
    page.wait_for_selector("#status .alert-error", timeout=30_000)
    assert "口令不对" in page.inner_text("#status") and "请检查口令后重试" in page.inner_text("#status")

    page.fill("#keystore-pass", doc["passphrase"])
    page.click('#keystore-form button[type="submit"]')
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    assert "市民0005" in page.inner_text("#who")

    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])", timeout=30_000)
    page.select_option("#newkey-role", "citizen")
    page.fill("#newkey-name", "新市民")
    page.click('#newkey-form button[type="submit"]')
    page.wait_for_selector("#unregistered:not([hidden])", timeout=30_000)
    key_id = page.inner_text("#unreg-keyid").strip()
    body = json.loads(page.inner_text("#unreg-body"))
    assert body["type"] == "identity.register"
    assert body["body"]["key_id"] == key_id and body["body"]["role"] == "citizen" and body["body"]["name"] == "新市民"
    assert len(base64.b64decode(body["body"]["ed25519"])) == 32
    assert page.errors == []


def test_narrowing_a_consent(browser: Any, portal: PortalServer) -> None:
    """Narrow: a smaller new grant is signed, then the old one revoked; both shown verified."""
    page = open_page(browser, portal.url + "/citizen")
    demo_sign_in(page, "citizen-0007")
    page.locator(f'form.option-form[data-dataset="{DATASET}"] button[type="submit"]').click()
    old = page.locator('li.grant[data-status="live"]')
    old.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    old_seq = old.get_attribute("data-seq")
    old.locator('[data-action="narrow"]').click()
    form = old.locator("form.narrow-form")
    for box in form.locator('input[type="checkbox"]').all():
        if box.get_attribute("value") != "household_size":
            box.uncheck()
    form.locator('button[type="submit"]').click()
    page.locator(f'li.grant[data-seq="{old_seq}"][data-status="revoked"]').wait_for(timeout=30_000)
    new = page.locator('li.grant[data-status="live"]')
    new.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert "家庭人口数" in new.inner_text() and "姓名" not in new.inner_text().split("查看")[1]
    assert int(new.get_attribute("data-seq") or 0) > int(old_seq or 0)
    assert page.errors == []


@pytest.mark.skipif(not for_docs(), reason="only when retaking the README's screenshots")
def test_docs_auditor_with_simulated_traffic(browser: Any, portal: PortalServer, tmp_path: Path) -> None:
    """Last: simulated traffic (which may touch any demo identity) so the charts have something in them."""
    cmd = [sys.executable, "-m", "api.cli", "simulate", "--events", "400", "--seed", "5"]
    subprocess.run(cmd, env=portal.env, check=True, capture_output=True, timeout=300)
    page = open_page(browser, portal.url + "/audit")
    demo_sign_in(page, "auditor-sjj")
    page.wait_for_selector("#chart-decisions svg", timeout=30_000)
    shoot(page, "auditor", tmp_path)
