"""The monitor's verdicts on a log served in-process: a bad signature, a state kept across restarts."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from audit.monitor import Monitor, MonitorAlert
from ledger.note import Checkpoint, sign_note, signer_vkey
from tests.support import fixed_key

ORIGIN = "test.example/log"
LOG_KEY = signer_vkey(ORIGIN, fixed_key("monitor-log")).encode()


def served(note: str, proof: list[bytes] | None = None) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/checkpoint":
            return httpx.Response(200, text=note)
        hashes = [base64.b64encode(h).decode() for h in proof or []]
        return httpx.Response(200, json={"hashes": hashes})

    return httpx.Client(transport=httpx.MockTransport(handler))


def note_of(size: int, root: bytes, key: str = "monitor-log") -> str:
    return sign_note(Checkpoint(ORIGIN, size, root).text(), ORIGIN, fixed_key(key))


def test_bad_signature_alerts(tmp_path: Path) -> None:
    forged = note_of(3, bytes(32), key="not-the-log")
    monitor = Monitor("http://log", LOG_KEY, tmp_path / "state.json", http=served(forged))
    with pytest.raises(MonitorAlert, match=r"^BAD SIGNATURE"):
        monitor.poll()
    assert not (tmp_path / "state.json").exists()


def test_state_survives_a_restart_and_a_rewrite_is_caught(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert Monitor("http://log", LOG_KEY, state, http=served(note_of(4, bytes(32)))).poll().size == 4
    restarted = Monitor("http://log", LOG_KEY, state, http=served(note_of(4, b"\x01" * 32)))
    assert restarted.last is not None and restarted.last.size == 4
    with pytest.raises(MonitorAlert, match=r"^FORK: two checkpoints of size 4"):
        restarted.poll()
    grown = Monitor("http://log", LOG_KEY, state, http=served(note_of(5, bytes(32)), [bytes(32)]))
    with pytest.raises(MonitorAlert, match=r"^FORK: checkpoint of size 5 is not consistent"):
        grown.poll()
