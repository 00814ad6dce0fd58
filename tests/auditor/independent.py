"""An auditor's own program, written from DESIGN §9, RFC 9162, RFC 8785 and C2SP only.

It imports nothing from Shulian: stdlib JSON and hashing, PyNaCl for Ed25519, rfc8785 for canonical
JSON. Given an export it recomputes every leaf hash and root, checks every entry signature against
the keys the ledger itself registers, every block header signature and link, every checkpoint; and
it replays the data chain: every usage.release rests on an allow decision, every allow on an
unrevoked agreement in its window covering dataset, fields and purpose and, where the agreement
requires consent, on an unrevoked grant of the record's subject in its window with uses left.
Public proofs are checked over HTTP. Each check raises ``AuditFailure`` naming what is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import nacl.exceptions
import nacl.signing
import rfc8785


class AuditFailure(Exception):
    pass


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 over leaf hashes (recursive, as written in the RFC)."""
    if not hashes:
        return sha(b"")
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return sha(b"\x01" + mth(hashes[:k]) + mth(hashes[k:]))


def ed25519_ok(pub: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(pub).verify(msg, sig)
        return True
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False


def parse_vkey(vkey: str) -> tuple[str, bytes, bytes]:
    name, keyhash, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    if raw[0] != 1 or sha(name.encode() + b"\n" + raw)[:4].hex() != keyhash:
        raise AuditFailure("log key malformed")
    return name, raw[1:], bytes.fromhex(keyhash)


def check_note(note: str, name: str, pub: bytes, keyhash: bytes) -> tuple[int, bytes]:
    text, _, sigs = note.partition("\n\n")
    text += "\n"
    for line in sigs.splitlines():
        dash, signer, b64 = line.split(" ")
        raw = base64.b64decode(b64)
        if dash == "\u2014" and signer == name and raw[:4] == keyhash and ed25519_ok(pub, text.encode(), raw[4:]):
            origin, size, root = text.splitlines()
            if origin != name:
                raise AuditFailure("checkpoint origin is not the log's")
            return int(size), base64.b64decode(root)
    raise AuditFailure("checkpoint not signed by the log key")


def audit_export(lines: list[str]) -> dict[str, Any]:
    """Check an export; return figures. Raises on the first fault."""
    head = json.loads(lines[0])
    if head["format"] != "shulian-export/1":
        raise AuditFailure("not a shulian export")
    name, log_pub, keyhash = parse_vkey(head["log_key"])
    entries: list[dict[str, Any]] = []
    leaf_hashes: list[bytes] = []
    blocks: list[dict[str, Any]] = []
    for line in lines[1:]:
        item = json.loads(line)
        if "seq" in item:
            if item["seq"] != len(entries):
                raise AuditFailure(f"seq {item['seq']}: out of order")
            leaf = base64.b64decode(item["leaf"])
            env = json.loads(leaf)
            if rfc8785.dumps(env) != leaf:
                raise AuditFailure(f"seq {item['seq']}: leaf is not canonical")
            entries.append(env)
            leaf_hashes.append(sha(b"\x00" + leaf))
        elif "block" in item:
            blocks.append(item)
    keys: dict[str, bytes] = {}
    for seq, env in enumerate(entries):
        unsigned = {k: v for k, v in env.items() if k != "sig"}
        body = env["body"]
        pub = keys.get(env["actor"])
        if seq == 0:
            pub = base64.b64decode(body["ed25519"])
        if pub is None or not ed25519_ok(pub, rfc8785.dumps(unsigned), base64.b64decode(env["sig"])):
            raise AuditFailure(f"seq {seq}: signature does not verify under a registered key")
        if env["type"] in ("identity.register", "identity.rotate"):
            new = base64.b64decode(body["ed25519"])
            if sha(new)[:16].hex() != body["key_id"]:
                raise AuditFailure(f"seq {seq}: key id is not the hash of its key")
            keys[body["key_id"]] = new
    prev = bytes(32)
    size = 0
    for b in blocks:
        header = b["header"]
        unsigned = {k: v for k, v in header.items() if k != "sig"}
        if not ed25519_ok(log_pub, rfc8785.dumps(unsigned), base64.b64decode(header["sig"])):
            raise AuditFailure(f"block {b['block']}: header signature")
        if base64.b64decode(header["prev"]) != prev or header["first_seq"] != size:
            raise AuditFailure(f"block {b['block']}: chain link")
        root = mth(leaf_hashes[: header["tree_size"]])
        if base64.b64decode(header["root"]) != root:
            raise AuditFailure(f"block {b['block']}: root")
        cp_size, cp_root = check_note(b["checkpoint"], name, log_pub, keyhash)
        if (cp_size, cp_root) != (header["tree_size"], root):
            raise AuditFailure(f"block {b['block']}: checkpoint differs from its header")
        prev = sha(rfc8785.dumps(header))
        size = header["tree_size"]
    if size != len(entries):
        raise AuditFailure("entries not sealed by any block")
    return {"entries": len(entries), "blocks": len(blocks), "root": mth(leaf_hashes), **replay_chain(entries)}


def replay_chain(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Every release rests on an allow; every allow on a live agreement and, where required, consent."""
    origin_of: dict[str, str] = {}  # key id -> first key id of its rotation chain
    agreements: dict[int, dict[str, Any]] = {}
    revoked_agreements: set[int] = set()
    grants: dict[int, dict[str, Any]] = {}
    revoked_grants: set[int] = set()
    uses: dict[int, int] = {}
    records: dict[int, dict[str, Any]] = {}
    allows: dict[int, dict[str, Any]] = {}
    released: set[int] = set()
    counts = {"releases": 0, "allows": 0, "denies": 0}
    for seq, env in enumerate(entries):
        t, body, ts = env["type"], env["body"], env["ts"]
        if t == "identity.register":
            origin_of[body["key_id"]] = body["key_id"]
        elif t == "identity.rotate":
            origin_of[body["key_id"]] = origin_of.get(body["replaces"], body["replaces"])
        elif t == "record.commit":
            records[seq] = body
        elif t == "agreement.approve":
            agreements[seq] = body
        elif t == "agreement.revoke":
            revoked_agreements.add(body["agreement"])
        elif t == "consent.grant":
            grants[seq] = body
        elif t == "consent.revoke":
            revoked_grants.add(body["grant"])
        elif t == "access.decision":
            if body["outcome"] != "allow":
                counts["denies"] += 1
                continue
            counts["allows"] += 1
            who = origin_of.get(body["requester"], body["requester"])
            ag_seq = body["basis"][0]
            ag = agreements.get(ag_seq)
            if ag is None or ag_seq in revoked_agreements or not ag["valid_from"] <= ts < ag["valid_until"]:
                raise AuditFailure(f"seq {seq}: allow without a live agreement")
            scope = ag["scope"].get(body["dataset"], {})
            if (
                origin_of.get(ag["requester"], ag["requester"]) != who
                or body["purpose"] not in ag["purposes"]
                or any(f not in scope for f in body["fields"])
            ):
                raise AuditFailure(f"seq {seq}: the agreement does not cover the allow")
            record = records.get(body["record_seq"])
            if record is None or record["subject"] != body["subject"] or record["record"] != body["record"]:
                raise AuditFailure(f"seq {seq}: allow names a record that is not on the ledger")
            if ag["consent_required"]:
                if len(body["basis"]) < 2:
                    raise AuditFailure(f"seq {seq}: allow without the consent its agreement requires")
                g_seq = body["basis"][1]
                g = grants.get(g_seq)
                if (
                    g is None
                    or g_seq in revoked_grants
                    or g["subject"] != body["subject"]
                    or origin_of.get(g["grantee"], g["grantee"]) != who
                    or g["purpose"] != body["purpose"]
                    or not g["valid_from"] <= ts < g["valid_until"]
                    or any(f not in g["scope"].get(body["dataset"], []) for f in body["fields"])
                    or (g["max_uses"] is not None and uses.get(g_seq, 0) >= g["max_uses"])
                ):
                    raise AuditFailure(f"seq {seq}: allow without a live consent of the subject")
                uses[g_seq] = uses.get(g_seq, 0) + 1
            allows[seq] = body
        elif t == "usage.release":
            decision = body["decision"]
            if decision not in allows or decision in released:
                raise AuditFailure(f"seq {seq}: release without an allow of its own")
            released.add(decision)
            counts["releases"] += 1
    return counts


def check_public_proofs(url: str, lines: list[str]) -> int:
    """Inclusion proofs of a sample of entries and a consistency proof, from the public endpoints."""
    name, pub, keyhash = parse_vkey(httpx.get(url + "/v1/log/key").text.strip())
    size, root = check_note(httpx.get(url + "/v1/checkpoint").text, name, pub, keyhash)
    leaves = [base64.b64decode(json.loads(x)["leaf"]) for x in lines[1:] if '"seq"' in x[:8]]
    checked = 0
    for seq in sorted({0, 1, len(leaves) // 2, len(leaves) - 1}):
        h = sha(b"\x00" + leaves[seq])
        q = base64.urlsafe_b64encode(h).decode().rstrip("=")
        proof = httpx.get(url + "/v1/proof/inclusion", params={"hash": q, "size": size}).json()
        if proof["seq"] != seq or root_from_path(seq, size, h, [base64.b64decode(p) for p in proof["hashes"]]) != root:
            raise AuditFailure(f"seq {seq}: inclusion proof does not lead to the checkpoint's root")
        checked += 1
    return checked


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise AuditFailure("proof too long")
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = sha(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise AuditFailure("proof too short")
    return r
