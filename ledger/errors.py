"""Typed errors of the ledger: bad data (``LedgerError`` and children), each carrying what was wrong."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error about bad ledger data; ``str()`` is one readable line."""

    status = 400


class CanonicalError(LedgerError):
    """Bytes that are not the RFC 8785 canonical form of an allowed JSON value."""

    status = 422


class EnvelopeError(LedgerError):
    """A signed envelope with a missing or wrongly typed field."""

    status = 422


class SignatureError(LedgerError):
    """A signature that does not verify."""

    status = 422


class KeyError_(LedgerError):
    """An unknown, revoked, rotated-away or not-yet-valid key, or a role that may not do this."""

    status = 403


class DuplicateEntryError(LedgerError):
    """The exact same signed envelope is already on the ledger (a replay)."""

    status = 409


class ProofError(LedgerError):
    """A proof that does not verify, or a proof request out of range."""

    status = 422


class RootMismatchError(ProofError):
    """A recomputed root differs from the expected one."""

    def __init__(self, expected: bytes, calculated: bytes) -> None:
        super().__init__(f"root mismatch: calculated {calculated.hex()}, expected {expected.hex()}")
        self.expected = expected
        self.calculated = calculated


class NoteError(LedgerError):
    """A signed note or checkpoint that is malformed or not signed by the expected key."""

    status = 422


class NotFoundError(LedgerError):
    """Something asked for that does not exist (an entry, a proof target)."""

    status = 404


class RangeError(LedgerError):
    """A size or index outside what the ledger holds."""

    status = 400
