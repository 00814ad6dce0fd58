"""HTTP Message Signatures (RFC 9421, Ed25519) and Content-Digest (RFC 9530) for Shulian requests.

Pure: the inputs are a method, a target URI, header fields, body bytes, keys and times; the outputs
are header fields to add or a verdict. No web framework is imported here: the API's middleware and
the client hand over what they have (I/O stays at the edges, as in DESIGN.md §4).

The Shulian profile: one signature tagged ``shulian`` covering at least ``@method``, ``@target-uri``
and ``content-digest`` (the digest of the empty body for a bodyless request), with the parameters
``created``, ``keyid`` (a Shulian key id), ``alg="ed25519"`` and ``nonce`` (at least 16 random bytes,
base64url). Replay protection (a store of nonces seen) is the caller's; ``verify_request`` returns
the nonce for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NoReturn, TypeAlias
from urllib.parse import urlsplit

import nacl.exceptions
import nacl.signing

from keys.keyid import is_key_id
from keys.keyid import key_id as key_id_of
from ledger.errors import LedgerError

__all__ = [
    "ALG",
    "DEFAULT_LABEL",
    "MAX_NONCE_BYTES",
    "MAX_SKEW",
    "MIN_NONCE_BYTES",
    "REQUIRED_COMPONENTS",
    "REQUIRED_PARAMS",
    "TAG",
    "HeaderInput",
    "Reason",
    "SignatureRejected",
    "Verified",
    "check_content_digest",
    "content_digest",
    "request_hash",
    "sign_request",
    "signature_base",
    "verify_request",
]

ALG: Final = "ed25519"
TAG: Final = "shulian"
DEFAULT_LABEL: Final = "sig1"
MAX_SKEW: Final = 300
REQUIRED_COMPONENTS: Final = ("@method", "@target-uri", "content-digest")
REQUIRED_PARAMS: Final = ("created", "keyid", "alg", "nonce", "tag")
MIN_NONCE_BYTES: Final = 16
MAX_NONCE_BYTES: Final = 64

HeaderInput: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
"""Header fields: a mapping (each name once, any case) or (name, value) pairs (names may repeat)."""


# ---------------------------------------------------------------------------------------------
# Errors and results
# ---------------------------------------------------------------------------------------------


class Reason(StrEnum):
    """Why a signed request was rejected (stable codes for logs and tests)."""

    MISSING = "missing"  # no Signature, Signature-Input or Content-Digest (or no entry for the label)
    MALFORMED = "malformed"  # not a valid structured field, or a signature base that cannot be built
    NOT_COVERED = "not-covered"  # a required component or parameter is not covered
    PROFILE = "profile"  # covered but not what the Shulian profile allows (alg, keyid, nonce, tag)
    CONTENT_DIGEST = "content-digest"  # the body does not match Content-Digest
    UNKNOWN_KEY = "unknown-key"
    STALE = "stale"  # created too long ago
    FUTURE = "future"  # created too far ahead of our clock
    EXPIRED = "expired"
    BAD_SIGNATURE = "bad-signature"


class SignatureRejected(LedgerError):
    """A request whose HTTP message signature is missing, malformed, out of profile, stale or wrong."""

    status = 401
    title = "Request signature rejected"

    def __init__(self, reason: Reason, detail: str, *, expected: str | None = None, found: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.expected = expected
        self.found = found


@dataclass(frozen=True)
class Verified:
    """A request whose signature holds: who signed it, when, with which nonce, and its stable id.

    The caller refuses a nonce it has seen before; remembering each nonce until ``created + max_skew``
    suffices, as later the signature is refused as stale anyway.
    """

    key_id: str
    created: int
    nonce: str
    request_hash: str  # hex SHA-256 of the signature base followed by the raw signature


# ---------------------------------------------------------------------------------------------
# RFC 8941 structured fields: the subset that signatures and digests use
# ---------------------------------------------------------------------------------------------


class _Token(str):
    """An RFC 8941 Token, serialized bare (a plain ``str`` is a String, serialized in quotes)."""

    __slots__ = ()


_BareItem: TypeAlias = bool | int | float | str | bytes
_Params: TypeAlias = dict[str, _BareItem]


@dataclass(frozen=True)
class _Item:
    value: _BareItem
    params: _Params = field(default_factory=dict)


@dataclass(frozen=True)
class _InnerList:
    items: tuple[_Item, ...]
    params: _Params = field(default_factory=dict)


_Member: TypeAlias = _Item | _InnerList


class _SFError(ValueError):
    """A field value that is not a valid structured field of the expected type."""


class _DuplicateKey(_SFError):
    """A dictionary key or parameter given twice (RFC 8941 would keep the last; we refuse)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key {key!r} appears twice")
        self.key = key


