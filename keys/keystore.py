"""Encrypted keystore files: Argon2id derives a key from the passphrase, XSalsa20-Poly1305 seals.

A keystore holds named keys (Ed25519 seeds, optionally X25519 private keys). Files are written
atomically (temp file, fsync, ``os.replace``) with mode 0600. The passphrase comes from
``SHULIAN_PASSPHRASE`` or ``SHULIAN_PASSPHRASE_FILE``; failing both, a random one is created in
``SHULIAN_HOME/passphrase`` (mode 0600) and the first command that does so says it in one line.

Browsers have neither Argon2id nor XSalsa20-Poly1305 in WebCrypto, so a second variant of the same
format exists for the portal: kdf ``pbkdf2-sha256`` (PBKDF2-HMAC-SHA256, 600 000 iterations by
default, OWASP's 2023 figure) and cipher ``aes-256-gcm`` (12-byte nonce, the format name as
associated data). The sealed content is the same JSON either way; ``load_keystore`` reads both and
``export_browser_keystore`` turns keys into the browser variant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.public
import nacl.secret
import nacl.signing
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import KeystoreError
from keys.keyid import key_id

FORMAT = "shulian-keystore/1"
# OWASP's Argon2id floor is 19 MiB / t=2; we use 64 MiB / t=3 (about 0.1 s here).
ARGON2 = {"time_cost": 3, "memory_cost": 65536, "parallelism": 1}
# The browser variant (WebCrypto has PBKDF2 and AES-GCM). Files outside the bounds are refused: too
# few iterations is a weak file, too many a way to make an opener spin.
BROWSER_KDF = "pbkdf2-sha256"
BROWSER_CIPHER = "aes-256-gcm"
PBKDF2_ITERATIONS = 600_000
PBKDF2_MIN_ITERATIONS = 100_000
PBKDF2_MAX_ITERATIONS = 10_000_000


def home() -> Path:
    return Path(os.environ.get("SHULIAN_HOME", "var"))


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def passphrase(*, announce: bool = True) -> bytes:
    """The keystore passphrase from the environment, or the generated one under ``SHULIAN_HOME``."""
    value = os.environ.get("SHULIAN_PASSPHRASE")
    if value:
        return value.encode()
    file = os.environ.get("SHULIAN_PASSPHRASE_FILE")
    if file:
        try:
            return Path(file).read_bytes().strip()
        except OSError as exc:
            raise KeystoreError(f"cannot read SHULIAN_PASSPHRASE_FILE {file}: {exc.strerror}") from exc
    path = home() / "passphrase"
    if path.exists():
        return path.read_bytes().strip()
    atomic_write(path, secrets.token_urlsafe(32).encode() + b"\n")
    if announce:
        print(
            f"created a random keystore passphrase in {path} (mode 0600); set SHULIAN_PASSPHRASE in production",
            file=sys.stderr,
        )
    return path.read_bytes().strip()


@dataclass
class StoredKey:
    """One named key pair: Ed25519 for signing, X25519 (optional) for receiving sealed data."""

    name: str
    signing: nacl.signing.SigningKey
    x25519: nacl.public.PrivateKey | None = None
    role: str | None = None

    @property
    def key_id(self) -> str:
        return key_id(bytes(self.signing.verify_key))

    @property
    def public_b64(self) -> str:
        return base64.b64encode(bytes(self.signing.verify_key)).decode()

    @property
    def x25519_b64(self) -> str | None:
        return base64.b64encode(bytes(self.x25519.public_key)).decode() if self.x25519 else None

    @classmethod
    def generate(cls, name: str, *, x25519: bool = False, role: str | None = None) -> StoredKey:
        return cls(
            name, nacl.signing.SigningKey.generate(), nacl.public.PrivateKey.generate() if x25519 else None, role
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "ed25519_seed": base64.b64encode(bytes(self.signing)).decode(),
            "x25519": base64.b64encode(bytes(self.x25519)).decode() if self.x25519 else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> StoredKey:
        x = value.get("x25519")
        return cls(
            value["name"],
            nacl.signing.SigningKey(base64.b64decode(value["ed25519_seed"])),
            nacl.public.PrivateKey(base64.b64decode(x)) if x else None,
            value.get("role"),
        )


def _derive(secret: bytes, salt: bytes, params: dict[str, int]) -> bytes:
    return hash_secret_raw(secret, salt, hash_len=32, type=Type.ID, **params)


def _seal(path: Path, content: dict[str, Any], key_ids: list[str], secret: bytes | None) -> None:
    secret = passphrase() if secret is None else secret
    salt = secrets.token_bytes(16)
    box = nacl.secret.SecretBox(_derive(secret, salt, ARGON2))
    sealed = box.encrypt(json.dumps(content).encode())
    doc = {
        "format": FORMAT,
        "kdf": {"name": "argon2id", "salt": base64.b64encode(salt).decode(), **ARGON2},
        "cipher": "xsalsa20-poly1305",
        "key_ids": key_ids,
        "sealed": base64.b64encode(bytes(sealed)).decode(),
    }
    atomic_write(path, json.dumps(doc, indent=1).encode() + b"\n")


def save_keystore(path: Path, keys: list[StoredKey], secret: bytes | None = None) -> None:
    """Encrypt ``keys`` under the passphrase and write them to ``path`` (0600, atomic)."""
    _seal(path, {"keys": [k.to_json() for k in keys]}, [k.key_id for k in keys], secret)


def save_secret(path: Path, value: bytes, secret: bytes | None = None) -> None:
    """Keep a raw secret (such as the vault's master key) in a keystore file."""
    _seal(path, {"secret": base64.b64encode(value).decode()}, [], secret)


def browser_keystore(keys: list[StoredKey], secret: bytes, *, iterations: int = PBKDF2_ITERATIONS) -> dict[str, Any]:
    """The browser variant of a keystore holding ``keys`` (PBKDF2-SHA256 + AES-256-GCM), as a JSON object.

    The portal's page opens it with WebCrypto alone; ``load_keystore`` opens it too.
    """
    if not PBKDF2_MIN_ITERATIONS <= iterations <= PBKDF2_MAX_ITERATIONS:
        raise KeystoreError(f"PBKDF2 iterations must be {PBKDF2_MIN_ITERATIONS} to {PBKDF2_MAX_ITERATIONS}")
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(12)
    key = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, 32)
    content = json.dumps({"keys": [k.to_json() for k in keys]}).encode()
    sealed = AESGCM(key).encrypt(nonce, content, FORMAT.encode())
    return {
        "format": FORMAT,
        "kdf": {"name": BROWSER_KDF, "salt": base64.b64encode(salt).decode(), "iterations": iterations},
        "cipher": BROWSER_CIPHER,
        "nonce": base64.b64encode(nonce).decode(),
        "key_ids": [k.key_id for k in keys],
        "sealed": base64.b64encode(sealed).decode(),
    }


