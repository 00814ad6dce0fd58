"""RFC 8785 (JCS) canonical JSON for the values a ledger envelope may hold.

Two paths produce the same bytes: ``canonical_bytes`` (fast: a type check, then ``orjson``'s encoder)
and ``canonical_bytes_reference`` (the ``rfc8785`` package). Envelopes allow objects with string
keys, arrays, strings, booleans, null and integers within ±(2**53 - 1); floats are refused, which
keeps the fast path exact (RFC 8785 number formatting only matters for non-integers).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import rfc8785

from ledger.errors import CanonicalError

MAX_SAFE_INT = 2**53 - 1
MAX_DEPTH = 32

# orjson writes RFC 8785's bytes for the subset: no whitespace, UTF-8 as is, the same escapes (the short
# ones and lowercase \u00xx for the other control characters), keys in code point order, and integers
# refused beyond ±(2**53 - 1). What differs, _check keeps away: floats, and keys beyond U+FFFF.
_ORJSON = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


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
        # orjson sorts keys by code point, RFC 8785 by UTF-16 code unit; they differ only for keys
        # with characters beyond U+FFFF, which the reference implementation handles.
        return canonical_bytes_reference(value)
    try:
        return orjson.dumps(value, option=_ORJSON)
    except orjson.JSONEncodeError as exc:  # a lone surrogate: _check let every other refusal through
        raise CanonicalError("string holds a lone surrogate" if "surrogate" in str(exc) else str(exc)) from exc


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


def parse_canonical(data: bytes) -> Any:
    """Parse ``data`` and require that it is exactly the canonical form of what it holds."""
    try:
        # Fast path: orjson's parser, then ``canonical_bytes`` (the walk over the value and orjson's
        # encoder): if the bytes come back unchanged they are canonical, and any JSON parser reads
        # the same value from them. Anything else (a float, a duplicate key, a lone surrogate,
        # non-UTF-8 bytes, nesting, another spelling) takes the strict parse, which says what is wrong.
        value = orjson.loads(data)
        if canonical_bytes(value) == data:
            return value
    except (ValueError, TypeError, CanonicalError):  # orjson.JSONDecodeError is a ValueError
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