_LCALPHA = "abcdefghijklmnopqrstuvwxyz"
_DIGIT = "0123456789"
_KEY_FIRST = frozenset(_LCALPHA + "*")
_KEY_REST = frozenset(_LCALPHA + _DIGIT + "_-.*")
_TCHAR = frozenset("!#$%&'*+-.^_`|~" + _DIGIT + _LCALPHA + _LCALPHA.upper())
_TOKEN_FIRST = frozenset(_LCALPHA + _LCALPHA.upper() + "*")
_TOKEN_REST = _TCHAR | {":", "/"}
_BASE64 = frozenset(_LCALPHA + _LCALPHA.upper() + _DIGIT + "+/=")
_KEY_RE = re.compile(r"[a-z*][a-z0-9_\-.*]*")
# Fast paths of the parser and serializers (the same rules as the character loops, run by the regex engine).
_PRINTABLE_RE = re.compile(r"[ -~]*")  # printable ASCII: what a String may hold
_PLAIN_STRING_RE = re.compile(r'"([ !#-\[\]-~]*)"')  # a String without escapes
_TOKEN_REST_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_INTEGER_RE = re.compile(r"-?[0-9]{1,15}(?![0-9.])")
_FIELD_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # controls other than HTAB, and DEL
_URI_BAD_RE = re.compile(r"[\x00-\x20\x7f]")
_MAX_INTEGER = 999_999_999_999_999


