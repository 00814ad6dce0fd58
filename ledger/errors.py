"""Typed errors of the ledger: bad data (``LedgerError`` and children), each carrying what was wrong."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error about bad ledger data; ``str()`` is one readable line."""

    status = 400
    title: str | None = None


class CanonicalError(LedgerError):
    """Bytes that are not the RFC 8785 canonical form of an allowed JSON value."""

    status = 422
    title = "Entry is not canonical JSON"


class EnvelopeError(LedgerError):
    """A signed envelope with a missing or wrongly typed field."""

    status = 422
    title = "Malformed envelope"


class SignatureError(LedgerError):
    """A signature that does not verify."""

    status = 422
    title = "Bad signature"


class KeyError_(LedgerError):
    """An unknown, revoked, rotated-away or not-yet-valid key, or a role that may not do this."""

    status = 403
    title = "Key not valid"


class DuplicateEntryError(LedgerError):
    """The exact same signed envelope is already on the ledger (a replay)."""

    status = 409
    title = "Duplicate entry"


class ProofError(LedgerError):
    """A proof that does not verify, or a proof request out of range."""

    status = 422
    title = "Proof does not verify"


class RootMismatchError(ProofError):
    """A recomputed root differs from the expected one."""

    def __init__(self, expected: bytes, calculated: bytes) -> None:
        super().__init__(f"root mismatch: calculated {calculated.hex()}, expected {expected.hex()}")
        self.expected = expected
        self.calculated = calculated


class NoteError(LedgerError):
    """A signed note or checkpoint that is malformed or not signed by the expected key."""

    status = 422
    title = "Bad signed note"


class NotFoundError(LedgerError):
    """Something asked for that does not exist (an entry, a proof target)."""

    status = 404
    title = "Not found"


class RangeError(LedgerError):
    """A size or index outside what the ledger holds."""

    status = 400
    title = "Out of range"
