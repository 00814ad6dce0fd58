"""C2SP tlog-cosignature/v1 witness cosignatures and k-of-n witness policies (pure).

A witness cosigns a checkpoint by signing ``"cosignature/v1\\ntime <unix seconds>\\n"`` followed by the
checkpoint's note text with Ed25519. Its signature line is ``— <name> base64(keyhash ‖ time ‖ sig)``
where the key hash is SHA-256(name ‖ "\\n" ‖ 0x04 ‖ pub)[:4] and ``time`` is 8 bytes big-endian. The
witness verifier key is ``<name>+<hex keyhash>+<base64(0x04 ‖ pub)>``.

This module also parses and encodes the body of a C2SP tlog-witness ``add-checkpoint`` request.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing

from ledger.errors import NoteError
from ledger.note import ALG_COSIGNATURE_V1, Note, Signature, VerifierKey, parse_note

COSIGNATURE_PREFIX = "cosignature/v1\n"
MAX_PROOF_HASHES = 63


class CosignatureError(NoteError):
    """A cosignature that is malformed, by another key, or does not verify."""


class QuorumError(CosignatureError):
    """Fewer valid witness cosignatures than the policy demands."""

    status = 403
    title = "Not enough witness cosignatures"


class AddCheckpointError(NoteError):
    """A malformed add-checkpoint request body."""

    status = 400
    title = "Malformed add-checkpoint request"


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def witness_vkey(name: str, signing_key: nacl.signing.SigningKey) -> VerifierKey:
    """The cosignature/v1 verifier key of a witness called ``name``."""
    if not _valid_name(name):
        raise CosignatureError(f"witness name {name!r} must be non-empty, without spaces or '+'")
    return VerifierKey(name, ALG_COSIGNATURE_V1, bytes(signing_key.verify_key))


def parse_witness_vkey(text: str) -> VerifierKey:
    """A witness verifier key; refuses a key of any type but cosignature/v1 (0x04)."""
    key = VerifierKey.parse(text)
    if key.alg != ALG_COSIGNATURE_V1:
        raise CosignatureError(f"{key.name}: not a cosignature/v1 witness key (type 0x04)")
    return key


def cosigned_message(text: str, timestamp: int) -> bytes:
    """The bytes a cosignature/v1 signature covers for the checkpoint note ``text``."""
    if not 0 <= timestamp < 2**63:
        raise CosignatureError(f"cosignature time {timestamp} out of range")
    return f"{COSIGNATURE_PREFIX}time {timestamp}\n".encode() + text.encode()


def cosign(text: str, name: str, signing_key: nacl.signing.SigningKey, timestamp: int) -> Signature:
    """Cosign the checkpoint note text ``text`` at ``timestamp`` (Unix seconds)."""
    vkey = witness_vkey(name, signing_key)
    sig = signing_key.sign(cosigned_message(text, timestamp)).signature
    return Signature(name, vkey.hash, timestamp.to_bytes(8, "big") + sig)


def verify_cosignature(text: str, sig: Signature, key: VerifierKey) -> int:
    """Check that ``sig`` is ``key``'s cosignature of ``text``; return its timestamp."""
    if key.alg != ALG_COSIGNATURE_V1:
        raise CosignatureError(f"{key.name}: not a cosignature/v1 key")
    if sig.name != key.name or sig.key_hash != key.hash:
        raise CosignatureError(f"signature line is not by witness {key.name}")
    if len(sig.payload) != 72:
        raise CosignatureError(f"cosignature by {key.name} is {len(sig.payload)} bytes, want 72")
    timestamp = int.from_bytes(sig.payload[:8], "big")
    try:
        nacl.signing.VerifyKey(key.public_key).verify(cosigned_message(text, timestamp), sig.payload[8:])
    except (nacl.exceptions.BadSignatureError, ValueError) as exc:
        raise CosignatureError(f"cosignature by {key.name} does not verify") from exc
    return timestamp


def find_cosignature(note: Note, key: VerifierKey) -> int:
    """The timestamp of a valid cosignature by ``key`` on ``note``; raises if there is none."""
    last: CosignatureError | None = None
    for sig in note.signatures:
        if sig.name == key.name and sig.key_hash == key.hash:
            try:
                return verify_cosignature(note.text, sig, key)
            except CosignatureError as exc:
                last = exc
    raise last or CosignatureError(f"no cosignature by witness {key.name}")