class _Parser:
    """RFC 8941 §4.2 parsing of Dictionaries, Inner Lists, Items and Parameters."""

    def __init__(self, text: str) -> None:
        if not text.isascii():
            raise _SFError("non-ASCII character")
        self.s = text.strip(" ")
        self.i = 0

    def _fail(self, what: str) -> NoReturn:
        raise _SFError(f"{what} at offset {self.i}")

    def _peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def _skip_ows(self) -> None:
        while self._peek() in (" ", "\t"):
            self.i += 1

    def _skip_sp(self) -> None:
        while self._peek() == " ":
            self.i += 1

    def dictionary(self) -> dict[str, _Member]:
        out: dict[str, _Member] = {}
        while self.i < len(self.s):
            key = self._key()
            if key in out:
                raise _DuplicateKey(key)
            if self._peek() == "=":
                self.i += 1
                out[key] = self._item_or_inner_list()
            else:
                out[key] = _Item(True, self._parameters())
            self._skip_ows()
            if self.i == len(self.s):
                return out
            if self._peek() != ",":
                self._fail("expected ','")
            self.i += 1
            self._skip_ows()
            if self.i == len(self.s):
                self._fail("trailing ','")
        return out

    def _item_or_inner_list(self) -> _Member:
        return self._inner_list() if self._peek() == "(" else self._item()

    def _inner_list(self) -> _InnerList:
        self.i += 1  # "("
        items: list[_Item] = []
        while self.i < len(self.s):
            self._skip_sp()
            if self._peek() == ")":
                self.i += 1
                return _InnerList(tuple(items), self._parameters())
            items.append(self._item())
            if self.i == len(self.s):
                break
            if self._peek() not in (" ", ")"):
                self._fail("expected ' ' or ')' in inner list")
        self._fail("unterminated inner list")

    def _item(self) -> _Item:
        value = self._bare_item()
        return _Item(value, self._parameters())

    def _parameters(self) -> _Params:
        params: _Params = {}
        while self._peek() == ";":
            self.i += 1
            self._skip_sp()
            key = self._key()
            if key in params:
                raise _DuplicateKey(key)
            value: _BareItem = True
            if self._peek() == "=":
                self.i += 1
                value = self._bare_item()
            params[key] = value
        return params

    def _key(self) -> str:
        found = _KEY_RE.match(self.s, self.i)
        if found is None:
            self._fail("expected a key (lowercase letter or '*')")
        self.i = found.end()
        return found.group()

    def _bare_item(self) -> _BareItem:
        c = self._peek()
        if c == "-" or (c and c in _DIGIT):
            return self._number()
        if c == '"':
            return self._string()
        if c == ":":
            return self._byte_sequence()
        if c == "?":
            return self._boolean()
        if c and c in _TOKEN_FIRST:
            return self._token()
        self._fail("expected an item")

    def _number(self) -> int | float:
        plain = _INTEGER_RE.match(self.s, self.i)
        if plain is not None:
            self.i = plain.end()
            return int(plain.group())
        start = self.i
        if self._peek() == "-":
            self.i += 1
        if not (self._peek() and self._peek() in _DIGIT):
            self._fail("expected a digit")
        digits_start = self.i
        point = -1
        while self._peek() and (self._peek() in _DIGIT or (self._peek() == "." and point < 0)):
            if self._peek() == ".":
                if self.i - digits_start > 12:
                    self._fail("decimal with more than 12 integer digits")
                point = self.i
            self.i += 1
            if point < 0 and self.i - digits_start > 15:
                self._fail("integer with more than 15 digits")
        text = self.s[start : self.i]
        if point < 0:
            return int(text)
        fraction = self.i - point - 1
        if not 1 <= fraction <= 3:
            self._fail("decimal needs 1 to 3 fractional digits")
        return float(text)

    def _string(self) -> str:
        plain = _PLAIN_STRING_RE.match(self.s, self.i)
        if plain is not None:
            self.i = plain.end()
            return plain.group(1)
        self.i += 1  # opening DQUOTE
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == "\\":
                nxt = self._peek()
                if nxt not in ('"', "\\") or not nxt:
                    self._fail("bad escape in string")
                out.append(nxt)
                self.i += 1
            elif c == '"':
                return "".join(out)
            elif not " " <= c <= "~":
                self._fail("control character in string")
            else:
                out.append(c)
        self._fail("unterminated string")

    def _token(self) -> _Token:
        start = self.i  # the first character is a _TOKEN_FIRST (checked by _bare_item)
        self.i = _TOKEN_REST_RE.match(self.s, start + 1).end()  # type: ignore[union-attr]  # always matches
        return _Token(self.s[start : self.i])

    def _byte_sequence(self) -> bytes:
        self.i += 1  # opening ":"
        end = self.s.find(":", self.i)
        if end < 0:
            self._fail("unterminated byte sequence")
        text = self.s[self.i : end]
        if not set(text) <= _BASE64:
            self._fail("byte sequence is not base64")
        try:
            value = base64.b64decode(text, validate=True)
        except binascii.Error:
            self._fail("byte sequence is not base64 with padding")
        self.i = end + 1
        return value

    def _boolean(self) -> bool:
        self.i += 1  # "?"
        c = self._peek()
        if c not in ("0", "1") or not c:
            self._fail("expected ?0 or ?1")
        self.i += 1
        return c == "1"


def _parse_dictionary(text: str) -> dict[str, _Member]:
    return _Parser(text).dictionary()


def _is_string(value: _BareItem) -> bool:
    return type(value) is str


