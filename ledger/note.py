"""C2SP signed notes and tlog-checkpoints with Ed25519 keys (pure).

A note is text lines, a blank line, then signature lines ``— <name> <base64(keyhash ‖ sig)>``. For an
Ed25519 note key the key hash is the first 4 bytes of SHA-256(name ‖ "\\n" ‖ 0x01 ‖ pub) and the
verifier key is ``<name>+<hex keyhash>+<base64(0x01 ‖ pub)>``. Witness cosignatures (tlog-cosignature/v1,
key type 0x04) are further lines, kept and passed through.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from ledger import sodium
from ledger.errors import NoteError

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
_DASH = "\u2014"


def key_hash(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte key hash that prefixes a note signature."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


@dataclass(frozen=True)
class VerifierKey:
    """A note verifier key: name, algorithm byte and raw public key."""

    name: str
    alg: int
    public_key: bytes

    @property
    def hash(self) -> bytes:
        return key_hash(self.name, self.alg, self.public_key)

    def encode(self) -> str:
        body = base64.b64encode(bytes([self.alg]) + self.public_key).decode()
        return f"{self.name}+{self.hash.hex()}+{body}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # the base64 key may itself hold "+"
        if len(parts) != 3 or not _valid_name(parts[0]) or len(parts[1]) != 8:
            raise NoteError("verifier key is not name+hexhash+base64")
        try:
            raw = base64.b64decode(parts[2], validate=True)
            want = bytes.fromhex(parts[1])
        except (binascii.Error, ValueError) as exc:
            raise NoteError("verifier key has bad hex or base64") from exc
        if len(raw) != 33 or raw[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError("verifier key is not an Ed25519 key")
        key = cls(parts[0], raw[0], raw[1:])
        if key.hash != want:
            raise NoteError("verifier key hash does not match its name and key")
        return key


def signer_vkey(name: str, signing_key: nacl.signing.SigningKey) -> VerifierKey:
    if not _valid_name(name):
        raise NoteError(f"note key name {name!r} must be non-empty, without spaces or '+'")
    return VerifierKey(name, ALG_ED25519, bytes(signing_key.verify_key))


@dataclass(frozen=True)
class Signature:
    name: str
    key_hash: bytes
    payload: bytes  # the signature bytes after the key hash

    def line(self) -> str:
        return f"{_DASH} {self.name} {base64.b64encode(self.key_hash + self.payload).decode()}\n"


@dataclass(frozen=True)
class Note:
    text: str  # the signed text, ending in "\n"
    signatures: tuple[Signature, ...]

    def encode(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def sign_note(text: str, name: str, signing_key: nacl.signing.SigningKey) -> str:
    """Sign ``text`` (which must end in a newline) and return the whole note."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text must end in one newline and hold no blank line")
    vkey = signer_vkey(name, signing_key)
    sig = sodium.sign(signing_key, text.encode())
    return Note(text, (Signature(name, vkey.hash, sig),)).encode()


def parse_note(note: str) -> Note:
    """Split a note into text and signature lines, checking its shape."""
    if len(note) > 1_000_000:
        raise NoteError("note is too large")
    split = note.find("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, rest = note[: split + 1], note[split + 2 :]
    if not rest.endswith("\n"):
        raise NoteError("note does not end in a newline")
    sigs: list[Signature] = []
    for line in rest[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH or not _valid_name(parts[1]):
            raise NoteError("malformed signature line")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise NoteError("signature line is not base64") from exc
        if len(raw) < 5:
            raise NoteError("signature line is too short")
        sigs.append(Signature(parts[1], raw[:4], raw[4:]))
    if not sigs:
        raise NoteError("note has no signatures")
    return Note(text, tuple(sigs))


def verify_note(note: str, key: VerifierKey) -> Note:
    """Parse ``note`` and require a valid signature by ``key``; return the parsed note."""
    parsed = parse_note(note)
    if key.alg != ALG_ED25519:
        raise NoteError("not an Ed25519 note key")
    for sig in parsed.signatures:
        if sig.name == key.name and sig.key_hash == key.hash:
            try:
                nacl.signing.VerifyKey(key.public_key).verify(parsed.text.encode(), sig.payload)
            except (nacl.exceptions.BadSignatureError, ValueError) as exc:
                raise NoteError(f"signature by {key.name} does not verify") from exc
            return parsed
    raise NoteError(f"note has no signature by {key.name}")


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def parse_checkpoint_text(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise NoteError("checkpoint must have exactly origin, size and root lines")
    origin, size_s, root_s = lines[:3]
    if not origin or not (size_s.isascii() and size_s.isdigit()) or (size_s != "0" and size_s.startswith("0")):
        raise NoteError("checkpoint origin or size is malformed")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error as exc:
        raise NoteError("checkpoint root is not base64") from exc
    if len(root) != 32:
        raise NoteError("checkpoint root is not 32 bytes")
    return Checkpoint(origin, int(size_s), root)


def verify_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """Verify a checkpoint note by the log key; its origin must be the key's name."""
    parsed = verify_note(note, key)
    cp = parse_checkpoint_text(parsed.text)
    if cp.origin != key.name:
        raise NoteError(f"checkpoint origin {cp.origin!r} is not the log key's name {key.name!r}")
    return cp
