"""The data resource catalogue: a ``dataset.register`` body parsed into a ``Dataset``."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from consent import validate as v
from consent.errors import InvalidBody, UnknownField

DATASET_ID_RE = re.compile(r"[a-z0-9_]+\.[a-z0-9_]+")
FIELD_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
MAX_DATASET_ID = 128
MAX_FIELD_NAME = 64
MAX_FIELDS = 100
SENSITIVITIES = ("low", "medium", "high")
LEVELS = ("一般", "重要", "核心")  # general / important / core (数据分类分级)
DATASET_FIELDS = frozenset({"dataset", "owner", "title", "fields", "level", "personal", "update_frequency"})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a dataset and its sensitivity (low | medium | high)."""

    name: str
    sensitivity: str


@dataclass(frozen=True, slots=True)
class Dataset:
    """A registered dataset; ``fields`` keep their registered order (the order of record leaves)."""

    dataset: str
    owner: str
    title: str
    fields: tuple[FieldSpec, ...]
    level: str
    personal: bool
    update_frequency: str
    names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", frozenset(f.name for f in self.fields))

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def has_field(self, name: str) -> bool:
        return name in self.names

    def require_fields(self, names: Iterable[str]) -> None:
        """Raise ``UnknownField`` naming the first field this dataset does not have."""
        for name in names:
            if name not in self.names:
                raise UnknownField(f"dataset {self.dataset} has no field {name!r}")

    def to_body(self) -> dict[str, Any]:
        """The ``dataset.register`` body for this dataset."""
        return {
            "dataset": self.dataset,
            "owner": self.owner,
            "title": self.title,
            "fields": [{"name": f.name, "sensitivity": f.sensitivity} for f in self.fields],
            "level": self.level,
            "personal": self.personal,
            "update_frequency": self.update_frequency,
        }


def dataset_id(value: object, where: str = "dataset") -> str:
    """A dataset id: ``<department>.<name>``, lowercase letters, digits and underscores."""
    if not isinstance(value, str) or len(value) > MAX_DATASET_ID:
        raise InvalidBody(f"{where} is not a dataset id")
    return sys.intern(v.matching(value, where, DATASET_ID_RE, "a dataset id like gaj.hukou"))


def field_name(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_FIELD_NAME:
        raise InvalidBody(f"{where} is not a field name")
    return v.matching(value, where, FIELD_NAME_RE, "a field name like id_number")


def parse_dataset(body: Mapping[str, Any]) -> Dataset:
    """Validate a ``dataset.register`` body."""
    v.fields_exactly(body, "dataset.register", DATASET_FIELDS)
    raw_fields = body["fields"]
    if not isinstance(raw_fields, list) or not 1 <= len(raw_fields) <= MAX_FIELDS:
        raise InvalidBody(f"dataset.register fields is not a list of 1 to {MAX_FIELDS} fields")
    specs: list[FieldSpec] = []
    for i, item in enumerate(raw_fields):
        where = f"dataset.register fields[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "sensitivity"}:
            raise InvalidBody(f"{where} is not {{name, sensitivity}}")
        if item["sensitivity"] not in SENSITIVITIES:
            raise InvalidBody(f"{where}.sensitivity is not one of {', '.join(SENSITIVITIES)}")
        specs.append(FieldSpec(field_name(item["name"], f"{where}.name"), item["sensitivity"]))
    if len({s.name for s in specs}) != len(specs):
        raise InvalidBody("dataset.register fields repeat a name")
    if body["level"] not in LEVELS:
        raise InvalidBody(f"dataset.register level is not one of {' | '.join(LEVELS)}")
    return Dataset(
        dataset=dataset_id(body["dataset"], "dataset.register dataset"),
        owner=v.key_id(body["owner"], "dataset.register owner"),
        title=v.text(body["title"], "dataset.register title"),
        fields=tuple(specs),
        level=body["level"],
        personal=v.boolean(body["personal"], "dataset.register personal"),
        update_frequency=v.text(body["update_frequency"], "dataset.register update_frequency", max_len=50),
    )