def _is_integer(value: _BareItem) -> bool:
    return type(value) is int


def _ser_string(value: str) -> str:
    if not _PRINTABLE_RE.fullmatch(value):
        raise ValueError(f"{value!r} cannot be a structured-field string (printable ASCII only)")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ser_bytes(value: bytes) -> str:
    return ":" + base64.b64encode(value).decode("ascii") + ":"


def _ser_bare(value: _BareItem) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        if abs(value) > _MAX_INTEGER:
            raise ValueError(f"integer {value} out of range")
        return str(value)
    if isinstance(value, float):
        text = f"{round(value, 3):.3f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, bytes):
        return _ser_bytes(value)
    if isinstance(value, _Token):
        if not value or value[0] not in _TOKEN_FIRST or not set(value) <= _TOKEN_REST:
            raise ValueError(f"{value!r} is not a token")
        return str(value)
    return _ser_string(value)


def _ser_params(params: _Params) -> str:
    out = []
    for key, value in params.items():
        if not _KEY_RE.fullmatch(key):
            raise ValueError(f"{key!r} is not a structured-field key")
        out.append(f";{key}" if value is True else f";{key}={_ser_bare(value)}")
    return "".join(out)


def _ser_item(item: _Item) -> str:
    return _ser_bare(item.value) + _ser_params(item.params)


def _ser_inner_list(inner: _InnerList) -> str:
    return "(" + " ".join(_ser_item(i) for i in inner.items) + ")" + _ser_params(inner.params)


# ---------------------------------------------------------------------------------------------
# Message components (RFC 9421 §2.1 fields, §2.2 derived components) and the signature base (§2.5)
# ---------------------------------------------------------------------------------------------


class _BaseError(ValueError):
    """A signature base that cannot be built (RFC 9421 §2.5: fail with no base)."""


_METHOD_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_AUTHORITY_RE = re.compile(r"(\[[0-9a-f:.]+\]|[^:\[\]@]+)(?::([0-9]*))?")
_OBS_FOLD = re.compile(r"\r?\n[ \t]+")
_DEFAULT_PORT: Final = {"http": 80, "https": 443}


def _collect(headers: HeaderInput) -> dict[str, list[str]]:
    """Field values by lowercase name, in message order (RFC 9110: names are case-insensitive)."""
    pairs: Iterable[tuple[str, str]] = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name.lower(), []).append(value)
    return out


def _field_value(fields: Mapping[str, list[str]], name: str) -> str | None:
    """RFC 9421 §2.1: each field line trimmed, obs-fold made one space, lines joined with ", "."""
    lines = fields.get(name)
    if lines is None:
        return None
    cleaned = []
    for line in lines:
        value = _OBS_FOLD.sub(" ", line).strip(" \t")
        if not value.isascii() or _FIELD_CTL_RE.search(value):
            raise _BaseError(f"field {name!r} has a control or non-ASCII character")
        cleaned.append(value)
    return ", ".join(cleaned)


def _derived_components(method: str, url: str) -> dict[str, str]:
    """The derived component values of a request (RFC 9421 §2.2.1-2.2.7).

    ``@method`` is the method as given (§2.2.1: no case change). The target URI is the absolute URI
    as given, normalised only as RFC 9110 §4.2.3 makes equal URIs equal: scheme and host in lowercase,
    the default port left out, an empty path written "/". Percent-encoding is left as it is.
    """
    if not _METHOD_RE.fullmatch(method):
        raise _BaseError(f"method {method!r} is not an HTTP method token")
    if not url.isascii() or _URI_BAD_RE.search(url):
        raise _BaseError("target URI has a space, control or non-ASCII character")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORT or not parts.netloc:
        raise _BaseError(f"target URI {url!r} is not an absolute http(s) URI")
    if "#" in url:
        raise _BaseError("target URI has a fragment")
    match = _AUTHORITY_RE.fullmatch(parts.netloc.lower())
    if match is None:
        raise _BaseError(f"target URI authority {parts.netloc!r} is not host[:port] (no userinfo)")
    host, port = match.group(1), match.group(2)
    authority = host if not port or int(port) == _DEFAULT_PORT[scheme] else f"{host}:{int(port)}"
    path = parts.path or "/"
    if not path.startswith("/"):
        raise _BaseError(f"target URI path {path!r} is not absolute")
    query = f"?{parts.query}" if parts.query else ""
    return {
        "@method": method,
        "@target-uri": f"{scheme}://{authority}{path}{query}",
        "@authority": authority,
        "@scheme": scheme,
        "@request-target": f"{path}{query}",
        "@path": path,
        "@query": query or "?",
    }


