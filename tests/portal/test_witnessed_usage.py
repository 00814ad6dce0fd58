"""The citizen's "who used my data" (and the department's decisions) in headless Chromium under a k-of-n
witness policy (DESIGN §6).

A real witness process (`shulian witness serve`) cosigns the checkpoints of a real `shulian serve`
(over a copy of the demo city). The page marks a use verified only when its inclusion proof holds
against a log-signed checkpoint that the witnesses the server lists (witness_state) cosigned, k of n
as shown on the page. With the witness stopped, a new use is proved against an uncosigned checkpoint
and is shown as not verified, saying why; the older uses stay verified against the witnessed one. The
citizen's SDK and `shulian usage --witness`, given the same policy, accept the first view and refuse the
second.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import ClientError, ShulianClient
from tests.api.conftest import free_port, run_cli
from tests.portal.conftest import PortalServer, clone_server, demo_sign_in, open_page
from tests.portal.test_e2e import CITIZEN, DATASET, DEPARTMENT, RECORD, demo_key, timeline_item
from tests.witness.test_processes import start, stop, wait_cosigned

WITNESS = "audit.example.gov.cn/portal-witness"


def denied_use(department: ShulianClient) -> int:
    """A request the agreement does not cover (an unlisted purpose): denied, and logged; its decision seq."""
    with pytest.raises(ClientError) as denied:
        department.request(dataset=DATASET, record=RECORD, fields=["household_size"], purpose="商业营销")
    assert denied.value.status == 403
    return int(denied.value.problem["decision"])


def test_verified_needs_k_of_n_witnesses(
    browser: Any, portal: PortalServer, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    proc, server = clone_server(portal, tmp_path / "log")
    procs.append(proc)
    w_env = dict(server.env, SHULIAN_HOME=str(tmp_path / "witness"))
    wkey = run_cli(w_env, "witness", "init", "--name", WITNESS).stdout.strip()
    log_key = httpx.get(server.url + "/v1/log/key", timeout=10).text.strip()
    w_port = free_port()
    procs.append(start(w_env, "witness", "serve", "--log-key", log_key, port=w_port, probe="/key"))
    run_cli(server.env, "witness", "add", wkey, f"http://127.0.0.1:{w_port}")

    department = ShulianClient(server.url, demo_key(server, DEPARTMENT, tmp_path))
    first = denied_use(department)
    wait_cosigned(server.url, wkey, size=first + 1, timeout=20)

    # 1. witnessed: the page embeds the policy (1 of 1) and marks the use verified by 1/1 witnesses
    citizen = open_page(browser, server.url + "/citizen")
    demo_sign_in(citizen, CITIZEN)
    policy = citizen.locator("#witness-policy-line")
    assert policy.get_attribute("data-state") == "witnessed" and policy.get_attribute("data-quorum") == "1"
    assert "1 个独立见证方中至少 1 个" in policy.inner_text()
    used = timeline_item(citizen, first)
    used.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert "1/1 见证方联署" in used.inner_text()
    # the department's own decisions are marked under the same policy
    desk = open_page(browser, server.url + "/department")
    demo_sign_in(desk, DEPARTMENT)
    assert desk.locator("#witness-policy-line").get_attribute("data-quorum") == "1"
    decided = desk.locator(f'#decisions li[data-seq="{first}"]')
    decided.locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert "1/1 见证方联署" in decided.inner_text()
    # the SDK under the same policy checks the same proofs and cosignatures
    sdk = ShulianClient(
        server.url, demo_key(server, CITIZEN, tmp_path), log_key=log_key, witnesses=[wkey], quorum=1, witness_wait=0.3
    )
    assert first in [e["seq"] for e in sdk.usage()]
    cli_env = dict(server.env, SHULIAN_HOME=str(tmp_path / "cli"))
    demo = ["--keystore", str(server.home / "keys" / "demo.json"), "--key", CITIZEN, "--url", server.url]
    shown = run_cli(cli_env, "usage", *demo, "--witness", wkey, "--quorum", "1").stdout
    assert f"seq {first} " in shown and "inclusion proof verified" in shown
    impossible = run_cli(cli_env, "usage", *demo, "--witness", wkey, "--quorum", "2", check=False)
    assert impossible.returncode == 2 and "quorum 2" in impossible.stderr

    # 2. the witness down: the next use's checkpoint carries no cosignature, so it is not verified
    stop(procs.pop())
    second = denied_use(department)
    citizen.click("#timeline-refresh")
    fresh = timeline_item(citizen, second)
    fresh.locator('.badge[data-state="failed"]').wait_for(timeout=30_000)
    assert "见证不足" in fresh.locator(".not-witnessed").inner_text()
    assert "1 个见证方中的 0 个联署，需要 1 个" in fresh.inner_text()
    # the earlier use is still proved against the checkpoint the witness cosigned
    timeline_item(citizen, first).locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    assert citizen.errors == []
    desk.click("#decisions-refresh")
    unwitnessed = desk.locator(f'#decisions li[data-seq="{second}"] .badge[data-state="failed"]')
    unwitnessed.wait_for(timeout=30_000)
    assert "0 个联署" in str(unwitnessed.get_attribute("title"))
    desk.locator(f'#decisions li[data-seq="{first}"] .badge[data-state="verified"]').wait_for(timeout=30_000)
    assert desk.errors == []
    with pytest.raises(ClientError, match="not witnessed"):  # the SDK fails closed too
        sdk.usage()
    refused = run_cli(cli_env, "usage", *demo, "--witness", wkey, check=False)
    assert refused.returncode == 1 and "not witnessed" in refused.stderr and refused.stderr.count("\n") == 1
    sdk.close()

    # 3. the server now lists another witness: this browser keeps the policy it pinned (1 of 1, the
    # witness that cosigned), says the list changed, and moves to the new one only when asked
    o_env = dict(server.env, SHULIAN_HOME=str(tmp_path / "other"))
    other = run_cli(o_env, "witness", "init", "--name", "other.example/w").stdout.strip()
    run_cli(server.env, "witness", "add", other, "http://127.0.0.1:9")
    citizen.reload()
    citizen.wait_for_selector("body[data-ready=true]", timeout=60_000)
    policy = citizen.locator("#witness-policy-line")
    assert policy.get_attribute("data-changed") == "true" and policy.get_attribute("data-quorum") == "1"
    assert "1 个独立见证方中至少 1 个" in policy.inner_text() and "固定" in policy.inner_text()
    timeline_item(citizen, first).locator('.badge[data-state="verified"]').wait_for(timeout=30_000)
    citizen.click("#witness-policy-trust")
    citizen.wait_for_selector("body[data-ready=true]", timeout=60_000)
    policy = citizen.locator("#witness-policy-line")
    policy.and_(citizen.locator('[data-changed="false"]')).wait_for(timeout=30_000)
    assert "2 个独立见证方" in policy.inner_text()
    # under the new list the other witness never cosigned: the same use is no longer marked verified
    timeline_item(citizen, first).locator('.badge[data-state="failed"]').wait_for(timeout=30_000)
    assert citizen.errors == []