def save_browser_keystore(path: Path, keys: list[StoredKey], secret: bytes | None = None) -> None:
    """Write ``keys`` to ``path`` in the browser variant (0600, atomic), under ``secret`` or the passphrase."""
    doc = browser_keystore(keys, passphrase() if secret is None else secret)
    atomic_write(path, json.dumps(doc, indent=1).encode() + b"\n")


def export_browser_keystore(
    source: Path,
    target: Path,
    names: list[str] | None = None,
    *,
    secret: bytes | None = None,
    browser_secret: bytes | None = None,
) -> list[str]:
    """Copy the keys called ``names`` (all when None) from keystore ``source`` to a browser keystore ``target``.

    ``secret`` opens the source (default: the passphrase); ``browser_secret`` locks the target (default:
    the same). Returns the key ids exported.
    """
    keys = load_keystore(source, secret)
    if names is not None:
        missing = [n for n in names if n not in {k.name for k in keys}]
        if missing:
            raise KeystoreError(f"keystore {source} holds no key named {missing[0]!r}")
        keys = [k for k in keys if k.name in names]
    if not keys:
        raise KeystoreError(f"keystore {source} holds no keys to export")
    out_secret = browser_secret if browser_secret is not None else (passphrase() if secret is None else secret)
    save_browser_keystore(target, keys, out_secret)
    return [k.key_id for k in keys]


