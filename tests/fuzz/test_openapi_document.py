"""The OpenAPI document declares every error as an RFC 9457 problem, with its schema and an example."""

from __future__ import annotations

from typing import Any

from api.app import create_app
from api.problems import PROBLEM_JSON

SIGNED_STATUSES = {"400", "401", "403", "404", "422", "503"}


def _operations(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{method.upper()} {path}", op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_every_error_response_is_a_problem_with_an_example() -> None:
    doc = create_app().openapi()
    operations = _operations(doc)
    assert len(operations) >= 25
    for label, op in operations:
        for code, response in op["responses"].items():
            if not code.startswith(("4", "5")):
                continue
            content = response.get("content", {})
            assert list(content) == [PROBLEM_JSON], f"{label} {code}: {list(content)}"
            media = content[PROBLEM_JSON]
            assert set(media["schema"]["required"]) >= {"type", "title", "status", "detail"}, f"{label} {code}"
            assert "example" in media or "examples" in media, f"{label} {code}: no example"


def test_signed_routes_declare_the_refusals_of_a_signature_check() -> None:
    doc = create_app().openapi()
    for label, op in _operations(doc):
        if "RFC 9421" in op.get("description", ""):
            missing = SIGNED_STATUSES - set(op["responses"])
            assert not missing, f"{label} does not declare {sorted(missing)}"