def _base(derived: Mapping[str, str], fields: Mapping[str, list[str]], params: _InnerList) -> bytes:
    """RFC 9421 §2.5: one line per covered component, then the "@signature-params" line (no final LF)."""
    lines = []
    seen: set[str] = set()
    for item in params.items:
        name = item.value
        if not isinstance(name, str) or not _is_string(name):
            raise _BaseError(f"component identifier {_ser_bare(name)} is not a string")
        if item.params:
            raise _BaseError(f"component parameters are not supported: {_ser_item(item)}")
        if name in seen:
            raise _BaseError(f"component {name!r} is covered twice")
        seen.add(name)
        if name == "@signature-params":
            raise _BaseError('"@signature-params" cannot be a covered component')
        if name.startswith("@"):
            if name not in derived:
                raise _BaseError(f"derived component {name!r} is not supported for requests")
            value = derived[name]
        else:
            if not _FIELD_NAME_RE.fullmatch(name):
                raise _BaseError(f"component {name!r} is not a lowercase field name")
            found = _field_value(fields, name)
            if found is None:
                raise _BaseError(f"covered field {name!r} is not in the request")
            value = found
        lines.append(f"{_ser_string(name)}: {value}\n")
    lines.append(f'"@signature-params": {_ser_inner_list(params)}')
    return "".join(lines).encode("ascii")


def signature_base(*, method: str, url: str, headers: HeaderInput, signature_input: str, label: str) -> bytes:
    """The RFC 9421 signature base for ``label`` of a Signature-Input field value (no Shulian rules).

    Raises ``ValueError`` when the field is malformed, has no such label, or names a component that
    the request does not have.
    """
    member = _parse_dictionary(signature_input).get(label)
    if not isinstance(member, _InnerList):
        raise ValueError(f"Signature-Input has no inner list labelled {label!r}")
    return _base(_derived_components(method, url), _collect(headers), member)


def request_hash(base: bytes, signature: bytes) -> str:
    """The stable id of a signed request: hex SHA-256 of its signature base followed by the signature."""
    return hashlib.sha256(base + signature).hexdigest()


# ---------------------------------------------------------------------------------------------
# Content-Digest (RFC 9530)
# ---------------------------------------------------------------------------------------------

_DIGEST_ALGS: Final = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}


def content_digest(body: bytes) -> str:
    """The Content-Digest field value of ``body``: ``sha-256=:<base64>:``."""
    return f"sha-256={_ser_bytes(hashlib.sha256(body).digest())}"