def load_secret(path: Path, secret: bytes | None = None) -> bytes:
    try:
        return base64.b64decode(_open(path, secret)["secret"])
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError(f"keystore {path} holds no secret") from exc


def load_keystore(path: Path, secret: bytes | None = None) -> list[StoredKey]:
    """Decrypt the keys in ``path`` (either variant); a wrong passphrase or a changed file is a ``KeystoreError``."""
    try:
        doc = _open(path, secret)
        keys = [StoredKey.from_json(k) for k in doc["keys"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError(f"keystore {path} is malformed") from exc
    listed = doc.get("_key_ids")
    if listed is not None and listed != [k.key_id for k in keys]:
        raise KeystoreError(f"keystore {path}: key_ids do not name the keys it holds")
    return keys


def _open(path: Path, secret: bytes | None) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise KeystoreError(f"no keystore at {path}") from exc
    except (OSError, ValueError) as exc:
        raise KeystoreError(f"keystore {path} is unreadable or not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeystoreError(f"{path} is not a {FORMAT} file")
    secret = passphrase() if secret is None else secret
    if isinstance(doc.get("kdf"), dict) and doc["kdf"].get("name") == BROWSER_KDF:
        return _open_browser(path, doc, secret)
    try:
        kdf = doc["kdf"]
        if kdf["name"] != "argon2id":
            raise KeystoreError(f"keystore {path} uses an unknown KDF")
        params = {k: int(kdf[k]) for k in ("time_cost", "memory_cost", "parallelism")}
        box = nacl.secret.SecretBox(_derive(secret, base64.b64decode(kdf["salt"]), params))
        plain = box.decrypt(base64.b64decode(doc["sealed"]))
        content = json.loads(plain)
        if not isinstance(content, dict):
            raise ValueError("not an object")
        return content
    except nacl.exceptions.CryptoError as exc:
        raise KeystoreError(f"cannot open keystore {path}: wrong passphrase or the file was altered") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise KeystoreError(f"keystore {path} is malformed") from exc


def _open_browser(path: Path, doc: dict[str, Any], secret: bytes) -> dict[str, Any]:
    """Open the browser variant; the content also carries the file's ``key_ids`` (as ``_key_ids``) to check."""
    try:
        kdf = doc["kdf"]
        if doc["cipher"] != BROWSER_CIPHER:
            raise KeystoreError(f"keystore {path} uses cipher {doc['cipher']!r}, not {BROWSER_CIPHER}")
        iterations = kdf["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, int):
            raise ValueError("iterations is not an integer")
        if not PBKDF2_MIN_ITERATIONS <= iterations <= PBKDF2_MAX_ITERATIONS:
            raise KeystoreError(
                f"keystore {path} asks for {iterations} PBKDF2 iterations;"
                f" {PBKDF2_MIN_ITERATIONS} to {PBKDF2_MAX_ITERATIONS} are accepted"
            )
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(doc["nonce"], validate=True)
        if len(salt) < 16 or len(nonce) != 12:
            raise ValueError("salt or nonce has the wrong length")
        key = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, 32)
        plain = AESGCM(key).decrypt(nonce, base64.b64decode(doc["sealed"], validate=True), FORMAT.encode())
        content = json.loads(plain)
        if not isinstance(content, dict):
            raise ValueError("not an object")
        key_ids = doc["key_ids"]
        if not isinstance(key_ids, list):
            raise ValueError("key_ids is not a list")
        return {**content, "_key_ids": key_ids}
    except InvalidTag as exc:
        raise KeystoreError(f"cannot open keystore {path}: wrong passphrase or the file was altered") from exc
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise KeystoreError(f"keystore {path} is malformed") from exc


def load_key(path: Path, name: str | None = None, secret: bytes | None = None) -> StoredKey:
    """The key called ``name`` in ``path`` (or its only key)."""
    keys = load_keystore(path, secret)
    if name is None:
        if len(keys) != 1:
            raise KeystoreError(f"keystore {path} holds {len(keys)} keys; name one")
        return keys[0]
    for k in keys:
        if k.name == name:
            return k
    raise KeystoreError(f"keystore {path} holds no key named {name!r}")
