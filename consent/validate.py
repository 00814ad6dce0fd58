"""Shape checks shared by the body parsers: each raises ``InvalidBody`` naming the field at fault."""

from __future__ import annotations

import base64
import binascii
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from consent.errors import InvalidBody
from keys.keyid import is_key_id
from ledger.canonical import MAX_SAFE_INT
from ledger.errors import EnvelopeError
from ledger.timefmt import parse_ts

MAX_TEXT = 200
MAX_REASON = 1000
MAX_ITEMS = 200
SNAKE_CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")


def fields_exactly(body: Mapping[str, Any], what: str, required: frozenset[str]) -> None:
    """Refuse a body that lacks a required field or carries one this version does not know."""
    if not isinstance(body, Mapping):
        raise InvalidBody(f"{what} body is not an object")
    keys = set(body)
    if keys != required:
        missing = sorted(required - keys)
        unknown = sorted(keys - required)
        raise InvalidBody(f"{what} body fields wrong: missing {missing}, unknown {unknown}")


def text(value: object, where: str, *, max_len: int = MAX_TEXT) -> str:
    """A non-empty string of at most ``max_len`` characters."""
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidBody(f"{where} is not a string of 1 to {max_len} characters")
    if value != value.strip():
        raise InvalidBody(f"{where} has leading or trailing white space")
    return value


def name(value: object, where: str, *, max_len: int = MAX_TEXT) -> str:
    """``text`` that many entries repeat (a subject, a purpose): one string in memory for all of them
    (a state replayed from 10^6 entries otherwise holds a copy per entry)."""
    return sys.intern(text(value, where, max_len=max_len))


def matching(value: object, where: str, pattern: re.Pattern[str], shape: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidBody(f"{where} is not {shape}")
    return value


def key_id(value: object, where: str) -> str:
    if not is_key_id(value):
        raise InvalidBody(f"{where} is not a key id (32 lowercase hex digits)")
    assert isinstance(value, str)
    return sys.intern(value)  # a key names many entries: one string for all


def integer(value: object, where: str, *, minimum: int = 0, maximum: int = MAX_SAFE_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidBody(f"{where} is not an integer from {minimum} to {maximum}")
    return value


def seq(value: object, where: str, *, before: int | None = None) -> int:
    """A seq of an earlier entry: an integer ≥ 0 (and < ``before`` when given)."""
    n = integer(value, where)
    if before is not None and n >= before:
        raise InvalidBody(f"{where} is {n}, not the seq of an earlier entry (< {before})")
    return n


def optional_seq(value: object, where: str) -> int | None:
    return None if value is None else seq(value, where)


def boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidBody(f"{where} is not true or false")
    return value


def moment(value: object, where: str) -> datetime:
    """A time in the ledger's format."""
    try:
        return parse_ts(value)
    except EnvelopeError as exc:
        raise InvalidBody(f"{where}: {exc}") from exc


def window(body: Mapping[str, Any], what: str) -> tuple[datetime, datetime]:
    """``valid_from`` < ``valid_until``, both in the ledger's time format."""
    start = moment(body["valid_from"], f"{what}.valid_from")
    end = moment(body["valid_until"], f"{what}.valid_until")
    if not start < end:
        raise InvalidBody(f"{what}.valid_from must be before valid_until")
    return start, end


def b64(value: object, where: str, size: int) -> bytes:
    """Standard padded base64 of exactly ``size`` bytes, in its one canonical spelling."""
    if not isinstance(value, str):
        raise InvalidBody(f"{where} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBody(f"{where} is not base64") from exc
    if len(raw) != size or base64.b64encode(raw).decode() != value:
        raise InvalidBody(f"{where} is not the base64 of {size} bytes")
    return raw


def text_list(
    value: object,
    where: str,
    *,
    min_items: int = 1,
    max_items: int = MAX_ITEMS,
    pattern: re.Pattern[str] | None = None,
    max_len: int = MAX_TEXT,
) -> tuple[str, ...]:
    """A list of distinct strings (each matching ``pattern`` when given)."""
    if not isinstance(value, list) or not min_items <= len(value) <= max_items:
        raise InvalidBody(f"{where} is not a list of {min_items} to {max_items} strings")
    if pattern is None:
        out = tuple(text(item, f"{where}[{i}]", max_len=max_len) for i, item in enumerate(value))
    else:
        fullmatch = pattern.fullmatch  # the messages are made only for a bad item (a hot path)
        for i, item in enumerate(value):
            if not isinstance(item, str) or fullmatch(item) is None:
                raise InvalidBody(f"{where}[{i}] is not a string matching {pattern.pattern}")
        out = tuple(map(sys.intern, value))  # names from a fixed vocabulary (fields): one string each
    if len(set(out)) != len(out):
        raise InvalidBody(f"{where} repeats an item")
    return out


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
