"""The consent index: one row per consent grant with its uses and revocation, kept in SQL.

It is derived from the ledger and written in the transaction of the entries that change it, so SQL
reports and dashboards can query consent state directly; ``shulian verify`` rebuilds it from the ledger
and reports any row that differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, String, Text, select
from sqlalchemy.engine import Connection
from sqlalchemy.schema import Table

from consent.state import ConsentState, GrantState
from ledger import schema
from ledger.canonical import canonical_bytes
from ledger.envelope import Envelope
from ledger.machine import StateMachine
from ledger.store import Store
from ledger.timefmt import format_ts

# A Core table on the ledger's metadata (not a SQLModel model): ``shulian verify`` reads it, and imports
# no ORM (see ledger.schema).
consent_index = Table(
    "consent_index",
    schema.metadata,
    Column("grant_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("subject", String(80), nullable=False, index=True),
    Column("grantee", String(32), nullable=False, index=True),
    Column("scope", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("valid_from", String(27), nullable=False),
    Column("valid_until", String(27), nullable=False),
    Column("max_uses", Integer, nullable=True),
    Column("uses", Integer, nullable=False),
    Column("revoked_seq", BigInteger, nullable=True),
)
COLUMNS = tuple(str(c.name) for c in consent_index.columns)  # plain str: SQLAlchemy's names hash in Python


def grant_row(g: GrantState) -> dict[str, Any]:
    """The index row of a grant, from the state derived from the ledger."""
    return dict(zip(COLUMNS, grant_values(g), strict=True))


def grant_values(g: GrantState) -> tuple[Any, ...]:
    """``grant_row`` as a tuple in ``COLUMNS`` order (what the commit path inserts)."""
    grant = g.grant
    return (
        g.seq,
        grant.subject,
        g.grantee,
        canonical_bytes({k: list(v) for k, v in grant.scope.items()}).decode(),
        grant.purpose,
        format_ts(grant.valid_from),
        format_ts(grant.valid_until),
        grant.max_uses,
        g.uses,
        g.revoked_seq,
    )


def _touched(state: ConsentState, applied: list[tuple[int, Envelope]]) -> set[int]:
    grants: set[int] = set()
    for seq, env in applied:
        if env.type == "consent.grant":
            grants.add(seq)
        elif env.type == "consent.revoke":
            grants.add(int(env.body["grant"]))
        elif env.type == "access.decision":
            decided = state.decisions.get(seq)
            if decided is not None:
                grants.update(s for s in decided.entry.basis if s in state.grants)
    return grants


def write_index(conn: Connection, applied: list[tuple[int, Envelope]], machines: Sequence[StateMachine]) -> None:
    """Sequencer indexer: rewrite the rows of the grants this commit created or changed."""
    state = next((m for m in machines if isinstance(m, ConsentState)), None)
    if state is None:
        return
    touched = _touched(state, applied)
    if not touched:
        return
    # A driver-level upsert (SQLite and PostgreSQL both take ON CONFLICT … DO UPDATE): no per-row
    # SQLAlchemy compilation on the commit path, and no DELETE for the new grants (most of them).
    rows = [grant_values(state.grants[s]) for s in sorted(touched)]
    Store.insert_rows(conn, consent_index, COLUMNS, rows, upsert=COLUMNS[0])


def expected_rows(state: ConsentState) -> list[dict[str, Any]]:
    return [grant_row(state.grants[s]) for s in sorted(state.grants)]


def stored_rows(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(consent_index).order_by(consent_index.c.grant_seq)).mappings().all()
    return [dict(r) for r in rows]


def compare(expected: list[dict[str, Any]], stored: list[dict[str, Any]]) -> str | None:
    """None when equal, else one line naming the first grant whose row differs."""
    want = {r["grant_seq"]: r for r in expected}
    have = {r["grant_seq"]: r for r in stored}
    for seq in sorted(set(want) | set(have)):
        a, b = want.get(seq), have.get(seq)
        if a is None:
            return f"seq {seq}: consent index has a row for a grant the ledger does not hold"
        if b is None:
            return f"seq {seq}: consent index lacks the grant's row"
        diff = [c for c in COLUMNS if a[c] != b[c]]
        if diff:
            return f"seq {seq}: consent index differs from the ledger in {', '.join(diff)}"
    return None
