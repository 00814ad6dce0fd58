"""Errors of the consent domain: each names what was wrong and carries its HTTP status and title."""

from __future__ import annotations

from ledger.errors import LedgerError


class ConsentError(LedgerError):
    """Base of every consent-rule error; ``str()`` is one readable line."""

    status = 422
    title = "Consent rule broken"


class InvalidBody(ConsentError):
    """An entry body (or a request's values) with a missing, unknown or wrongly typed field."""

    status = 422
    title = "Invalid entry body"


class InvalidRecord(ConsentError):
    """Record values that cannot be committed: a missing field, a value that is not a string or an integer."""

    status = 422
    title = "Invalid record"


class UnknownDataset(ConsentError):
    """A dataset id that no ``dataset.register`` entry named."""

    status = 404
    title = "Unknown dataset"


class UnknownRecord(ConsentError):
    """A record id never committed in that dataset."""

    status = 404
    title = "Unknown record"


class UnknownField(ConsentError):
    """A field name that the dataset does not have."""

    status = 422
    title = "Unknown field"


class UnknownEntry(ConsentError):
    """A seq that should name an entry of some type (an approval, a grant, a decision…) and does not."""

    status = 404
    title = "Referenced entry not found"


class NotOwner(ConsentError):
    """The signer is not the department that owns the dataset (or the agreement)."""

    status = 403
    title = "Not the owner"


class NotSubject(ConsentError):
    """The signer is not the citizen the record or grant is about."""

    status = 403
    title = "Not the data subject"


class StateConflict(ConsentError):
    """The entry contradicts the current state: already revoked, already released, already registered…"""

    status = 409
    title = "Conflicts with the ledger's state"


class DecisionMismatch(StateConflict):
    """An ``access.decision`` allow that is not what ``decide()`` answers at its time, given the state."""

    def __init__(self, detail: str, *, expected: object, found: object) -> None:
        super().__init__(f"decision does not follow from the ledger: {detail}")
        self.expected = expected
        self.found = found


class CommitmentSignatureError(ConsentError):
    """A requester's 告知承诺 commitment whose signature does not verify or whose signer is wrong."""

    status = 422
    title = "Bad commitment signature"


class DisclosureError(ConsentError):
    """A selective disclosure that is malformed or does not match the committed record."""

    status = 422
    title = "Disclosure does not verify"


class CommitmentMismatch(DisclosureError):
    """The record commitment recomputed from a disclosure differs from the one on the ledger."""

    def __init__(self, expected: bytes, calculated: bytes) -> None:
        super().__init__(f"record commitment mismatch: calculated {calculated.hex()}, expected {expected.hex()}")
        self.expected = expected
        self.calculated = calculated


class ReleaseError(ConsentError):
    """A sealed release that cannot be opened, or whose payload is malformed."""

    status = 422
    title = "Bad release"
