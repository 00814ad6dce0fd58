"""Schemathesis over the OpenAPI document against a live server: no 5xx, every answer as documented.

A bounded run (a few derandomised cases per operation, schema-conforming and schema-violating);
``bench/fuzz.py`` runs the longer, seeded one. Requests are signed by real registered keys in turn
(auditor, department, citizen, unsigned), so the handlers behind authentication are reached too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.node import Node
from tests.fuzz.harness import fuzz

SIGNED_ROUTES = ("GET /v1/me", "GET /v1/entries", "GET /v1/datasets", "GET /v1/usage")


@pytest.fixture
def fuzz_node(sqlite_url: str, shulian_home: Path) -> Iterator[Node]:
    node = Node(sqlite_url, shulian_home)
    node.init(origin="fuzz.shulian.example/log")
    try:
        yield node
    finally:
        node.close()


def test_fuzzed_requests_get_documented_answers_and_never_a_5xx(fuzz_node: Node) -> None:
    report = fuzz(fuzz_node, max_examples=4)
    assert report.operations >= 25, f"only {report.operations} operations in the OpenAPI document"
    assert report.cases >= 3 * report.operations
    assert not [s for s in report.statuses if s >= 500], report.statuses
    # the signing hook works: authenticated routes answered (and unsigned requests were refused)
    assert set(SIGNED_ROUTES) <= report.answered, sorted(report.answered)
    assert report.statuses.get(401, 0) > 0
    assert not report.failures, "\n".join(
        f"{f.operation} [{f.status}]: {f.message}\n  {f.reproduce}" for f in report.failures[:10]
    )
