"""Record commitments and selective disclosure (as SD-JWT does it, over an RFC 9162 tree).

A record is ``{field: value}`` with string or integer values. Every field of the dataset gives two
leaves, in the dataset's field order: its raw form, then its masked form (``masking.mask``). A leaf's
commitment is SHA-256(salt ‖ canonical_bytes({"field", "form", "value"})) with a fresh 16-byte salt;
the record commitment, the one value on the ledger, is the RFC 9162 root over the leaf hashes of
those commitments. A disclosure opens some leaves (value and salt) and gives only the commitment of
the others, so the receiver can recompute the root and compare it with the ledger's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consent.catalogue import Dataset
from consent.errors import CommitmentMismatch, DisclosureError, InvalidRecord, UnknownField
from consent.masking import mask
from ledger.canonical import MAX_SAFE_INT, canonical_bytes
from ledger.errors import CanonicalError
from ledger.tree import HASH_SIZE, leaf_hash, root_from_leaves

SALT_SIZE = 16
FORMS = ("raw", "masked")
MODES = ("full", "masked")  # "full" opens the raw leaf, "masked" the masked one
MAX_VALUE_CHARS = 4096

Value = str | int
Salts = Mapping[str, tuple[bytes, bytes]]  # field -> (salt of the raw leaf, salt of the masked leaf)
DisclosureItem = dict[str, Any]


def leaf_commitment(salt: bytes, field: str, form: str, value: Value) -> bytes:
    """SHA-256(salt ‖ canonical_bytes({"field", "form", "value"})): the commitment of one leaf."""
    if len(salt) != SALT_SIZE:
        raise DisclosureError(f"salt is {len(salt)} bytes, not {SALT_SIZE}")
    return hashlib.sha256(salt + canonical_bytes({"field": field, "form": form, "value": value})).digest()


@dataclass(frozen=True, slots=True)
class RecordCommitment:
    """The record commitment (``root``), the salts that opened it and each leaf's commitment, in leaf order."""

    root: bytes
    salts: dict[str, tuple[bytes, bytes]]
    commitments: tuple[bytes, ...]

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode()


