"""The browser keystore variant (PBKDF2-SHA256 + AES-256-GCM) in Python: written, read, refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from keys.errors import KeystoreError
from keys.keystore import (
    PBKDF2_ITERATIONS,
    StoredKey,
    browser_keystore,
    export_browser_keystore,
    load_key,
    load_keystore,
    save_browser_keystore,
    save_keystore,
)

FAST = 100_000


def _keys() -> list[StoredKey]:
    return [
        StoredKey.generate("dept-a", x25519=True, role="department"),
        StoredKey.generate("citizen-a", role="citizen"),
    ]


def _same(a: list[StoredKey], b: list[StoredKey]) -> bool:
    return [k.to_json() for k in a] == [k.to_json() for k in b]


def test_round_trip_and_format(tmp_path: Path) -> None:
    keys = _keys()
    doc = browser_keystore(keys, b"secret", iterations=FAST)
    assert doc["format"] == "shulian-keystore/1"
    assert doc["kdf"] == {"name": "pbkdf2-sha256", "salt": doc["kdf"]["salt"], "iterations": FAST}
    assert doc["cipher"] == "aes-256-gcm" and len(base64.b64decode(doc["nonce"])) == 12
    assert doc["key_ids"] == [k.key_id for k in keys]
    path = tmp_path / "browser.json"
    path.write_text(json.dumps(doc))
    assert _same(load_keystore(path, b"secret"), keys)
    assert load_key(path, "citizen-a", b"secret").key_id == keys[1].key_id


def test_default_iterations_are_owasps(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    save_browser_keystore(path, _keys()[:1], b"pw")
    assert json.loads(path.read_text())["kdf"]["iterations"] == PBKDF2_ITERATIONS == 600_000
    assert path.stat().st_mode & 0o777 == 0o600


def _flip_first_bit(sealed: str) -> str:
    """The ciphertext with one bit changed (setting its first byte to zero changed nothing one time in 256)."""
    raw = base64.b64decode(sealed)
    return base64.b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode()


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(sealed=_flip_first_bit(d["sealed"])),
        lambda d: d.update(nonce=base64.b64encode(bytes(12)).decode()),
        lambda d: d["kdf"].update(iterations=d["kdf"]["iterations"] + 1),
        lambda d: d["kdf"].update(salt=base64.b64encode(bytes(16)).decode()),
        lambda d: d.update(key_ids=["0" * 32]),
        lambda d: d["kdf"].update(iterations=1000),
        lambda d: d["kdf"].update(iterations=10**9),
        lambda d: d.update(cipher="aes-128-gcm"),
        lambda d: d.update(nonce="not base64"),
    ],
)
def test_altered_files_are_refused(tmp_path: Path, change: object) -> None:
    doc = browser_keystore(_keys(), b"secret", iterations=FAST)
    change(doc)  # type: ignore[operator]
    path = tmp_path / "k.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(KeystoreError):
        load_keystore(path, b"secret")


def test_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(browser_keystore(_keys(), b"secret", iterations=FAST)))
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        load_keystore(path, b"other")


def test_export_from_an_argon2_keystore(tmp_path: Path, shulian_home: Path) -> None:
    keys = _keys()
    source = tmp_path / "argon.json"
    save_keystore(source, keys, b"old")
    target = tmp_path / "browser.json"
    assert export_browser_keystore(source, target, ["dept-a"], secret=b"old", browser_secret=b"new") == [keys[0].key_id]
    assert json.loads(target.read_text())["kdf"]["name"] == "pbkdf2-sha256"
    assert _same(load_keystore(target, b"new"), keys[:1])
    with pytest.raises(KeystoreError, match="no key named"):
        export_browser_keystore(source, target, ["nobody"], secret=b"old")
