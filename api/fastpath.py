"""The access request, the service's hot path, answered without FastAPI's routing and dependencies.

``POST /v1/access/requests`` is declared in ``api.routes.access`` (its OpenAPI, its handler) and
answered here by the same code (``ask_of``, ``respond``). Under ``serve``, with a writer process, the
whole request stays on the event loop: the body read, the signature checked, the request sent to the
writer (``api.writer.AsyncWriterClient``) and awaited as a coroutine, the answer's JSON made: no pool
thread woken and no GIL handed over per request (those cost a sixth of an HTTP worker's time,
docs/SCALE.md). Without one, or when it cannot be reached, one trip to the thread pool for everything
that may block, where the route path took two plus FastAPI's route matching and dependency solving.
A replay is refused by the writer, inside its lock, on the request hashes its decisions log, and the
key's state may come from a look-up up to a second old, the decision checking the key again
(``api.auth.authenticate_now`` with ``decided``): no nonce is written and mostly no database is read
for it (a look-up due blocks the loop for one round trip). It sits inside ``api.edge``, so request
ids, size and rate limits, the access log and the metrics are the same, and its errors are the
problems the app's handlers give (``api.problems.problem_for``).
"""

from __future__ import annotations

import functools

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api import services
from api.auth import authenticate_now, body_limit, read_body, target_uri
from api.node import Node
from api.problems import problem_for
from api.routes import access
from api.writer import AsyncWriterClient

PATH = "/v1/access/requests"


class AccessFastPath:
    def __init__(self, app: ASGIApp, *, route: BaseRoute | None = None) -> None:
        self.app = app
        self.route = route  # the declared route (metrics and logs name it, as for any route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        if self.route is not None:
            scope["route"] = self.route
        request = Request(scope, receive)
        node: Node = scope["app"].state.node
        try:
            body = await read_body(request, body_limit(request))
            writer = node.async_writer
            if writer is None:
                response = await run_in_threadpool(_answer, node, request, target_uri(request), body)
            else:
                response = await _answer_on_loop(node, writer, request, target_uri(request), body)
        except Exception as exc:
            known = problem_for(exc)
            if known is None:
                raise  # api.edge logs it and answers 500
            response = known
        await response(scope, receive, send)


def _answer(node: Node, request: Request, url: str, body: bytes) -> Response:
    return access.answer(node, authenticate_now(node, request, url, body, decided=True))


async def _answer_on_loop(node: Node, writer: AsyncWriterClient, request: Request, url: str, body: bytes) -> Response:
    """With a writer process: authenticated here (the key's look-up is mostly a second-old answer from
    memory; a fresh one blocks this loop for a round trip), decided in the writer while this request
    waits as a coroutine, answered here. Without it (not reachable): decided in this process, in the pool."""
    caller = authenticate_now(node, request, url, body, decided=True)
    ask = access.ask_of(caller)
    result = await writer.access(ask)
    if result is None:  # not reached, nothing sent to it: decided in this process, its own sequencer
        result = await run_in_threadpool(
            functools.partial(
                services.decide_and_release, node, ask.requester, ask.request_hash, dataset=ask.dataset,
                record=ask.record, fields=ask.fields, purpose=ask.purpose,
            )
        )  # fmt: skip
    return access.respond(node, result)
