"""The portal (门户): pages at ``/``, their static modules, and the few read models they need.

Pages and static files are public and outside the OpenAPI document; they hold no data. The data the
pages show comes from signed requests the page makes with the user's own key: to ``/v1`` and to the
``/portal/api`` read models here (signed like ``/v1``). The demo sign-in answers only when
``SHULIAN_ENV=development``.
"""

from __future__ import annotations

import html
import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.auth import CallerDep, Forbidden, require
from api.deps import NodeDep
from api.portal import data, demo
from api.portal.pages import STATIC, choose_lang, render_page, script_json
from api.routes.common import ERRORS, SIGNED_HEADERS
from api.schemas import EntryOut
from api.services import proven_entries
from api.witnesses import list_witnesses, witness_policy
from audit.report import DEFAULT_DEADLINE
from ledger.errors import LedgerError, NotFoundError

router = APIRouter(tags=["portal"])

# The pages load only what this origin serves; the i18n strings sit in a JSON data block.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self';"
        " object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".txt": "text/plain"}


def _page(page: str, request: Request, lang: str | None, cookie: str | None, extra: dict[str, str]) -> HTMLResponse:
    chosen = choose_lang(lang, cookie)
    body = render_page(page, chosen, path=request.url.path, extra=extra)
    response = HTMLResponse(body, headers=SECURITY_HEADERS)
    if lang is not None and lang == chosen:
        response.set_cookie("lang", chosen, max_age=365 * 86400, samesite="lax")
    return response


LangQuery = Annotated[str | None, Query(max_length=8)]
LangCookie = Annotated[str | None, Cookie(alias="lang", max_length=8)]


@router.get("/", include_in_schema=False)
def home(request: Request, lang: LangQuery = None, cookie: LangCookie = None) -> HTMLResponse:
    return _page("home", request, lang, cookie, {"env": demo.environment()})


@router.get("/citizen", include_in_schema=False)
def citizen(node: NodeDep, request: Request, lang: LangQuery = None, cookie: LangCookie = None) -> HTMLResponse:
    """The page checks each use against the k-of-n witness policy embedded here (witness_state keys)."""
    extra = {"env": demo.environment(), "witness_policy": script_json(witness_policy(node.store))}
    return _page("citizen", request, lang, cookie, extra)


@router.get("/department", include_in_schema=False)
def department(node: NodeDep, request: Request, lang: LangQuery = None, cookie: LangCookie = None) -> HTMLResponse:
    """Objections show their due date by the deadline the audit reports track; decisions are marked
    verified under the same witness policy as the citizen's page."""
    extra = {
        "env": demo.environment(),
        "objection_deadline_days": str(DEFAULT_DEADLINE.days),
        "witness_policy": script_json(witness_policy(node.store)),
    }
    return _page("department", request, lang, cookie, extra)


@router.get("/audit", include_in_schema=False)
def audit(node: NodeDep, request: Request, lang: LangQuery = None, cookie: LangCookie = None) -> HTMLResponse:
    """The public page renders the latest checkpoint as served; the page's module verifies it."""
    try:
        _, note = node.reader.checkpoint()
    except LedgerError:
        note = ""
    witnesses = script_json([w.vkey for w in list_witnesses(node.store)])
    extra = {"env": demo.environment(), "checkpoint_note": html.escape(note), "witness_keys": witnesses}
    return _page("audit", request, lang, cookie, extra)


@router.get("/portal/static/{path:path}", include_in_schema=False)
def static(path: str) -> Response:
    """The portal's own modules, styles and vendored library; nothing outside ``static/``."""
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file():
        raise NotFoundError(f"no portal file {path}")
    media = STATIC_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(
        target, media_type=media, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )


# -- demo sign-in (development only) ------------------------------------------------------------


class DemoSignIn(BaseModel):
    name: str = Field(max_length=40, examples=["citizen-0003"])


@router.get("/portal/demo/identities", include_in_schema=False)
def demo_identities(node: NodeDep) -> JSONResponse:
    demo.require_development()
    found = [i.to_json() for i in demo.demo_identities(node)]
    if not found:
        raise demo.DemoUnavailable("the demo city is not seeded here; run `shulian demo`")
    return JSONResponse({"environment": demo.environment(), "identities": found})


@router.post("/portal/demo/sign-in", include_in_schema=False)
async def demo_sign_in(node: NodeDep, choice: DemoSignIn) -> JSONResponse:
    demo.require_development()
    doc = await run_in_threadpool(demo.demo_keystore, node, choice.name)
    return JSONResponse(doc, headers={"Cache-Control": "no-store"})


# -- read models for the pages (signed) ---------------------------------------------------------


class DirectoryEntry(BaseModel):
    key_id: str
    principal: str
    role: str
    name: str = Field(examples=["市民政局"])
    current: bool


@router.get(
    "/portal/api/directory",
    responses=ERRORS,
    summary="Public names of department, auditor and service keys",
    description=SIGNED_HEADERS,
)
def directory(node: NodeDep, caller: CallerDep) -> list[DirectoryEntry]:
    return [DirectoryEntry(**d) for d in data.directory(node)]


@router.get(
    "/portal/api/consent-options",
    responses=ERRORS,
    summary="Agreements that need the calling citizen's consent (citizen)",
    description=SIGNED_HEADERS,
)
def consent_options(node: NodeDep, caller: CallerDep) -> list[dict[str, Any]]:
    require(caller, "citizen")
    return data.consent_options(node, subject=caller.subject or "")


@router.get(
    "/portal/api/objection-resolutions",
    responses=ERRORS,
    summary="Resolutions of the calling citizen's objections, with proofs (citizen)",
    description=SIGNED_HEADERS,
)
def objection_resolutions(node: NodeDep, caller: CallerDep) -> list[EntryOut]:
    require(caller, "citizen")
    return proven_entries(node, data.objection_resolutions(node, subject=caller.subject or ""))


@router.get(
    "/portal/api/stats",
    responses=ERRORS,
    summary="Decisions and releases over time (any registered key)",
    description=SIGNED_HEADERS,
)
def stats(node: NodeDep, caller: CallerDep) -> dict[str, Any]:
    if caller.role not in ("citizen", "department", "auditor", "admin"):
        raise Forbidden(f"a {caller.role} key has no reports to read")
    return data.usage_stats(node)


@router.get(
    "/portal/api/blocks",
    responses=ERRORS,
    summary="Block headers and checkpoints, newest first (auditors)",
    description=SIGNED_HEADERS,
)
def blocks(
    node: NodeDep,
    caller: CallerDep,
    before: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    require(caller, "auditor", "admin")
    return data.blocks(node, before=before, limit=limit)
