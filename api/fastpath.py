"""The access request, the service's hot path, answered without FastAPI's routing and dependencies.

``POST /v1/access/requests`` is declared in ``api.routes.access`` (its OpenAPI, its handler) and
answered here by the same ``answer``: the body read on the event loop, then one trip to the thread
pool for everything that may block (the signature, the decision in the writer, the answer's JSON),
where the route path took two plus FastAPI's route matching and dependency solving: about a third of
an HTTP worker's time a release (docs/SCALE.md). A replay is refused by the writer, inside its lock,
on the request hashes its decisions log, and the key's state may come from a look-up up to a second
old, the decision checking the key again (``api.auth.authenticate_now`` with ``decided``): no nonce is
written and mostly no database is read for it. It sits inside ``api.edge``, so request ids, size and
rate limits, the access log and the metrics are the same, and its errors are the problems the app's
handlers give (``api.problems.problem_for``).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import authenticate_now, body_limit, read_body, target_uri
from api.node import Node
from api.problems import problem_for
from api.routes import access

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
            response = await run_in_threadpool(_answer, node, request, target_uri(request), body)
        except Exception as exc:
            known = problem_for(exc)
            if known is None:
                raise  # api.edge logs it and answers 500
            response = known
        await response(scope, receive, send)


def _answer(node: Node, request: Request, url: str, body: bytes) -> Response:
    return access.answer(node, authenticate_now(node, request, url, body, decided=True))
