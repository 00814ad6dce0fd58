"""RFC 8785 (JCS) canonical JSON for the values a ledger envelope may hold.

Two paths produce the same bytes: ``canonical_bytes`` (fast: a type check, then the C JSON encoder)
and ``canonical_bytes_reference`` (the ``rfc8785`` package). Envelopes allow objects with string
keys, arrays, strings, booleans, null and integers within ±(2**53 - 1); floats are refused, which
keeps the fast path exact (RFC 8785 number formatting only matters for non-integers).
"""

from __future__ import annotations

import json
import re
from typing import Any

import rfc8785

from ledger.errors import CanonicalError

MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 32

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)


def _check(value: Any, depth: int) -> bool:
    """Raise on a value outside the envelope's JSON subset; return True if a key needs UTF-16 order."""
    if depth > MAX_DEPTH:
        raise CanonicalError(f"JSON nested deeper than {MAX_DEPTH}")
    if isinstance(value, str):
        return False
    if value is None or value is True or value is False:
        return False
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise CanonicalError(f"integer {value} outside ±(2**53-1)")
        return False
    if isinstance(value, dict):
        astral = False
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalError("object key is not a string")
            if not k.isascii() and any(ord(c) > 0xFFFF for c in k):
                astral = True
            astral = _check(v, depth + 1) or astral
        return astral
    if isinstance(value, list):
        astral = False
        for v in value:
            astral = _check(v, depth + 1) or astral
        return astral
    if isinstance(value, float):
        raise CanonicalError("floating-point numbers are not allowed in ledger JSON")
    raise CanonicalError(f"value of type {type(value).__name__} is not JSON")


def canonical_bytes(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value`` (fast path, exact for the allowed subset)."""
    if _check(value, 0):
        # Python sorts keys by code point, RFC 8785 by UTF-16 code unit; they differ only for keys
        # with characters beyond U+FFFF, which the reference implementation handles.
        return canonical_bytes_reference(value)
    try:
        return _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalError("string holds a lone surrogate") from exc


def canonical_bytes_reference(value: Any) -> bytes:
    """The RFC 8785 canonical bytes from the ``rfc8785`` package (the reference for tests and bench)."""
    _check(value, 0)
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        raise CanonicalError(str(exc)) from exc


def _reject_constant(name: str) -> Any:
    raise CanonicalError(f"{name} is not allowed in ledger JSON")


def _reject_float(text: str) -> Any:
    raise CanonicalError(f"number {text} is not an integer")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise CanonicalError("object has a duplicate key")
    return d


def _safe_int(text: str) -> int:
    value = int(text)
    if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise CanonicalError(f"integer {value} outside ±(2**53-1)")
    return value


# The C parser, refusing what ``_check`` refuses among numbers and constants as it meets them.
_decoder = json.JSONDecoder(parse_float=_reject_float, parse_int=_safe_int, parse_constant=_reject_constant)
_FOUR_BYTE_UTF8 = re.compile(rb"[\xf0-\xff]")  # the lead byte of a character beyond U+FFFF (or not UTF-8)


def parse_canonical(data: bytes) -> Any:
    """Parse ``data`` and require that it is exactly the canonical form of what it holds."""
    try:
        # Fast path: the C parser, then the round trip through the C encoder. Whatever it lets
        # through is what the strict parse below accepts (a duplicate key, a lone surrogate or a
        # non-UTF-8 byte never re-encodes to the same bytes; floats, unsafe integers and constants are
        # refused by the parser's hooks). It skips ``canonical_bytes``'s walk over the value only where
        # that walk cannot matter: no character beyond U+FFFF (no key needing UTF-16 order) and no
        # more brackets than ``MAX_DEPTH`` (so no deeper nesting). Anything else goes the long way.
        value = _decoder.decode(data.decode("utf-8"))
        if data.count(b"{") + data.count(b"[") <= MAX_DEPTH and not _FOUR_BYTE_UTF8.search(data):
            if _encoder.encode(value).encode("utf-8") == data:
                return value
        elif canonical_bytes(value) == data:
            return value
    except (ValueError, RecursionError, CanonicalError):
        pass
    return _parse_canonical_strict(data)


def _parse_canonical_strict(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            parse_float=_reject_float,
            parse_constant=_reject_constant,
            object_pairs_hook=_pairs,
        )
    except UnicodeDecodeError as exc:
        raise CanonicalError("not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise CanonicalError(f"not JSON: {exc.msg} at byte {exc.pos}") from exc
    except RecursionError as exc:
        raise CanonicalError("JSON nested too deeply") from exc
    if canonical_bytes(value) != data:
        raise CanonicalError("not in RFC 8785 canonical form")
    return value