def _check_value(field: str, value: object) -> Value:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRecord(f"value of {field} is not a string or an integer")
    if isinstance(value, int) and not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise InvalidRecord(f"value of {field} is outside ±(2**53-1)")
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidRecord(f"value of {field} is longer than {MAX_VALUE_CHARS} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRecord(f"value of {field} holds a lone surrogate") from exc
    return value


def _check_values(dataset: Dataset, values: Mapping[str, object]) -> None:
    unknown = sorted(set(values) - dataset.names)
    if unknown:
        raise UnknownField(f"dataset {dataset.dataset} has no field {unknown[0]!r}")
    missing = [name for name in dataset.field_names if name not in values]
    if missing:
        raise InvalidRecord(f"record lacks field {missing[0]!r} of dataset {dataset.dataset}")
    for name in dataset.field_names:
        _check_value(name, values[name])


def _leaf_values(dataset: Dataset, values: Mapping[str, Value]) -> list[tuple[str, str, Value]]:
    """(field, form, value) of every leaf, in leaf order."""
    out: list[tuple[str, str, Value]] = []
    for name in dataset.field_names:
        out.append((name, "raw", values[name]))
        out.append((name, "masked", mask(name, values[name])))
    return out


def new_salts(dataset: Dataset) -> dict[str, tuple[bytes, bytes]]:
    """Fresh random salts, two per field."""
    return {name: (secrets.token_bytes(SALT_SIZE), secrets.token_bytes(SALT_SIZE)) for name in dataset.field_names}


def _check_salts(dataset: Dataset, salts: Salts) -> None:
    if set(salts) != dataset.names:
        raise InvalidRecord(f"salts do not name exactly the fields of dataset {dataset.dataset}")
    for name, pair in salts.items():
        if len(pair) != 2 or any(len(s) != SALT_SIZE for s in pair):
            raise InvalidRecord(f"salts of {name} are not two {SALT_SIZE}-byte salts")


def commit_record(dataset: Dataset, values: Mapping[str, Value], salts: Salts | None = None) -> RecordCommitment:
    """Commit to a record: the root over its raw and masked leaves (new salts when ``salts`` is None)."""
    _check_values(dataset, values)
    salt_map = dict(salts) if salts is not None else new_salts(dataset)
    _check_salts(dataset, salt_map)
    commitments = tuple(
        leaf_commitment(salt_map[name][FORMS.index(form)], name, form, value)
        for name, form, value in _leaf_values(dataset, values)
    )
    root = root_from_leaves([leaf_hash(c) for c in commitments])
    return RecordCommitment(root, salt_map, commitments)


@dataclass(frozen=True, slots=True)
class OpenedLeaves:
    """A record version ready to disclose from: for each leaf, in leaf order, (field, form, the item that
    opens it, the item that withholds it). Every commitment is computed once, however often the
    version is disclosed (``disclose_opened``)."""

    dataset: str
    leaves: tuple[tuple[str, str, DisclosureItem, DisclosureItem], ...]


def open_leaves(dataset: Dataset, values: Mapping[str, Value], salts: Salts) -> OpenedLeaves:
    """The opened and withheld item of every leaf of a record version (values and salts checked first)."""
    _check_values(dataset, values)
    _check_salts(dataset, salts)
    leaves = []
    for name, form, value in _leaf_values(dataset, values):
        salt = salts[name][FORMS.index(form)]
        opened = {"field": name, "form": form, "value": value, "salt": base64.b64encode(salt).decode()}
        withheld = {"hash": base64.b64encode(leaf_commitment(salt, name, form, value)).decode()}
        leaves.append((name, form, opened, withheld))
    return OpenedLeaves(dataset.dataset, tuple(leaves))


def disclose(
    dataset: Dataset, values: Mapping[str, Value], salts: Salts, modes: Mapping[str, str]
) -> list[DisclosureItem]:
    """The disclosure of ``modes`` (``{field: "full" | "masked"}``): opened leaves and withheld commitments.

    A "full" field opens its raw leaf, a "masked" field its masked leaf; every other leaf is given
    as ``{"hash": <base64 commitment>}``, so the receiver can recompute the record commitment.
    """
    return disclose_opened(dataset, open_leaves(dataset, values, salts), modes)


def disclose_opened(dataset: Dataset, opened: OpenedLeaves, modes: Mapping[str, str]) -> list[DisclosureItem]:
    """``disclose`` from a version's ``open_leaves`` (each item a fresh dict)."""
    if opened.dataset != dataset.dataset:
        raise DisclosureError(f"the leaves are of dataset {opened.dataset}, not {dataset.dataset}")
    for name, mode in modes.items():
        if name not in dataset.names:
            raise UnknownField(f"dataset {dataset.dataset} has no field {name!r}")
        if mode not in MODES:
            raise InvalidRecord(f"disclosure mode of {name} is {mode!r}, not full or masked")
    items: list[DisclosureItem] = []
    for name, form, shown, withheld in opened.leaves:
        wanted = modes.get(name)
        if (wanted == "full" and form == "raw") or (wanted == "masked" and form == "masked"):
            items.append(dict(shown))
        else:
            items.append(dict(withheld))
    return items


def _b64(value: object, where: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise DisclosureError(f"{where} is not a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DisclosureError(f"{where} is not base64") from exc
    if len(raw) != size:
        raise DisclosureError(f"{where} is {len(raw)} bytes, not {size}")
    return raw


def _item_commitment(i: int, item: object) -> tuple[bytes, tuple[str, str, Value] | None]:
    """The commitment of disclosure item ``i`` and, for an opened leaf, its (field, form, value)."""
    where = f"disclosure item {i}"
    if not isinstance(item, Mapping):
        raise DisclosureError(f"{where} is not an object")
    if set(item) == {"hash"}:
        return _b64(item["hash"], f"{where}.hash", HASH_SIZE), None
    if set(item) != {"field", "form", "value", "salt"}:
        raise DisclosureError(f"{where} is neither {{hash}} nor {{field, form, value, salt}}")
    name, form, value = item["field"], item["form"], item["value"]
    if not isinstance(name, str) or not name:
        raise DisclosureError(f"{where}.field is not a field name")
    if form not in FORMS:
        raise DisclosureError(f"{where}.form is not raw or masked")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DisclosureError(f"{where}.value is not a string or an integer")
    salt = _b64(item["salt"], f"{where}.salt", SALT_SIZE)
    try:
        commitment = leaf_commitment(salt, name, form, value)
    except CanonicalError as exc:  # an integer out of range, a lone surrogate
        raise DisclosureError(f"{where}: {exc}") from exc
    return commitment, (name, form, value)


def recompute_root(items: Sequence[object]) -> bytes:
    """The record commitment implied by a disclosure (compute only; compare with ``verify_disclosure``)."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes) or not items:
        raise DisclosureError("disclosure is not a non-empty list of leaves")
    return root_from_leaves([leaf_hash(_item_commitment(i, item)[0]) for i, item in enumerate(items)])


def verify_disclosure(
    items: Sequence[object], expected_root: bytes, *, dataset: Dataset | None = None
) -> dict[str, Value]:
    """Check a disclosure against the record commitment; return the opened values ``{field: value}``.

    Compute, then compare: raises ``CommitmentMismatch`` (expected and calculated roots) when the
    leaves do not rebuild ``expected_root``. With ``dataset``, also checks that there are two leaves per
    field and that each opened leaf sits at its field's place.
    """
    if not isinstance(items, Sequence) or isinstance(items, str | bytes) or not items:
        raise DisclosureError("disclosure is not a non-empty list of leaves")
    hashes: list[bytes] = []
    opened: dict[str, Value] = {}
    for i, item in enumerate(items):
        commitment, leaf = _item_commitment(i, item)
        hashes.append(leaf_hash(commitment))
        if leaf is None:
            continue
        name, form, value = leaf
        if name in opened:
            raise DisclosureError(f"disclosure opens field {name!r} twice")
        if dataset is not None:
            names = dataset.field_names
            if i // 2 >= len(names) or names[i // 2] != name or FORMS[i % 2] != form:
                raise DisclosureError(f"disclosure item {i} ({name}, {form}) is not at its place in {dataset.dataset}")
        opened[name] = value
    if dataset is not None and len(items) != 2 * len(dataset.fields):
        raise DisclosureError(f"disclosure has {len(items)} leaves, not {2 * len(dataset.fields)}")
    calculated = root_from_leaves(hashes)
    if calculated != expected_root:
        raise CommitmentMismatch(expected_root, calculated)
    return opened


def encode_salts(salts: Salts) -> dict[str, list[str]]:
    """Salts as JSON (``{field: [raw salt, masked salt]}`` in base64), for the off-chain vault."""
    return {name: [base64.b64encode(s).decode() for s in pair] for name, pair in salts.items()}


def decode_salts(value: Mapping[str, Sequence[str]]) -> dict[str, tuple[bytes, bytes]]:
    """The inverse of ``encode_salts``."""
    out: dict[str, tuple[bytes, bytes]] = {}
    for name, pair in value.items():
        if len(pair) != 2:
            raise InvalidRecord(f"salts of {name} are not a pair")
        out[name] = (_b64(pair[0], f"salt of {name}", SALT_SIZE), _b64(pair[1], f"salt of {name}", SALT_SIZE))
    return out
