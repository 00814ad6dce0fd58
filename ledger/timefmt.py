"""The ledger's one time format, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC, microseconds)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from ledger.errors import EnvelopeError

_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", re.ASCII)  # \d: ASCII digits only


def now() -> datetime:
    """The current time, UTC, aware."""
    return datetime.now(UTC)


def format_ts(moment: datetime) -> str:
    """Format an aware datetime in the ledger's time format."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: object) -> datetime:
    """Parse the ledger's time format strictly; anything else is an ``EnvelopeError``."""
    if not isinstance(text, str) or not _PATTERN.fullmatch(text):
        raise EnvelopeError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SS.ffffffZ")
    try:
        # The pattern fixed every digit's place (ASCII digits only), so the C ISO parser reads exactly
        # these fields and checks their ranges, as strptime would, ten times faster: this runs
        # several times for every entry appended or verified. ``Z`` gives ``UTC`` itself.
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise EnvelopeError(f"time {text!r} is not a valid date") from exc


def now_ts() -> str:
    """The current time in the ledger's format."""
    return format_ts(now())