def _check_digest(fields: Mapping[str, list[str]], body: bytes) -> None:
    try:
        raw = _field_value(fields, "content-digest")
        if raw is None or not raw:
            raise SignatureRejected(Reason.MISSING, "missing Content-Digest header")
        digests = _parse_dictionary(raw)
    except _SFError as exc:
        raise SignatureRejected(Reason.MALFORMED, f"malformed Content-Digest: {exc}") from None
    except _BaseError as exc:
        raise SignatureRejected(Reason.MALFORMED, f"malformed Content-Digest: {exc}") from None
    known = [alg for alg in digests if alg in _DIGEST_ALGS]
    if not known:
        has = ", ".join(digests) or "nothing"
        raise SignatureRejected(Reason.CONTENT_DIGEST, f"Content-Digest has no sha-256 or sha-512 digest (has {has})")
    for alg in known:
        member = digests[alg]
        if not isinstance(member, _Item) or not isinstance(member.value, bytes):
            raise SignatureRejected(Reason.MALFORMED, f"malformed Content-Digest: {alg} is not a byte sequence")
        actual = _DIGEST_ALGS[alg](body).digest()
        if not hmac.compare_digest(actual, member.value):
            expected, found = _ser_bytes(actual), _ser_bytes(member.value)
            raise SignatureRejected(
                Reason.CONTENT_DIGEST,
                f"content digest mismatch: {alg} of the body is {expected}, Content-Digest says {found}",
                expected=expected,
                found=found,
            )


def check_content_digest(headers: HeaderInput, body: bytes) -> None:
    """Check ``body`` against the Content-Digest field: every sha-256 or sha-512 digest given must match.

    Raises ``SignatureRejected`` if the field is missing or malformed, has neither algorithm, or a
    digest differs. Other algorithms are ignored (RFC 9530 §2 lets a recipient ignore digests).
    """
    _check_digest(_collect(headers), body)


# ---------------------------------------------------------------------------------------------
# Signing and verifying (the Shulian profile)
# ---------------------------------------------------------------------------------------------


def _nonce_problem(nonce: str) -> str | None:
    """None for a base64url nonce (padding optional) of 16 to 64 bytes, else what is wrong."""
    if not nonce or not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", nonce):
        return f"nonce {nonce!r} is not base64url"
    unpadded = nonce.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error:
        return f"nonce {nonce!r} is not base64url"
    if not MIN_NONCE_BYTES <= len(raw) <= MAX_NONCE_BYTES:
        return f"nonce has {len(raw)} bytes; it needs {MIN_NONCE_BYTES} to {MAX_NONCE_BYTES}"
    return None


def _new_nonce() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(MIN_NONCE_BYTES)).rstrip(b"=").decode("ascii")


def sign_request(
    *,
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    key: nacl.signing.SigningKey,
    key_id: str,
    created: int | None = None,
    nonce: str | None = None,
    label: str = DEFAULT_LABEL,
    components: Sequence[str] | None = None,
) -> dict[str, str]:
    """The header fields to add to a request so that it carries a Shulian signature.

    Returns ``Content-Digest``, ``Signature-Input`` and ``Signature``. ``url`` is the absolute target
    URI exactly as it will be sent; ``headers`` are the request's other fields (any Content-Digest
    among them is replaced by the one returned). The covered components default to ``@method``,
    ``@target-uri``, ``content-digest`` and, when the request has one, ``content-type``. ``created``
    defaults to now and ``nonce`` to 16 fresh random bytes. Raises ``ValueError`` for arguments
    that could only give a signature the verifier refuses.
    """
    public = bytes(key.verify_key)
    if key_id != key_id_of(public):
        raise ValueError(f"key_id {key_id!r} is not the id of this key ({key_id_of(public)})")
    if not _KEY_RE.fullmatch(label):
        raise ValueError(f"label {label!r} is not a structured-field key")
    if created is None:
        created = int(time.time())
    if not _is_integer(created) or not 0 <= created <= _MAX_INTEGER:
        raise ValueError(f"created {created!r} is not a UNIX time in seconds")
    if nonce is None:
        nonce = _new_nonce()
    problem = _nonce_problem(nonce)
    if problem is not None:
        raise ValueError(problem)
    fields = _collect(headers)
    digest = content_digest(body)
    fields["content-digest"] = [digest]
    if components is None:
        components = (*REQUIRED_COMPONENTS, "content-type") if "content-type" in fields else REQUIRED_COMPONENTS
    missing = [c for c in REQUIRED_COMPONENTS if c not in components]
    if missing:
        raise ValueError(f"components must include {', '.join(missing)}")
    params: _Params = {"created": created, "keyid": key_id, "alg": ALG, "nonce": nonce, "tag": TAG}
    inner = _InnerList(tuple(_Item(c) for c in components), params)
    base = _base(_derived_components(method, url), fields, inner)
    signature = bytes(key.sign(base).signature)
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{label}={_ser_inner_list(inner)}",
        "Signature": f"{label}={_ser_bytes(signature)}",
    }


