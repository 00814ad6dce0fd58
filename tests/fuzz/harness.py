"""Schemathesis over the app's own OpenAPI document, against a real uvicorn server on loopback.

Every operation of ``/openapi.json`` gets generated cases (schema-conforming and, for the negative
mode, schema-violating), sent by ``requests`` to the live server. A ``requests`` auth hook signs each
request after it is serialised (RFC 9421, as the SDK does: ``@method``, ``@target-uri``,
``content-digest``, ``content-type``, ``created``, a nonce) with a real key registered on the ledger,
taking turns between an auditor, a department, a citizen and no key at all, so cases reach the
handlers behind authentication and the unauthenticated refusals alike. Each answer must not be a 5xx
and must match the document: a declared status, its media type and its schema.

Used by ``tests/fuzz`` (a bounded, derandomised run) and ``bench/fuzz.py`` (a longer, seeded one).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure as CheckFailure
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.httpsig import sign_request
from api.node import Node
from keys.keystore import StoredKey
from tests.access.conftest import LiveServer
from tests.support import register

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


class SigningAuth(requests.auth.AuthBase):
    """Signs each prepared request with the next key in turn (``None``: left unsigned)."""

    def __init__(self, keys: list[StoredKey | None]) -> None:
        self._keys = itertools.cycle(keys)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        key = next(self._keys)
        if key is None:
            return r
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        try:
            signed = sign_request(
                method=r.method or "GET", url=r.url or "", headers=dict(r.headers), body=body,
                key=key.signing, key_id=key.key_id, created=int(time.time()),
            )  # fmt: skip
        except ValueError:  # a generated header the signature cannot cover: sent unsigned
            return r
        r.headers.update(signed)
        return r


@dataclass
class Failure:
    operation: str
    status: int | None
    message: str
    reproduce: str


@dataclass
class FuzzReport:
    operations: int = 0
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)  # operations that answered a 2xx at least once
    failures: list[Failure] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "cases": self.cases,
            "failures": len(self.failures),
            "operations_answered_2xx": len(self.answered),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "first_failures": [f.__dict__ for f in self.failures[:10]],
        }


def fuzz_keys(node: Node) -> list[StoredKey | None]:
    """Keys registered on ``node``'s ledger for the fuzzer's signed requests, and None (unsigned)."""
    stamp = time.time_ns()
    return [register(node, f"fuzz-{role}-{stamp}", role) for role in ("auditor", "department", "citizen")] + [None]


@contextmanager
def served(node: Node) -> Iterator[str]:
    server = LiveServer()
    try:
        yield server.serve(node)
    finally:
        server.stop()


def fuzz(
    node: Node,
    *,
    max_examples: int,
    seed: int | None = None,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
) -> FuzzReport:
    """Fuzz every operation of the app serving ``node``: ``max_examples`` cases per operation and mode.

    Without ``seed`` the run is derandomised (the same cases every time); with one, a seeded run.
    """
    report = FuzzReport()
    keys = fuzz_keys(node)
    with served(node) as url, requests.Session() as session:
        session.auth = SigningAuth(keys)
        schema = schemathesis.openapi.from_url(url + "/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()
            report.operations += 1
            for mode in modes:
                _fuzz_operation(operation, mode, session, url, report, max_examples=max_examples, seed=seed)
    return report


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    session: requests.Session,
    url: str,
    report: FuzzReport,
    *,
    max_examples: int,
    seed: int | None,
) -> None:
    failed: set[str] = set()

    @settings(
        max_examples=max_examples,
        derandomize=seed is None,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        report.cases += 1
        response = case.call(base_url=url, session=session)
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        if 200 <= response.status_code < 300:
            report.answered.add(operation.label)
        try:
            case.validate_response(response, checks=CHECKS)
        except (CheckFailure, FailureGroup) as exc:
            message = " ".join(str(exc).split())[:600]
            parts = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            kind = f"{response.status_code} " + ",".join(sorted(type(p).__name__ for p in parts))
            if kind not in failed:  # one report per kind of failure of an operation
                failed.add(kind)
                report.failures.append(Failure(operation.label, response.status_code, message, case.as_curl_command()))

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    try:
        run()
    except Unsatisfiable:  # negative mode on an operation that takes nothing to get wrong
        if mode is not GenerationMode.NEGATIVE:
            raise
