"""A log monitor: follows a log's checkpoints and alerts on a bad signature or a fork.

Each new checkpoint must verify under the pinned log key and be proven consistent with the last one
seen (RFC 9162 consistency proof fetched from the log); equal sizes must have equal roots. The last
checkpoint seen is kept in a JSON state file (written atomically), so a restarted monitor still
catches a log that rewrote its history while it was away.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from audit.errors import AuditError
from keys.keystore import atomic_write
from ledger.errors import LedgerError
from ledger.note import Checkpoint, VerifierKey, verify_checkpoint
from ledger.tree import verify_consistency


class MonitorAlert(AuditError):
    """The log misbehaved: a checkpoint with a bad signature, or one inconsistent with an earlier one."""


class MonitorTransportError(AuditError):
    """The log could not be reached or answered something other than what was asked."""


@dataclass(frozen=True)
class Seen:
    size: int
    root: bytes
    note: str


class Monitor:
    def __init__(self, log_url: str, log_key: str, state_path: Path, *, http: httpx.Client | None = None) -> None:
        self.url = log_url.rstrip("/")
        self.key = VerifierKey.parse(log_key)
        self.state_path = state_path
        self.http = http or httpx.Client(timeout=10)
        self.last: Seen | None = None
        if state_path.exists():
            saved = json.loads(state_path.read_text())
            if saved.get("log_key") != self.key.encode():
                raise AuditError(f"state file {state_path} belongs to another log key")
            self.last = Seen(int(saved["size"]), base64.b64decode(saved["root"]), saved["checkpoint"])

    def _get(self, path: str, params: dict[str, int] | None = None) -> httpx.Response:
        try:
            response = self.http.get(self.url + path, params=params)
        except httpx.HTTPError as exc:
            raise MonitorTransportError(f"cannot reach {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise MonitorTransportError(f"GET {path}: {response.status_code} {response.text.strip()[:200]}")
        return response

    def _consistent(self, old: Seen | Checkpoint, new: Checkpoint) -> None:
        if old.size == 0 or old.size == new.size:
            if old.size == new.size and old.root != new.root:
                raise MonitorAlert(f"FORK: two checkpoints of size {new.size} with different roots")
            return
        body = self._get("/v1/proof/consistency", {"first": old.size, "second": new.size}).json()
        try:
            hashes = [base64.b64decode(h) for h in body["hashes"]]
            verify_consistency(old.size, new.size, old.root, new.root, hashes)
        except (LedgerError, KeyError, TypeError, ValueError) as exc:
            raise MonitorAlert(
                f"FORK: checkpoint of size {new.size} is not consistent with the one of size {old.size} "
                f"seen before: {exc}"
            ) from exc

    def poll(self) -> Checkpoint:
        """Fetch and check the latest checkpoint; raise ``MonitorAlert`` on misbehaviour."""
        note = self._get("/v1/checkpoint").text
        try:
            cp = verify_checkpoint(note, self.key)
        except LedgerError as exc:
            raise MonitorAlert(f"BAD SIGNATURE: the log's checkpoint does not verify: {exc}") from exc
        last = self.last
        if last is not None:
            if cp.size < last.size:
                older = Seen(cp.size, cp.root, note)
                self._consistent(older, Checkpoint(cp.origin, last.size, last.root))
                return cp  # a lagging replica: consistent, but the newest seen stays
            self._consistent(last, cp)
        if last is None or (cp.size, cp.root) != (last.size, last.root):
            self.last = Seen(cp.size, cp.root, note)
            state = {
                "log_key": self.key.encode(),
                "size": cp.size,
                "root": base64.b64encode(cp.root).decode(),
                "checkpoint": note,
            }
            atomic_write(self.state_path, json.dumps(state).encode(), mode=0o644)
        return cp

    def run(self, *, interval: float, once: bool, out: Callable[[str], None]) -> None:
        """Poll until an alert (raised); with ``once`` a transport failure is raised too."""
        while True:
            try:
                previous = self.last.size if self.last else None
                cp = self.poll()
                if previous != cp.size:
                    out(f"OK: {cp.origin} size {cp.size} root {base64.b64encode(cp.root).decode()}")
            except MonitorTransportError as exc:
                if once:
                    raise
                out(f"WARNING: {exc}")
            if once:
                return
            time.sleep(interval)
