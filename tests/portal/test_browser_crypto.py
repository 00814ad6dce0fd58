"""The portal's ES modules in a real browser, against the project's fixed vectors and the Python code.

Each check loads the module the pages load (``/portal/static/js/…``) in headless Chromium on the
portal's own origin and compares it with ``tests/vectors`` or with what the Python side makes:
RFC 9162 proofs, C2SP checkpoints, RFC 8785, RFC 9421 signing, BLAKE2b, NaCl sealed boxes,
release commitments and the browser keystore.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.public
import nacl.signing
import pytest

from api import world
from consent.catalogue import parse_dataset
from consent.commitment import commit_record, disclose
from consent.release import build_release
from keys.keystore import StoredKey, browser_keystore
from ledger.cosignature import add_signatures, cosign, verify_cosignature, witness_vkey
from ledger.note import VerifierKey, parse_note, sign_note, signer_vkey
from tests.portal.conftest import PortalServer, open_page

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def vectors(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def page(browser: Any, portal: PortalServer) -> Iterator[Any]:
    p = open_page(browser, portal.url + "/portal/static/vendor/tweetnacl/README.md")
    p.add_script_tag(url="/portal/static/vendor/tweetnacl/nacl-fast.min.js")
    yield p
    p.context.close()


def run(page: Any, module: str, body: str, arg: Any = None) -> Any:
    """Evaluate ``body`` (an async function body with ``m`` the module and ``arg``) in the page."""
    script = f"async (arg) => {{ const m = await import('/portal/static/js/{module}'); {body} }}"
    return page.evaluate(script, arg)


def test_inclusion_proofs(page: Any) -> None:
    cases = vectors("inclusion.json")["cases"]
    got = run(
        page,
        "merkle.js",
        """
        const hexb = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
        const out = [];
        for (const c of arg) {
          try {
            await m.verifyInclusion(c.index, c.size, hexb(c.leaf_hash), c.proof.map(hexb), hexb(c.root));
            out.push("ok");
          } catch (e) { out.push("error"); }
        }
        return out;""",
        cases,
    )
    assert got == [c["expect"] for c in cases], [c["desc"] for c, g in zip(cases, got, strict=True) if g != c["expect"]]


def test_consistency_proofs(page: Any) -> None:
    cases = vectors("consistency.json")["cases"]
    got = run(
        page,
        "merkle.js",
        """
        const hexb = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
        const out = [];
        for (const c of arg) {
          try {
            const [a, z] = [hexb(c.first_root), hexb(c.second_root)];
            await m.verifyConsistency(c.first, c.second, a, z, c.proof.map(hexb));
            out.push("ok");
          } catch (e) { out.push("error"); }
        }
        return out;""",
        cases,
    )
    assert got == [c["expect"] for c in cases], [c["desc"] for c, g in zip(cases, got, strict=True) if g != c["expect"]]


def test_checkpoints_and_verifier_keys(page: Any) -> None:
    doc = vectors("notes.json")
    got = run(
        page,
        "note.js",
        """
        const out = {cases: [], vkeys: []};
        for (const c of arg.cases) {
          try {
            const cp = await m.verifyCheckpoint(c.note, await m.parseVerifierKey(c.vkey));
            const root = Array.from(cp.root, (b) => b.toString(16).padStart(2, "0")).join("");
            out.cases.push({ok: true, origin: cp.origin, size: cp.size, root});
          } catch (e) { out.cases.push({ok: false}); }
        }
        for (const k of arg.vkeys) {
          try { await m.parseVerifierKey(k.vkey); out.vkeys.push("ok"); } catch (e) { out.vkeys.push("error"); }
        }
        return out;""",
        doc,
    )
    for case, result in zip(doc["cases"], got["cases"], strict=True):
        assert result["ok"] == (case["expect"] == "ok"), case["desc"]
        if result["ok"]:
            assert {k: result[k] for k in ("origin", "size", "root")} == case["checkpoint"], case["desc"]
    assert got["vkeys"] == [k["expect"] for k in doc["vkeys"]]


def test_witness_cosignatures_made_by_python(page: Any) -> None:
    """note.js checks tlog-cosignature/v1 lines that ledger/cosignature.py makes, and refuses altered ones."""
    log_key = nacl.signing.SigningKey(bytes(range(32)))
    text = f"example.gov.cn/log\n42\n{base64.b64encode(bytes(32)).decode()}\n"
    note = sign_note(text, "example.gov.cn/log", log_key)
    witnesses = {name: nacl.signing.SigningKey(hashlib.sha256(name.encode()).digest()) for name in ("w1", "w2")}
    times = {"w1": 1_700_000_000, "w2": 2**40 + 7}
    cosigned = add_signatures(note, [cosign(text, n, k, times[n]) for n, k in witnesses.items()])
    vkeys = {n: witness_vkey(n, k).encode() for n, k in witnesses.items()}
    sigs = {s.name: s for s in parse_note(cosigned).signatures}  # the reference agrees
    assert all(verify_cosignature(text, sigs[n], VerifierKey.parse(vkeys[n])) == times[n] for n in witnesses)
    got = run(
        page,
        "note.js",
        """
        const parsed = m.parseNote(arg.note);
        const key = async (n) => m.parseVerifierKey(arg.vkeys[n]);
        const sigOf = (n) => parsed.signatures.find((s) => s.name === n);
        const attempt = async (f) => { try { return await f(); } catch (e) { return "error: " + e.message; } };
        const logKey = await m.parseVerifierKey(arg.logVkey);
        const v = (text, sig, k) => attempt(async () => m.verifyCosignature(text, sig, await k));
        const flipped = (s) => { const p = s.payload.slice(); p[20] ^= 1; return {...s, payload: p}; };
        const later = (s) => { const p = s.payload.slice(); p[7] ^= 1; return {...s, payload: p}; };
        return {
          w1: await v(parsed.text, sigOf("w1"), key("w1")),
          w2: await v(parsed.text, sigOf("w2"), key("w2")),
          wrongKey: await v(parsed.text, sigOf("w1"), key("w2")),
          flipped: await v(parsed.text, flipped(sigOf("w1")), key("w1")),
          otherTime: await v(parsed.text, later(sigOf("w1")), key("w1")),
          otherText: await v(parsed.text.replace("42", "43"), sigOf("w1"), key("w1")),
          logKeyAsWitness: await v(parsed.text, sigOf("w1"), logKey),
          listed: (await m.verifyCheckpoint(arg.note, logKey)).cosignatures.map((c) => [c.name, c.time]),
        };""",
        {"note": cosigned, "vkeys": vkeys, "logVkey": signer_vkey("example.gov.cn/log", log_key).encode()},
    )
    assert got["w1"] == times["w1"] and got["w2"] == times["w2"]
    assert got["wrongKey"] == "error: signature line is not by witness w2"
    assert got["flipped"] == got["otherTime"] == got["otherText"] == "error: cosignature by w1 does not verify"
    assert got["logKeyAsWitness"].startswith("error: ") and "not a cosignature/v1 key" in got["logKeyAsWitness"]
    assert got["listed"] == [["w1", times["w1"]], ["w2", times["w2"]]]


def test_canonical_json(page: Any) -> None:
    cases = vectors("canonical.json")["serialize"]
    got = run(
        page,
        "jcs.js",
        """
        return arg.map((c) => { try { return m.canonicalize(JSON.parse(c.input)); } catch (e) { return null; } });
        """,
        cases,
    )
    for case, result in zip(cases, got, strict=True):
        if case["expect"] == "ok":
            assert result == case["canonical"], case["desc"]
        elif result is not None:
            # JSON.parse already turned "1.0" or "1e3" into the integer it equals: the page only
            # canonicalizes values it built itself, so only the spelling of the input is lost here.
            assert re.search(r"\d[.eE]", case["input"]), case["desc"]


def test_request_signature(page: Any) -> None:
    v = vectors("rfc9421_shulian.json")["sign"]
    got = run(
        page,
        "httpsig.js",
        """
        const ed = await import('/portal/static/js/ed25519.js');
        const b = await import('/portal/static/js/bytes.js');
        const { key } = await ed.importSeed(b.b64decode(arg.seed));
        const contentType = (arg.headers.find(([n]) => n.toLowerCase() === "content-type") || [])[1] || null;
        const headers = await m.signRequest({ method: arg.method, url: arg.url, body: b.utf8(arg.body), contentType,
          key, keyId: arg.key_id, created: arg.created, nonce: arg.nonce });
        return headers;""",
        v,
    )
    assert got == v["expect_headers"]


def test_blake2b(page: Any) -> None:
    inputs = [bytes(range(256))[:n] * (1 + n // 256) for n in (0, 1, 63, 64, 127, 128, 129, 255, 256)] + [b"x" * 1000]
    arg = [base64.b64encode(x).decode() for x in inputs]
    got = run(
        page,
        "blake2b.js",
        """
        const b = await import('/portal/static/js/bytes.js');
        return arg.map((x) => [b.hex(m.blake2b(b.b64decode(x), 24)), b.hex(m.blake2b(b.b64decode(x), 64))]);""",
        arg,
    )
    assert got == [[hashlib.blake2b(x, digest_size=24).hexdigest(), hashlib.blake2b(x).hexdigest()] for x in inputs]


def test_sealed_box_opens_what_pynacl_seals(page: Any) -> None:
    private = nacl.public.PrivateKey.generate()
    messages = [b"", "社会保险".encode(), bytes(range(256)) * 5]
    sealed = [bytes(nacl.public.SealedBox(private.public_key).encrypt(m)) for m in messages]
    altered = bytearray(sealed[1])
    altered[-1] ^= 1
    other = nacl.public.PrivateKey.generate()
    arg = {
        "private": base64.b64encode(bytes(private)).decode(),
        "other": base64.b64encode(bytes(other)).decode(),
        "sealed": [base64.b64encode(s).decode() for s in [*sealed, bytes(altered)]],
    }
    got = run(
        page,
        "sealed.js",
        """
        const b = await import('/portal/static/js/bytes.js');
        const ed = await import('/portal/static/js/ed25519.js');
        const mine = await ed.importX25519(b.b64decode(arg.private));
        const other = await ed.importX25519(b.b64decode(arg.other));
        const out = [];
        for (const s of arg.sealed) {
          try { out.push(b.b64encode(await m.openSealed(b.b64decode(s), mine.key, mine.publicKey))); }
          catch (e) { out.push(e.code); }
        }
        try { await m.openSealed(b.b64decode(arg.sealed[0]), other.key, other.publicKey); out.push("opened"); }
        catch (e) { out.push(e.code); }
        out.push(b.b64encode(mine.publicKey));
        return out;""",
        arg,
    )
    assert got[:3] == [base64.b64encode(m).decode() for m in messages]
    assert got[3:5] == ["sealed_open", "sealed_open"]
    assert got[5] == base64.b64encode(bytes(private.public_key)).decode()


def test_release_commitment(page: Any) -> None:
    spec = next(d for d in world.DATASETS if d.dataset == "mzj.dibao")
    dataset = parse_dataset(spec.body("0" * 32))
    values = world.record_values("mzj.dibao", world.person(3))
    made = commit_record(dataset, values)
    items = disclose(dataset, values, made.salts, {"name": "masked", "household_size": "full"})
    payload = build_release(900, 800, "mzj.dibao", "mzj-db-000003", "sub:x", made.root, items)
    forged = json.loads(json.dumps(payload))
    opened = next(i for i in forged["leaves"] if "value" in i and i["field"] == "household_size")
    opened["value"] = int(opened["value"]) + 1
    got = run(
        page,
        "release.js",
        """
        const b = await import('/portal/static/js/bytes.js');
        const root = b.b64decode(arg.root);
        const out = [await m.verifyRelease(arg.payload, root)];
        try { await m.verifyRelease(arg.forged, root); out.push("accepted"); } catch (e) { out.push(e.code); }
        return out;""",
        {"root": made.root_b64, "payload": payload, "forged": forged},
    )
    assert got[0] == {
        "name": {"value": items[1]["value"], "form": "masked"},
        "household_size": {"value": values["household_size"], "form": "raw"},
    }
    assert got[1] == "commitment_mismatch"


def test_browser_keystore_opens_in_the_page(page: Any) -> None:
    key = StoredKey.generate("dept-x", x25519=True, role="department")
    doc = browser_keystore([key], "正确的口令".encode(), iterations=100_000)
    argon = {"format": "shulian-keystore/1", "kdf": {"name": "argon2id"}, "cipher": "xsalsa20-poly1305"}
    got = run(
        page,
        "keystore.js",
        """
        const b = await import('/portal/static/js/bytes.js');
        const keys = await m.openKeystore(arg.doc, "正确的口令");
        const id = await m.identityFromKey(keys[0], "file");
        const out = [id.keyId, id.name, id.role, b.b64encode(id.x25519Public)];
        out.push(id.signing.extractable, id.x25519.extractable);
        for (const [doc, pass] of [[arg.doc, "错误"], [arg.argon, "x"]]) {
          try { await m.openKeystore(doc, pass); out.push("opened"); } catch (e) { out.push(e.code); }
        }
        return out;""",
        {"doc": doc, "argon": argon},
    )
    assert got == [
        key.key_id,
        "dept-x",
        "department",
        key.x25519_b64,
        False,
        False,
        "keystore_passphrase",
        "keystore_argon2",
    ]