def add_signatures(note: str, extra: Iterable[Signature]) -> str:
    """``note`` with the signature lines ``extra`` appended (those it already holds are skipped)."""
    parsed = parse_note(note)
    have = set(parsed.signatures)
    sigs = list(parsed.signatures)
    for sig in extra:
        if sig not in have:
            have.add(sig)
            sigs.append(sig)
    return Note(parsed.text, tuple(sigs)).encode()


def parse_signature_lines(text: str) -> list[Signature]:
    """Signature lines (e.g. a witness's answer) as signatures; at least one."""
    return list(parse_note("x\n\n" + text).signatures)


# -- k of n -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuorumResult:
    """The verdict of a k-of-n witness policy on one checkpoint note; true when met."""

    threshold: int
    cosigned: tuple[str, ...] = ()
    """Verifier keys (encoded) whose valid cosignature the note carries."""
    missing: tuple[str, ...] = ()
    """Verifier keys with no valid cosignature, each with why: ``"<vkey>: <reason>"``."""
    errors: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return self.ok

    @property
    def ok(self) -> bool:
        return not self.errors and len(self.cosigned) >= self.threshold

    @property
    def message(self) -> str:
        if self.errors:
            return self.errors[0]
        total = len(self.cosigned) + len(self.missing)
        return f"cosigned by {len(self.cosigned)}/{total} witnesses, need {self.threshold}"


def check_policy(witnesses: Sequence[VerifierKey], quorum: int) -> None:
    """Raise unless ``quorum`` of ``witnesses`` is a sensible policy (1 <= k <= n, distinct keys)."""
    if len({w.encode() for w in witnesses}) != len(witnesses):
        raise QuorumError("the same witness key is listed twice")
    if not 1 <= quorum <= len(witnesses):
        raise QuorumError(f"quorum {quorum} must be between 1 and the {len(witnesses)} witnesses given")
    for w in witnesses:
        if w.alg != ALG_COSIGNATURE_V1:
            raise QuorumError(f"{w.name}: not a cosignature/v1 witness key")


def get_quorum_result(note: str, witnesses: Sequence[VerifierKey], quorum: int) -> QuorumResult:
    """Count the valid cosignatures of ``witnesses`` on ``note`` against ``quorum``; never raises."""
    try:
        check_policy(witnesses, quorum)
        parsed = parse_note(note)
    except NoteError as exc:
        return QuorumResult(quorum, errors=(str(exc),))
    cosigned: list[str] = []
    missing: list[str] = []
    for w in witnesses:
        try:
            find_cosignature(parsed, w)
        except CosignatureError as exc:
            missing.append(f"{w.encode()}: {exc}")
        else:
            cosigned.append(w.encode())
    return QuorumResult(quorum, tuple(cosigned), tuple(missing))


def verify_quorum(note: str, witnesses: Sequence[VerifierKey], quorum: int) -> QuorumResult:
    """As ``get_quorum_result`` but raise ``QuorumError`` (e.g. "cosigned by 1/3 witnesses, need 2")."""
    result = get_quorum_result(note, witnesses, quorum)
    if not result:
        raise QuorumError(result.message)
    return result


# -- tlog-witness add-checkpoint body --------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpoint:
    """An add-checkpoint request: the size the submitter believes cosigned, the proof, the note."""

    old: int
    proof: tuple[bytes, ...]
    note: str

    def encode(self) -> bytes:
        lines = [f"old {self.old}\n"] + [base64.b64encode(h).decode() + "\n" for h in self.proof]
        return ("".join(lines) + "\n" + self.note).encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse ``old <size>``, the proof hashes (base64, one a line), a blank line, the checkpoint note."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise AddCheckpointError("body is not UTF-8") from exc
    split = text.find("\n\n")
    if split < 0:
        raise AddCheckpointError("no blank line before the checkpoint")
    head, note = text[:split].split("\n"), text[split + 2 :]
    first = head[0].split(" ")
    if len(first) != 2 or first[0] != "old" or not (first[1].isascii() and first[1].isdigit()):
        raise AddCheckpointError("first line is not 'old <size>'")
    if first[1] != "0" and first[1].startswith("0"):
        raise AddCheckpointError("old size has a leading zero")
    if len(head) - 1 > MAX_PROOF_HASHES:
        raise AddCheckpointError("too many proof hashes")
    proof: list[bytes] = []
    for line in head[1:]:
        try:
            raw = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise AddCheckpointError("proof line is not base64") from exc
        if len(raw) != 32:
            raise AddCheckpointError("proof hash is not 32 bytes")
        proof.append(raw)
    return AddCheckpoint(int(first[1]), tuple(proof), note)
