"""The Python client SDK: signs requests (RFC 9421), checks every proof, opens and verifies releases.

The client pins the log's verifier key, remembers the last checkpoint it accepted (in a small JSON file
when ``state_path`` is given) and accepts a newer one only with a consistency proof from it, so a log
that rewrote history is caught. Every entry it returns has had its inclusion proof checked.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from api.httpsig import sign_request
from consent.catalogue import parse_dataset
from consent.commitment import commit_record, encode_salts
from consent.release import delivered_hash, open_release, verify_release
from keys.keystore import StoredKey, atomic_write
from ledger.canonical import canonical_bytes
from ledger.cosignature import check_policy, get_quorum_result, parse_witness_vkey
from ledger.envelope import sign_envelope
from ledger.errors import LedgerError
from ledger.note import Checkpoint, VerifierKey, verify_checkpoint
from ledger.tree import leaf_hash, verify_consistency, verify_inclusion


class ClientError(Exception):
    """The server answered with a problem, or what it sent does not verify."""

    def __init__(self, message: str, *, status: int | None = None, problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


@dataclass(frozen=True)
class Release:
    """An allowed request: the decision, and the fields released, each checked against the ledger."""

    decision_seq: int
    release_seq: int
    basis: list[int]
    modes: dict[str, str]
    values: dict[str, Any]
    payload: dict[str, Any]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class ShulianClient:
    def __init__(
        self,
        base_url: str,
        key: StoredKey | None = None,
        *,
        log_key: str | None = None,
        state_path: Path | None = None,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
        witnesses: Sequence[str] = (),
        quorum: int | None = None,
        witness_wait: float = 3.0,
    ) -> None:
        """``http`` may be any httpx client, e.g. Starlette's TestClient to drive an app in-process.

        With ``witnesses`` (cosignature/v1 verifier keys) a checkpoint is accepted only with valid
        cosignatures by ``quorum`` of them (default: all), or when proven a prefix of one that has them;
        a checkpoint newer than any witnessed one waits up to ``witness_wait`` seconds for its cosignatures.
        """
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.state_path = state_path
        self.http = http or httpx.Client(timeout=timeout)
        self._pinned = VerifierKey.parse(log_key) if log_key else None
        self.last: Checkpoint | None = None
        self.witnesses = [parse_witness_vkey(w) for w in witnesses]
        self.quorum = len(self.witnesses) if quorum is None else quorum
        self.witness_wait = witness_wait
        if self.witnesses or quorum is not None:
            check_policy(self.witnesses, self.quorum)
        if state_path is not None and state_path.exists():
            saved = json.loads(state_path.read_text())
            self._pinned = self._pinned or VerifierKey.parse(saved["log_key"])
            if saved["log_key"] != self._pinned.encode():
                raise ClientError("the saved checkpoint belongs to another log key")
            self.last = Checkpoint(self._pinned.name, int(saved["size"]), base64.b64decode(saved["root"]))

    def close(self) -> None:
        self.http.close()

    # -- transport ---------------------------------------------------------------------------
    def _send(self, method: str, path: str, body: bytes = b"", params: dict[str, Any] | None = None) -> Any:
        request = self.http.build_request(
            method, self.base_url + path, content=body, params=params, headers={"content-type": "application/json"}
        )
        if self.key is not None:
            request.headers.update(
                sign_request(
                    method=request.method,
                    url=str(request.url),
                    headers=request.headers,
                    body=body,
                    key=self.key.signing,
                    key_id=self.key.key_id,
                )
            )
        response = self.http.send(request)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            detail = problem.get("detail", response.reason_phrase)
            raise ClientError(f"{response.status_code} {detail}", status=response.status_code, problem=problem)
        ctype = response.headers.get("content-type", "")
        return response.json() if ctype.startswith("application/json") else response.text

    def _signed_key(self) -> StoredKey:
        if self.key is None:
            raise ClientError("this operation needs a key")
        return self.key

    # -- transparency ------------------------------------------------------------------------
    def log_key(self) -> VerifierKey:
        if self._pinned is None:
            self._pinned = VerifierKey.parse(self._send("GET", "/v1/log/key"))
        return self._pinned

    def accept_checkpoint(self, note: str) -> Checkpoint:
        """Verify ``note`` under the pinned log key and its consistency with the last one accepted."""
        try:
            cp = verify_checkpoint(note, self.log_key())
        except LedgerError as exc:
            raise ClientError(f"checkpoint does not verify: {exc}") from exc
        if self.witnesses:
            witnessed = get_quorum_result(note, self.witnesses, self.quorum)
            if not witnessed:
                return self._accept_unwitnessed(cp, witnessed.message)
        last = self.last
        if last is not None and cp.size < last.size:
            # an older checkpoint (a proof against an earlier size, a lagging replica) must still be a
            # prefix of the newest one seen, or a shorter fork would pass; the newest stays
            self._check_consistency(cp, last)
            return cp
        if last is not None and (cp.size, cp.root) != (last.size, last.root):
            self._check_consistency(last, cp)
        self.last = cp
        if self.state_path is not None:
            state = {"log_key": self.log_key().encode(), "size": cp.size, "root": _b64(cp.root)}
            atomic_write(self.state_path, json.dumps(state).encode())
        return cp

    def _accept_unwitnessed(self, cp: Checkpoint, why: str) -> Checkpoint:
        """Fail closed: a checkpoint short of the quorum passes only as a proven prefix of a witnessed one."""
        deadline = time.monotonic() + self.witness_wait
        while self.last is None or cp.size > self.last.size:
            newest = self._send("GET", "/v1/checkpoint")  # witnesses cosign a new checkpoint within moments
            if get_quorum_result(newest, self.witnesses, self.quorum):
                self.accept_checkpoint(newest)
            elif time.monotonic() >= deadline:
                break
            else:
                time.sleep(0.2)
        last = self.last
        if last is None or cp.size > last.size:
            raise ClientError(f"checkpoint of size {cp.size} is not witnessed: {why}")
        if (cp.size, cp.root) != (last.size, last.root):
            self._check_consistency(cp, last)
        return cp

    def _check_consistency(self, old: Checkpoint, new: Checkpoint) -> None:
        """Raise unless the server proves the tree of ``old`` a prefix of the tree of ``new``."""
        try:
            proof = self._send("GET", "/v1/proof/consistency", params={"first": old.size, "second": new.size})
            hashes = [base64.b64decode(h) for h in proof["hashes"]]
            verify_consistency(old.size, new.size, old.root, new.root, hashes)
        except (ClientError, LedgerError, KeyError, TypeError, ValueError) as exc:
            raise ClientError(
                f"log is not consistent: checkpoint of size {old.size} is not shown a prefix of size {new.size}: {exc}"
            ) from exc

    def checkpoint(self) -> Checkpoint:
        return self.accept_checkpoint(self._send("GET", "/v1/checkpoint"))

    def verify_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Check an entry's leaf hash and inclusion proof against its (verified) checkpoint."""
        cp = self.accept_checkpoint(entry["checkpoint"])
        leaf = base64.b64decode(entry["leaf"])
        try:
            if leaf_hash(leaf) != base64.b64decode(entry["leaf_hash"]):
                raise ClientError(f"entry {entry['seq']}: leaf hash does not match its bytes")
            proof = entry["proof"]
            if proof["tree_size"] != cp.size:
                raise ClientError(f"entry {entry['seq']}: proof is for another tree size")
            hashes = [base64.b64decode(h) for h in proof["hashes"]]
            verify_inclusion(entry["seq"], cp.size, leaf_hash(leaf), hashes, cp.root)
        except LedgerError as exc:
            raise ClientError(f"entry {entry['seq']}: inclusion proof does not verify: {exc}") from exc
        return entry

    def _verify_appended(self, out: dict[str, Any], leaf: bytes | None = None) -> dict[str, Any]:
        cp = self.accept_checkpoint(out["checkpoint"])
        h = base64.b64decode(out["leaf_hash"])
        if leaf is not None and h != leaf_hash(leaf):
            raise ClientError("the server logged other bytes than the ones sent")
        try:
            verify_inclusion(out["seq"], cp.size, h, [base64.b64decode(x) for x in out["inclusion"]], cp.root)
        except LedgerError as exc:
            raise ClientError(f"seq {out['seq']}: inclusion proof does not verify: {exc}") from exc
        return out

    # -- domain ------------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self._send("GET", "/v1/me")
        return result

    def datasets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._send("GET", "/v1/datasets")
        return result

    def entry(self, seq: int) -> dict[str, Any]:
        return self.verify_entry(self._send("GET", f"/v1/entries/{seq}"))

    def append(self, path: str, entry_type: str, body: dict[str, Any]) -> dict[str, Any]:
        """Sign an entry with the client's key, post it to ``path`` and check its inclusion proof."""
        leaf = sign_envelope(self._signed_key().signing, entry_type, body)
        return self._verify_appended(self._send("POST", path, leaf), leaf)

    def register_dataset(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.append("/v1/datasets", "dataset.register", body)

    def commit_record(
        self, *, dataset: str, record: str, subject: str, values: dict[str, Any], version: int = 1,
        replaces: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Commit a record version: salted commitments on the ledger, values to the vault."""
        ds = next((d for d in self.datasets() if d["dataset"] == dataset), None)
        if ds is None:
            raise ClientError(f"no dataset {dataset}")
        spec = parse_dataset({k: v for k, v in ds.items() if k != "seq"})
        made = commit_record(spec, values)
        body = {
            "dataset": dataset, "record": record, "subject": subject, "commitment": made.root_b64,
            "version": version, "replaces": replaces,
        }  # fmt: skip
        leaf = sign_envelope(self._signed_key().signing, "record.commit", body)
        doc = {"entry": json.loads(leaf), "values": values, "salts": encode_salts(made.salts)}
        return self._verify_appended(self._send("POST", "/v1/records", canonical_bytes(doc)), leaf)

    def records(self, dataset: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._send(
            "GET", "/v1/records", params={"dataset": dataset} if dataset else None
        )
        return result

    def approve_agreement(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.append("/v1/agreements", "agreement.approve", body)

    def revoke_agreement(self, seq: int, reason: str) -> dict[str, Any]:
        return self.append("/v1/agreements", "agreement.revoke", {"agreement": seq, "reason": reason})

    def grant_consent(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.append("/v1/consents", "consent.grant", body)

    def revoke_consent(self, seq: int, reason: str) -> dict[str, Any]:
        return self.append("/v1/consents", "consent.revoke", {"grant": seq, "reason": reason})

    def _statuses(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._send("GET", path)
        for item in items:
            self.verify_entry(item["entry"])
        return items

    def agreements(self) -> list[dict[str, Any]]:
        return self._statuses("/v1/agreements")

    def consents(self) -> list[dict[str, Any]]:
        return self._statuses("/v1/consents")

    def objections(self) -> list[dict[str, Any]]:
        return self._statuses("/v1/objections")

    def file_objection(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.append("/v1/objections", "objection.file", body)

    def resolve_objection(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.append("/v1/objections", "objection.resolve", body)

    def usage(self) -> list[dict[str, Any]]:
        """Every decision and release visible to the caller, each inclusion proof checked."""
        out: list[dict[str, Any]] = []
        after: int | None = None
        while True:
            page = self._send("GET", "/v1/usage", params={"after": after} if after is not None else None)
            out.extend(self.verify_entry(e) for e in page["entries"])
            after = page["next_after"]
            if after is None:
                return out

    def request(self, *, dataset: str, record: str, fields: list[str], purpose: str) -> Release:
        """Ask for fields of a record; on an allow, open the sealed release and check it against the ledger.

        A deny raises ``ClientError`` with status 403 and the logged decision's seq and reasons.
        """
        key = self._signed_key()
        body = canonical_bytes({"dataset": dataset, "record": record, "fields": fields, "purpose": purpose})
        out = self._send("POST", "/v1/access/requests", body)
        decision, release = out["decision"], out["release"]
        self._verify_appended(decision["appended"])
        self._verify_appended(release["appended"])
        sealed = base64.b64decode(release["sealed"])
        if delivered_hash(sealed) != release["delivered"]:
            raise ClientError("the sealed release does not match its logged hash")
        logged = self.entry(release["seq"])
        if logged["body"]["delivered"] != delivered_hash(sealed):
            raise ClientError("the ledger's usage.release names other bytes than the ones delivered")
        if key.x25519 is None:
            raise ClientError("this key has no X25519 key to open releases with")
        try:
            payload = open_release(sealed, key.x25519)
            commit = self.entry(payload["record_seq"])
            if commit["type"] != "record.commit" or commit["body"]["record"] != record:
                raise ClientError("the release points at another record")
            values = verify_release(payload, base64.b64decode(commit["body"]["commitment"]))
        except LedgerError as exc:
            raise ClientError(f"the release does not verify against the ledger: {exc}") from exc
        return Release(decision["seq"], release["seq"], decision["basis"], decision["modes"], values, payload)
