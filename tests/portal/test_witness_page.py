"""Witness cosignatures on /audit in headless Chromium: each checked in the page (WebCrypto Ed25519)
against the witness verifier keys the server embeds from its witness_state table.

Two witnesses are configured on a server of its own; one cosigns the served checkpoint, the other's
stored line signs another checkpoint text (as a lying or broken witness would): the page marks the
first verified and the second failed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nacl.signing
import pytest

from api.witnesses import _store, add_witness, list_witnesses
from ledger.cosignature import cosign, witness_vkey
from ledger.note import parse_checkpoint_text, parse_note
from ledger.store import Store
from tests.portal.conftest import PortalServer, open_page, start_server


@pytest.fixture()
def witnessed(tmp_path: Path) -> Iterator[PortalServer]:
    proc, server = start_server(tmp_path / "portal", seed=False)
    yield server
    proc.terminate()
    proc.wait(10)


def test_cosignatures_verified_in_the_page(browser: Any, witnessed: PortalServer) -> None:
    note = httpx.get(witnessed.url + "/v1/checkpoint", timeout=10).text
    text = parse_note(note).text
    cp = parse_checkpoint_text(text)
    store = Store(witnessed.env["SHULIAN_DB"])
    try:
        names = ("good-witness", "bad-witness")
        keys = {n: nacl.signing.SigningKey(hashlib.sha256(n.encode()).digest()) for n in names}
        for name, key in keys.items():
            vkey = witness_vkey(name, key).encode()
            add_witness(store, vkey, f"https://{name}.example")
            signed = text if name == "good-witness" else text.replace(f"\n{cp.size}\n", f"\n{cp.size + 1}\n")
            _store(store, vkey, cp.size, cp.root, cosign(signed, name, key, 1_700_000_000).line())
        listed = {w.vkey for w in list_witnesses(store)}
    finally:
        store.close()
    assert len(listed) == 2

    # the page embeds exactly the configured witness keys
    html = httpx.get(witnessed.url + "/audit", timeout=10).text
    embedded = re.search(r'<script type="application/json" id="witness-keys">(.*?)</script>', html, re.S)
    assert embedded is not None and set(json.loads(embedded[1])) == listed

    page = open_page(browser, witnessed.url + "/audit")
    page.wait_for_selector('#cp-verdict[data-state="verified"]', timeout=30_000)
    good = page.locator('#cp-cosigs li.cosig[data-witness="good-witness"] .badge')
    bad = page.locator('#cp-cosigs li.cosig[data-witness="bad-witness"] .badge')
    good.and_(page.locator('[data-state="verified"]')).wait_for(timeout=30_000)
    bad.and_(page.locator('[data-state="failed"]')).wait_for(timeout=30_000)
    assert "联署有效" in good.inner_text()
    assert page.errors == []
