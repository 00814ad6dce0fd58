"""The department's objections panel (数据异议) in headless Chromium: due dates, overdue highlighted, answers.

A citizen (Python SDK) files two objections to their 低保 record on a copy of the demo city; the owning
民政局 commits a corrected version. The page shows both open with their due date 15 days on. The same
ledger is then served 16 days later (the server process under libfaketime, so its clock — which the
page signs and judges by — is 16 days on): both are highlighted overdue; the page answers one by
naming the corrected version and rejects the other with reasons, and they show as answered.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.client import ShulianClient
from consent.objection import objection_body
from tests.api.conftest import start_serve
from tests.portal.conftest import PortalServer, clone_server, demo_sign_in, open_page
from tests.portal.test_e2e import CITIZEN, DATASET, RECORD, demo_key
from tests.witness.test_processes import stop

FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def objection(page: Any, seq: int) -> Any:
    return page.locator(f'#dept-objections li.objection[data-seq="{seq}"]')


def test_objections_due_overdue_and_answered(
    browser: Any, portal: PortalServer, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    if not FAKETIME.is_file():
        pytest.skip(f"no libfaketime at {FAKETIME}: `apt-get install -y faketime`")
    proc, server = clone_server(portal, tmp_path / "log")
    procs.append(proc)
    citizen = ShulianClient(server.url, demo_key(server, CITIZEN, tmp_path))
    subject = citizen.me()["subject"]

    def file(field: str, reason: str) -> int:
        body = objection_body(subject=subject, dataset=DATASET, record=RECORD, fields=[field], reason=reason)
        return int(citizen.file_objection(body)["seq"])

    to_fix, to_reject = file("household_size", "家庭人口应为4人"), file("phone", "电话号码有误")
    mzj = ShulianClient(server.url, demo_key(server, "dept-mzj", tmp_path))
    latest = next(r for r in mzj.records(DATASET) if r["record"] == RECORD)
    values = {
        "name": "居民三号", "id_number": "330106199001010033", "household_size": 4, "monthly_allowance": 1860,
        "approved_on": "2025-06-01", "address": "浙江省杭州市西湖区文三路100号", "phone": "13857112345",
    }  # fmt: skip
    fixed = int(
        mzj.commit_record(
            dataset=DATASET, record=RECORD, subject=latest["subject"], values=values,
            version=latest["version"] + 1, replaces=latest["seq"],
        )["seq"]
    )  # fmt: skip

    # today: both open, due in 15 days, not overdue; the corrected version is offered as the answer
    desk = open_page(browser, server.url + "/department")
    demo_sign_in(desk, "dept-mzj")
    for seq in (to_fix, to_reject):
        item = objection(desk, seq)
        item.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
        assert item.get_attribute("data-overdue") == "false" and "剩余 15 天" in item.locator(".due").inner_text()
    assert f"第 {fixed} 条" in objection(desk, to_fix).locator("option[value=corrected]").inner_text()
    desk.context.close()
    stop(procs.pop())

    # 16 days on: the same ledger, served by a process whose clock is 16 days ahead
    later = dict(server.env, LD_PRELOAD=str(FAKETIME), FAKETIME="+16d", FAKETIME_DONT_FAKE_MONOTONIC="1")
    proc, url = start_serve(later)
    procs.append(proc)
    desk = open_page(browser, url + "/department")
    demo_sign_in(desk, "dept-mzj")
    summary = desk.locator("#objection-summary")
    assert "overdue" in (summary.get_attribute("class") or "")
    for seq in (to_fix, to_reject):
        item = objection(desk, seq)
        assert item.get_attribute("data-overdue") == "true" and "overdue" in (item.get_attribute("class") or "")
        assert "超期 1 天" in item.locator(".due").inner_text()

    # answer both in the page: one corrected by the new version, one rejected with reasons
    form = objection(desk, to_fix).locator("form.resolve-form")
    form.locator("select").select_option("corrected")
    form.locator("textarea").fill("经核实，已更正家庭人口")
    form.locator('button[type="submit"]').click()
    objection(desk, to_fix).and_(desk.locator('[data-status="corrected"]')).wait_for(timeout=30_000)
    form = objection(desk, to_reject).locator("form.resolve-form")
    form.locator("textarea").fill("经核实\n原登记电话无误")
    form.locator('button[type="submit"]').click()
    answered = objection(desk, to_reject).and_(desk.locator('[data-status="rejected"]'))
    answered.wait_for(timeout=30_000)
    assert answered.get_attribute("data-overdue") == "false" and "答复期限" in answered.inner_text()
    assert desk.errors == []
