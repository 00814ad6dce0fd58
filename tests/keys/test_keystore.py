"""Keystore files: round trip, passphrase handling, file modes, tampering."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

import keys.keystore as ks
from keys.errors import KeystoreError
from keys.keystore import StoredKey, load_key, load_keystore, passphrase, save_keystore

SECRET = b"correct horse battery staple"
FAST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@pytest.fixture(autouse=True)
def fast_kdf(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap Argon2id except in the test that checks the real parameters."""
    if "real_kdf" not in request.keywords:
        monkeypatch.setattr(ks, "ARGON2", dict(FAST))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def two_keys() -> list[StoredKey]:
    return [
        StoredKey.generate("dept", x25519=True, role="department"),
        StoredKey.generate("citizen", role="citizen"),
    ]


@pytest.mark.real_kdf
def test_round_trip_with_the_real_kdf_parameters(tmp_path: Path, two_keys: list[StoredKey]) -> None:
    path = tmp_path / "keys" / "ks.json"
    save_keystore(path, two_keys, SECRET)
    doc = json.loads(path.read_text())
    assert doc["format"] == "shulian-keystore/1"
    assert doc["kdf"]["name"] == "argon2id" and doc["kdf"]["memory_cost"] >= 19 * 1024 and doc["kdf"]["time_cost"] >= 2
    assert doc["cipher"] == "xsalsa20-poly1305"
    assert doc["key_ids"] == [k.key_id for k in two_keys]
    loaded = load_keystore(path, SECRET)
    assert [(k.name, k.role, bytes(k.signing), k.key_id) for k in loaded] == [
        (k.name, k.role, bytes(k.signing), k.key_id) for k in two_keys
    ]
    assert loaded[0].x25519 is not None and two_keys[0].x25519 is not None
    assert bytes(loaded[0].x25519) == bytes(two_keys[0].x25519)
    assert loaded[1].x25519 is None
    assert load_key(path, "citizen", SECRET).key_id == two_keys[1].key_id


def test_no_secret_in_the_file(tmp_path: Path, two_keys: list[StoredKey]) -> None:
    path = tmp_path / "ks.json"
    save_keystore(path, two_keys, SECRET)
    raw = path.read_bytes()
    for k in two_keys:
        seed = bytes(k.signing)
        assert seed not in raw and base64.b64encode(seed) not in raw and seed.hex().encode() not in raw
    assert SECRET not in raw


def test_file_mode_is_0600(tmp_path: Path, two_keys: list[StoredKey]) -> None:
    path = tmp_path / "ks.json"
    save_keystore(path, two_keys, SECRET)
    assert mode(path) == 0o600
    path.chmod(0o644)
    save_keystore(path, two_keys, SECRET)  # rewriting replaces the file, with mode 0600 again
    assert mode(path) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ks.json.")], "temp file left behind"


def test_wrong_passphrase(tmp_path: Path, two_keys: list[StoredKey]) -> None:
    path = tmp_path / "ks.json"
    save_keystore(path, two_keys, SECRET)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        load_keystore(path, b"wrong")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda d: d | {"sealed": _flip_b64(d["sealed"], 40)}, id="ciphertext bit"),
        pytest.param(lambda d: d | {"sealed": _flip_b64(d["sealed"], 5)}, id="nonce bit"),
        pytest.param(lambda d: d | {"kdf": d["kdf"] | {"salt": _flip_b64(d["kdf"]["salt"], 0)}}, id="salt bit"),
        pytest.param(lambda d: d | {"kdf": d["kdf"] | {"time_cost": d["kdf"]["time_cost"] + 1}}, id="kdf cost"),
        pytest.param(lambda d: d | {"sealed": d["sealed"][:-8]}, id="truncated"),
        pytest.param(lambda d: d | {"kdf": d["kdf"] | {"name": "scrypt"}}, id="kdf name"),
        pytest.param(lambda d: {k: v for k, v in d.items() if k != "sealed"}, id="no sealed"),
        pytest.param(lambda d: d | {"sealed": 12}, id="sealed not a string"),
        pytest.param(lambda d: d | {"format": "other/1"}, id="format"),
    ],
)
def test_tampered_file(tmp_path: Path, two_keys: list[StoredKey], tamper: object) -> None:
    assert callable(tamper)
    path = tmp_path / "ks.json"
    save_keystore(path, two_keys, SECRET)
    path.write_text(json.dumps(tamper(json.loads(path.read_text()))))
    with pytest.raises(KeystoreError):
        load_keystore(path, SECRET)


def _flip_b64(text: str, byte: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[byte] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"format": "shulian-keystore/1"}', b"\xff\xfe"])
def test_unreadable_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ks.json"
    path.write_bytes(content)
    with pytest.raises(KeystoreError):
        load_keystore(path, SECRET)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="no keystore"):
        load_keystore(tmp_path / "absent.json", SECRET)


def test_key_lookup(tmp_path: Path, two_keys: list[StoredKey]) -> None:
    path = tmp_path / "ks.json"
    save_keystore(path, two_keys, SECRET)
    with pytest.raises(KeystoreError, match="no key named"):
        load_key(path, "nobody", SECRET)
    with pytest.raises(KeystoreError, match="name one"):
        load_key(path, None, SECRET)
    save_keystore(path, two_keys[:1], SECRET)
    assert load_key(path, None, SECRET).name == "dept"


# -- the passphrase ------------------------------------------------------------------------------------


@pytest.fixture
def bare_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("SHULIAN_HOME", str(home))
    monkeypatch.delenv("SHULIAN_PASSPHRASE", raising=False)
    monkeypatch.delenv("SHULIAN_PASSPHRASE_FILE", raising=False)
    return home


def test_passphrase_from_env(bare_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHULIAN_PASSPHRASE", "from env")
    assert passphrase() == b"from env"
    assert not (bare_env / "passphrase").exists()


def test_passphrase_from_file(bare_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "pp"
    file.write_text("from file\n")
    monkeypatch.setenv("SHULIAN_PASSPHRASE_FILE", str(file))
    assert passphrase() == b"from file"
    monkeypatch.setenv("SHULIAN_PASSPHRASE_FILE", str(tmp_path / "missing"))
    with pytest.raises(KeystoreError):
        passphrase()


def test_generated_passphrase_is_0600_announced_once_and_stable(
    bare_env: Path, capsys: pytest.CaptureFixture[str], two_keys: list[StoredKey]
) -> None:
    first = passphrase()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "passphrase" in err
    path = bare_env / "passphrase"
    assert mode(path) == 0o600
    assert len(first) >= 32
    assert passphrase() == first
    assert capsys.readouterr().err == ""
    # and it is what unlocks keystores saved without an explicit secret
    save_keystore(bare_env / "k.json", two_keys)
    assert load_keystore(bare_env / "k.json", first)[0].key_id == two_keys[0].key_id
