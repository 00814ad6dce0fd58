"""Read models the portal needs beyond ``/v1``: values in, values out, no HTTP (routes map errors).

Each function reads the ledger's derived state (``node.view``) or the block table and returns plain
JSON-ready values. Who may call which is the route's business.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from api.node import Node
from consent.principal import current_key, key_valid_at
from consent.state import LIVE
from ledger import schema
from ledger.timefmt import format_ts, now

PUBLIC_ROLES = ("admin", "department", "auditor", "service", "witness")


def directory(node: Node) -> list[dict[str, Any]]:
    """Every non-citizen key (departments, auditors, the service…): id, principal, role, public name, valid now.

    Citizens are left out: their keys carry pseudonyms, and nobody needs to look them up by name.
    """
    at = now()
    with node.view.read() as (registry, state):
        return [
            {
                "key_id": rec.key_id,
                "principal": state.principal_of(registry, rec.key_id),
                "role": rec.role,
                "name": rec.name,
                "current": key_valid_at(rec, at),
            }
            for rec in sorted(registry.keys.values(), key=lambda r: r.registered_seq)
            if rec.role in PUBLIC_ROLES
        ]


def consent_options(node: Node, *, subject: str) -> list[dict[str, Any]]:
    """The live agreements that need the subject's consent, for datasets holding a record about them.

    Each is what the page offers the citizen to consent to: who asks (and the key id to name as
    grantee), which dataset and fields (full or masked), for which purposes, on which legal basis.
    """
    at = now()
    out: list[dict[str, Any]] = []
    with node.view.read() as (registry, state):
        held: dict[str, list[str]] = {}
        for r in state.records_of_subject(subject):
            held.setdefault(r.dataset, []).append(r.record)
        for a in sorted(state.agreements.values(), key=lambda a: a.seq):
            ag = a.agreement
            if not ag.consent_required or a.status(at) != LIVE:
                continue
            grantee = current_key(registry, a.requester)
            if grantee is None or not key_valid_at(grantee, at):
                continue
            for dataset, fields in ag.scope.items():
                if dataset not in held:
                    continue
                ds = state.datasets.get(dataset)
                owner = registry.keys.get(ds.owner) if ds else None
                order = {name: i for i, name in enumerate(ds.dataset.field_names)} if ds else {}
                in_order = sorted(fields.items(), key=lambda kv: order.get(kv[0], len(order)))
                out.append(
                    {
                        "agreement": a.seq,
                        "requester": a.requester,
                        "grantee": grantee.key_id,
                        "requester_name": grantee.name,
                        "owner_name": owner.name if owner else "",
                        "dataset": dataset,
                        "dataset_title": ds.dataset.title if ds else dataset,
                        "fields": [{"name": f, "mode": m} for f, m in in_order],
                        "purposes": list(ag.purposes),
                        "legal_basis": ag.legal_basis,
                        "valid_until": format_ts(ag.valid_until),
                        "records": held[dataset],
                    }
                )
    return out


def objection_resolutions(node: Node, *, subject: str) -> list[int]:
    """Seqs of the ``objection.resolve`` entries answering the subject's objections."""
    with node.view.read() as (_, state):
        found = (state.objections[s] for s in state.objections_of_subject(subject))
        return sorted(o.resolved_seq for o in found if o.resolved_seq is not None)


# Bucket widths for the charts, finest first: the first that spans the data in at most MAX_BUCKETS wins.
STEPS = (
    ("1s", 1),
    ("10s", 10),
    ("1min", 60),
    ("10min", 600),
    ("1h", 3600),
    ("1d", 86400),
    ("7d", 7 * 86400),
    ("30d", 30 * 86400),
    ("365d", 365 * 86400),
)
MAX_BUCKETS = 48


def _step(times: list[datetime]) -> tuple[str, int]:
    if not times:
        return STEPS[4]
    span = (max(times) - min(times)).total_seconds()
    return next((s for s in STEPS if span / s[1] < MAX_BUCKETS), STEPS[-1])


def _start(at: datetime, width: int) -> int:
    return int(at.timestamp()) // width * width


def usage_stats(node: Node) -> dict[str, Any]:
    """Decisions (allow, deny) and releases over time, with totals and deny reasons, from the derived state.

    Buckets are as fine as lets at most ``MAX_BUCKETS`` of them span the data (one second to a year),
    and every bucket from the first to the last is listed, empty ones too, so the time axis is even.
    """
    with node.view.read() as (_, state):
        decisions = [(d.at, d.entry.outcome, tuple(d.entry.reasons)) for d in state.decisions.values()]
        released = [state.decisions[r.release.decision].at for r in state.releases.values()]
    unit, width = _step([d[0] for d in decisions])
    rows: dict[int, Counter[str]] = {}
    reasons: Counter[str] = Counter()
    for at, outcome, why in decisions:
        rows.setdefault(_start(at, width), Counter())[outcome] += 1
        if outcome != "allow":
            reasons.update(why)
    for at in released:
        rows.setdefault(_start(at, width), Counter())["release"] += 1
    buckets = []
    if rows:
        for t in range(min(rows), max(rows) + width, width):
            c = rows.get(t, Counter())
            when = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            buckets.append({"t": when, "allow": c["allow"], "deny": c["deny"], "release": c["release"]})
    return {
        "unit": unit,
        "buckets": buckets,
        "totals": {
            "allow": sum(b["allow"] for b in buckets),
            "deny": sum(b["deny"] for b in buckets),
            "release": sum(b["release"] for b in buckets),
        },
        "deny_reasons": dict(reasons.most_common()),
    }


def blocks(node: Node, *, before: int | None, limit: int) -> dict[str, Any]:
    """Block headers and checkpoints, newest first, heights below ``before`` (all when None)."""
    b = schema.blocks
    query = select(b.c.height, b.c.header, b.c.checkpoint).order_by(b.c.height.desc()).limit(limit)
    if before is not None:
        query = query.where(b.c.height < before)
    with node.store.reader() as conn:
        rows = conn.execute(query).all()
    items = [{"height": int(h), "header": json.loads(header), "checkpoint": cp} for h, header, cp in rows]
    last = items[-1]["height"] if items else None
    return {"blocks": items, "next_before": last if last is not None and last > 0 and len(items) == limit else None}
