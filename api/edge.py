"""What every HTTP request passes through first: its id, the size and address limits, the access log, metrics.

A pure ASGI middleware (no buffering of bodies): the request id comes from a well-formed
``X-Request-ID`` or is made here, is echoed in the response header and in every problem body; a body
declared larger than ``max_body_bytes`` is refused with 413 before it is read, and a body streamed
past it is refused when the route reads it. Requests without a signature take a token from their
address's bucket; signed requests are charged to their key once verified (``api.auth``), and to their
address when they fail to authenticate. The operations routes are never limited.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import logs, metrics
from api.auth import TooLarge
from api.limits import RateLimited, RateLimits
from api.problems import problem

log = logging.getLogger(logs.ACCESS_LOGGER)
error_log = logging.getLogger("shulian.api")
UNLIMITED = frozenset({"/healthz", "/readyz", "/metrics"})


class Edge:
    def __init__(self, app: ASGIApp, *, limits: RateLimits, max_body_bytes: int) -> None:
        self.app = app
        self.limits = limits
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        rid = logs.request_id_from(headers.get("x-request-id"))
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        context = logs.begin_request(request_id=rid)
        state: dict[str, Any] = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            refusal = self._refusal(scope, headers, address)
            if refusal is not None:
                await refusal(scope, receive, send_with_id)
            else:
                await self.app(scope, self._counting(receive), send_with_id)
        except Exception:
            error_log.exception("unexpected error")
            if not state["started"]:
                response = problem(500, "internal error; the request changed nothing that was not committed")
                await response(scope, receive, send_with_id)
        finally:
            if "signature" in headers and "key_id" not in context and scope["path"] not in UNLIMITED:
                self.limits.addresses.take(address)  # a signed request that did not authenticate
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            metrics.observe_request(scope["method"], route, state["status"], seconds)
            log.info(
                "%s %s %s",
                scope["method"],
                scope["path"],
                state["status"],
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": state["status"],
                    "duration_ms": round(seconds * 1000, 3),
                    "client": address,
                },
            )

    def _refusal(self, scope: Scope, headers: Headers, address: str) -> Any:
        """A problem response refusing the request before the app sees it, or None."""
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body_bytes:
            return problem(413, f"request body of {declared} bytes is more than {self.max_body_bytes}")
        if scope["path"] in UNLIMITED:
            return None
        try:
            self.limits.charge_address(address, peek="signature" in headers)
        except RateLimited as exc:
            return problem(429, str(exc), retry_after=exc.retry_after)
        return None

    def _counting(self, receive: Receive) -> Receive:
        """``receive`` refusing (413, through the app's handlers) a body streamed past the limit."""
        limit = self.max_body_bytes
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge(f"request body is more than {limit} bytes")
            return message

        return counted
