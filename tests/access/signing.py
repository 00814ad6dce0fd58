"""Hand-made signed requests (RFC 9421, as the SDK signs them) for tests that need to bend one."""

from __future__ import annotations

import time

import httpx

from api.httpsig import sign_request
from keys.keystore import StoredKey

PROBLEM_FIELDS = frozenset({"type", "title", "status", "detail", "errors", "request_id"})


def signed_headers(
    client: httpx.Client,
    key: StoredKey,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    created: int | None = None,
    nonce: str | None = None,
    params: dict[str, str] | None = None,
) -> tuple[httpx.Request, dict[str, str]]:
    """A request on ``client`` and the signature headers ``key`` gives it (not yet attached)."""
    request = client.build_request(
        method, path, content=body, params=params, headers={"content-type": "application/json"}
    )
    headers = sign_request(
        method=request.method, url=str(request.url), headers=request.headers, body=body,
        key=key.signing, key_id=key.key_id, created=int(time.time()) if created is None else created, nonce=nonce,
    )  # fmt: skip
    return request, headers


def send_signed(
    client: httpx.Client,
    key: StoredKey,
    method: str,
    path: str,
    body: bytes = b"",
    **kwargs: object,
) -> httpx.Response:
    request, headers = signed_headers(client, key, method, path, body, **kwargs)  # type: ignore[arg-type]
    request.headers.update(headers)
    return client.send(request)


def assert_problem(response: httpx.Response, *statuses: int) -> dict[str, object]:
    """A 4xx RFC 9457 problem (one of ``statuses`` if given) carrying nothing but the problem."""
    assert 400 <= response.status_code < 500, f"{response.status_code} {response.text[:300]}"
    if statuses:
        assert response.status_code in statuses, f"{response.status_code} {response.text[:300]}"
    assert response.headers["content-type"] == "application/problem+json", response.headers["content-type"]
    doc = response.json()
    assert isinstance(doc, dict) and set(doc) <= PROBLEM_FIELDS, f"more than a problem: {sorted(doc)}"
    assert doc["status"] == response.status_code and doc["title"] and doc["detail"]
    return dict(doc)
