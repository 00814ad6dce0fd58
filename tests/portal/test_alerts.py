"""The 异常告警 (Alerts) panel of /audit in headless Chromium, over its own `shulian serve`.

A department sends a burst of requests that are all denied (no consent), which the ``denial_burst``
rule reports; the auditor sees the alert, its seqs link into the entry explorer (which verifies the
entry); the department sees its own alert without the explorer; a citizen has no panel.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.client import ClientError, ShulianClient
from tests.portal.conftest import PortalServer, demo_sign_in, open_page, start_server
from tests.portal.test_e2e import DATASET, DEPARTMENT, PURPOSE, RECORD, demo_key

BURST = 30  # DenialBurst's default min_denials


@pytest.fixture()
def own_portal(tmp_path: Path) -> Iterator[PortalServer]:
    """A server of its own: the burst of denials must not show in the other tests' ledger."""
    proc, server = start_server(tmp_path / "portal")
    yield server
    proc.terminate()
    proc.wait(10)


def test_alerts_panel(browser: Any, own_portal: PortalServer, tmp_path: Path) -> None:
    # before any anomaly: the clear empty state
    page = open_page(browser, own_portal.url + "/audit")
    demo_sign_in(page, "auditor-sjj")
    page.wait_for_selector('#alerts [data-state="empty"]', timeout=30_000)
    assert page.is_visible("#alerts-panel") and "异常告警" in page.inner_text("#alerts-panel")

    # a burst of denied requests (the demo citizen gave this department no consent)
    department = ShulianClient(own_portal.url, demo_key(own_portal, DEPARTMENT, tmp_path))
    for _ in range(BURST):
        with pytest.raises(ClientError) as denied:
            department.request(dataset=DATASET, record=RECORD, fields=["household_size"], purpose=PURPOSE)
        assert denied.value.status == 403

    # the auditor sees the alert; a seq link opens the entry, verified, in the entry explorer
    page.reload()
    page.wait_for_selector("body[data-ready=true]", timeout=60_000)
    row = page.locator('#alerts tr.alert-row[data-code="denial_burst"]')
    row.wait_for(timeout=30_000)
    assert row.get_attribute("data-severity") == "medium" and "短时间内大量拒绝" in row.inner_text()
    link = row.locator("a.seq-link").first
    seq = link.get_attribute("data-seq")
    link.click()
    page.locator(f'#entries li[data-seq="{seq}"] .badge[data-state="verified"]').wait_for(timeout=30_000)
    assert page.errors == []

    # in English
    english = open_page(browser, own_portal.url + "/audit?lang=en")
    demo_sign_in(english, "auditor-sjj")
    english.locator('#alerts tr.alert-row[data-code="denial_burst"]').wait_for(timeout=30_000)
    assert "Alerts" in english.inner_text("#alerts-title") and "Burst of denials" in english.inner_text("#alerts")
    assert english.errors == []

    # the department sees its own alert, with no entry explorer to link into
    desk = open_page(browser, own_portal.url + "/audit")
    demo_sign_in(desk, DEPARTMENT)
    desk.locator('#alerts tr.alert-row[data-code="denial_burst"]').wait_for(timeout=30_000)
    assert desk.locator("#alerts a.seq-link").count() == 0 and desk.is_hidden("#auditor-only")
    assert desk.errors == []

    # a citizen has no alerts panel
    citizen = open_page(browser, own_portal.url + "/audit")
    demo_sign_in(citizen, "citizen-0003")
    assert citizen.is_hidden("#alerts-panel") and citizen.locator("#alerts tr").count() == 0
    assert citizen.errors == []
