"""Errors of the audit package: bad input read from a source versus a failure to read it at all."""

from __future__ import annotations


class AuditError(Exception):
    """Base of the audit package's errors; ``str()`` is one readable line."""


class ExportError(AuditError):
    """An export file that cannot be opened or written (I/O, not bad content)."""


class SetupError(AuditError):
    """The verifier cannot start: the log key or origin it was given is unusable."""


class WorkerError(AuditError):
    """A verification worker process died or could not be started."""


class EntrySourceError(AuditError):
    """A source could not produce the next entry (a malformed export line); blamed on the seq expected next."""


class BlockSourceError(AuditError):
    """A source could not produce the next block (a malformed line or record); blamed on the height expected next."""


class VerificationError(AuditError):
    """Raised by ``VerificationResult.raise_for_fault``; ``str()`` is the fault line (``seq N: …``)."""