def _parse_field(fields: Mapping[str, list[str]], name: str, title: str) -> dict[str, _Member]:
    try:
        raw = _field_value(fields, name)
        if raw is None or not raw:
            raise SignatureRejected(Reason.MISSING, f"missing {title} header")
        return _parse_dictionary(raw)
    except _DuplicateKey as exc:
        raise SignatureRejected(Reason.MALFORMED, f"malformed {title}: label {exc.key!r} appears twice") from None
    except (_SFError, _BaseError) as exc:
        raise SignatureRejected(Reason.MALFORMED, f"malformed {title}: {exc}") from None


def _choose_label(inputs: Mapping[str, _Member]) -> str:
    """The one signature to check: the only one, or else the only one tagged "shulian"."""
    for label, member in inputs.items():
        if not isinstance(member, _InnerList):
            raise SignatureRejected(Reason.MALFORMED, f"malformed Signature-Input: {label!r} is not an inner list")
    if len(inputs) == 1:
        return next(iter(inputs))
    tagged = [label for label, m in inputs.items() if isinstance(m, _InnerList) and _is_tag(m.params.get("tag"))]
    if len(tagged) == 1:
        return tagged[0]
    labels = ", ".join(inputs)
    if not tagged:
        raise SignatureRejected(Reason.NOT_COVERED, f"none of the signatures ({labels}) is tagged {TAG!r}")
    raise SignatureRejected(Reason.PROFILE, f"more than one signature is tagged {TAG!r} ({', '.join(tagged)})")


def _is_tag(value: _BareItem | None) -> bool:
    return value is not None and _is_string(value) and value == TAG


def _profile(label: str, inner: _InnerList) -> tuple[int, int | None, str, str]:
    """Check the Shulian profile on the covered components and parameters: (created, expires, keyid, nonce)."""
    covered = {item.value for item in inner.items if isinstance(item.value, str) and _is_string(item.value)}
    for component in REQUIRED_COMPONENTS:
        if component not in covered:
            raise SignatureRejected(
                Reason.NOT_COVERED,
                f"signature {label!r} does not cover {component!r} (covers {_ser_inner_list(_InnerList(inner.items))})",
                expected=component,
            )
    params = inner.params
    for name in REQUIRED_PARAMS:
        if name not in params:
            raise SignatureRejected(Reason.NOT_COVERED, f"signature {label!r} has no {name!r} parameter", expected=name)
    created, expires = params["created"], params.get("expires")
    if not isinstance(created, int) or not _is_integer(created):
        raise SignatureRejected(Reason.MALFORMED, f"signature {label!r}: created is not an integer")
    if expires is not None and (not isinstance(expires, int) or not _is_integer(expires)):
        raise SignatureRejected(Reason.MALFORMED, f"signature {label!r}: expires is not an integer")
    alg, keyid, nonce, tag = params["alg"], params["keyid"], params["nonce"], params["tag"]
    if not _is_string(alg) or alg != ALG:
        raise SignatureRejected(
            Reason.PROFILE, f"signature {label!r} has alg {_ser_bare(alg)}; Shulian requires {ALG!r}", expected=ALG
        )
    if not isinstance(keyid, str) or not _is_string(keyid) or not is_key_id(keyid):
        raise SignatureRejected(
            Reason.PROFILE, f"signature {label!r} has keyid {_ser_bare(keyid)}, not a key id (32 lowercase hex)"
        )
    if not isinstance(nonce, str) or not _is_string(nonce):
        raise SignatureRejected(Reason.PROFILE, f"signature {label!r}: nonce is not a string")
    problem = _nonce_problem(nonce)
    if problem is not None:
        raise SignatureRejected(Reason.PROFILE, f"signature {label!r}: {problem}")
    if not _is_tag(tag):
        raise SignatureRejected(
            Reason.PROFILE, f"signature {label!r} has tag {_ser_bare(tag)}; Shulian requires {TAG!r}", expected=TAG
        )
    return created, expires, keyid, nonce


def verify_request(
    *,
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    resolve_key: Callable[[str], bytes | None],
    now: int,
    max_skew: int = MAX_SKEW,
) -> Verified:
    """Verify a request's Shulian signature; raise ``SignatureRejected`` saying what is wrong.

    ``url`` is the absolute target URI as received, ``resolve_key`` maps a key id to its raw 32-byte
    Ed25519 public key (None if unknown or not valid now), ``now`` is UNIX seconds. Checks, in order:
    the fields are present and well formed; the profile (covered components, parameters); the time
    (``created`` within ``max_skew`` of ``now``, ``expires``, if given, not before ``now``); the key is known; the body
    matches Content-Digest; the Ed25519 signature over the RFC 9421 signature base. The caller must
    still refuse a nonce seen before.
    """
    fields = _collect(headers)
    inputs = _parse_field(fields, "signature-input", "Signature-Input")
    signatures = _parse_field(fields, "signature", "Signature")
    label = _choose_label(inputs)
    inner = inputs[label]
    assert isinstance(inner, _InnerList)  # _choose_label checked every member
    member = signatures.get(label)
    if member is None:
        raise SignatureRejected(Reason.MISSING, f"Signature has no entry for label {label!r}")
    if not isinstance(member, _Item) or not isinstance(member.value, bytes):
        raise SignatureRejected(Reason.MALFORMED, f"malformed Signature: {label!r} is not a byte sequence")
    signature = member.value

    created, expires, keyid, nonce = _profile(label, inner)
    skew = f"(allowed clock skew {max_skew}s)"
    if created > now + max_skew:
        raise SignatureRejected(Reason.FUTURE, f"created {created} is {created - now}s in the future {skew}")
    if created < now - max_skew:
        raise SignatureRejected(Reason.STALE, f"created {created} is {now - created}s old {skew}")
    if expires is not None and expires < created:
        raise SignatureRejected(Reason.MALFORMED, f"signature {label!r} expires ({expires}) before it was created")
    if expires is not None and now > expires:
        raise SignatureRejected(Reason.EXPIRED, f"signature {label!r} expired at {expires}, {now - expires}s ago")

    public = resolve_key(keyid)
    if public is None:
        raise SignatureRejected(Reason.UNKNOWN_KEY, f"unknown key {keyid}")
    if len(public) != 32:
        raise ValueError(f"resolve_key gave {len(public)} bytes for {keyid}; an Ed25519 public key is 32")

    _check_digest(fields, body)
    try:
        base = _base(_derived_components(method, url), fields, inner)
    except _BaseError as exc:
        raise SignatureRejected(Reason.MALFORMED, f"cannot build the signature base: {exc}") from None

    if len(signature) != 64:
        raise SignatureRejected(
            Reason.BAD_SIGNATURE, f"signature {label!r} has {len(signature)} bytes; an Ed25519 signature has 64"
        )
    try:
        nacl.signing.VerifyKey(public).verify(base, signature)
    except nacl.exceptions.BadSignatureError:
        raise SignatureRejected(
            Reason.BAD_SIGNATURE,
            f"signature {label!r} does not verify under key {keyid}: the method, target URI or a covered"
            " field differs from what was signed, or another key signed it",
        ) from None
    return Verified(key_id=keyid, created=created, nonce=nonce, request_hash=request_hash(base, signature))
