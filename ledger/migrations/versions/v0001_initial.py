"""The whole schema as of the first release: ledger tables with their append-only triggers, the
service tables (records vault, request nonces, consent index, witness state).

A database made before migrations existed (tables created directly from the models) is adopted:
each table, index and trigger is created only if missing, then the database is stamped.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("entries", "tree_nodes", "blocks", "ledger_meta")

# Seq is SQLite's rowid (an INTEGER primary key: one B-tree), BIGINT on PostgreSQL.
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The keys an INSERT OR REPLACE could silently overwrite on SQLite (it deletes the conflicting row
# without firing DELETE triggers): the primary key and each unique column.
_SQLITE_KEYS = {
    "entries": ["(seq = NEW.seq)", "(leaf_hash = NEW.leaf_hash)"],
    "tree_nodes": ["(level = NEW.level AND idx = NEW.idx)"],
    "blocks": ["(height = NEW.height)", "(tree_size = NEW.tree_size)"],
    "ledger_meta": ["(name = NEW.name)"],
}

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION shulian_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$
"""


def _tables() -> list[sa.Table]:
    m = sa.MetaData()
    return [
        sa.Table(
            "entries",
            m,
            sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
            sa.Column("leaf", sa.LargeBinary(), nullable=False),
            sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False, unique=True),
            sa.Column("type", sa.String(40), nullable=False),
            sa.Column("actor", sa.String(32), nullable=False),
            sa.Column("ts", sa.String(27), nullable=False),
            sa.Column("height", sa.BigInteger(), nullable=False),
            sa.Index("ix_entries_type_seq", "type", "seq"),
        ),
        sa.Table(
            "tree_nodes",
            m,
            sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
            sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
            sa.Column("hash", sa.LargeBinary(32), nullable=False),
            sqlite_with_rowid=False,
        ),
        sa.Table(
            "blocks",
            m,
            sa.Column("height", sa.BigInteger(), primary_key=True, autoincrement=False),
            sa.Column("tree_size", sa.BigInteger(), nullable=False, unique=True),
            sa.Column("header", sa.Text(), nullable=False),
            sa.Column("checkpoint", sa.Text(), nullable=False),
        ),
        sa.Table(
            "ledger_meta",
            m,
            sa.Column("name", sa.String(40), primary_key=True),
            sa.Column("value", sa.Text(), nullable=False),
        ),
        sa.Table(
            "vault_keys",
            m,
            sa.Column("dataset", sa.String(80), primary_key=True),
            sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        ),
        sa.Table(
            "vault_records",
            m,
            sa.Column("dataset", sa.String(80), primary_key=True),
            sa.Column("record", sa.String(120), primary_key=True),
            sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("commit_seq", sa.BigInteger(), nullable=False, unique=True),
            sa.Column("sealed", sa.LargeBinary(), nullable=False),
        ),
        sa.Table(
            "request_nonces",
            m,
            sa.Column("nonce", sa.String(120), primary_key=True),
            sa.Column("key_id", sa.String(32), nullable=False),
            sa.Column("created", sa.BigInteger(), nullable=False),
            sa.Index("ix_request_nonces_created", "created"),
        ),
        sa.Table(
            "consent_index",
            m,
            sa.Column("grant_seq", sa.BigInteger(), primary_key=True, autoincrement=False),
            sa.Column("subject", sa.String(80), nullable=False),
            sa.Column("grantee", sa.String(32), nullable=False),
            sa.Column("scope", sa.Text(), nullable=False),
            sa.Column("purpose", sa.Text(), nullable=False),
            sa.Column("valid_from", sa.String(27), nullable=False),
            sa.Column("valid_until", sa.String(27), nullable=False),
            sa.Column("max_uses", sa.Integer(), nullable=True),
            sa.Column("uses", sa.Integer(), nullable=False),
            sa.Column("revoked_seq", sa.BigInteger(), nullable=True),
            sa.Index("ix_consent_index_subject", "subject"),
            sa.Index("ix_consent_index_grantee", "grantee"),
        ),
        sa.Table(
            "witness_state",
            m,
            sa.Column("vkey", sa.String(400), primary_key=True),
            sa.Column("url", sa.Text(), nullable=False),
            sa.Column("last_size", sa.BigInteger(), nullable=False),
            sa.Column("last_root", sa.LargeBinary(), nullable=False),
            sa.Column("last_cosignature", sa.Text(), nullable=False),
        ),
    ]


def _sqlite_triggers(table: str) -> list[str]:
    out = [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op_.lower()} BEFORE {op_} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op_} refused'); END"
        for op_ in ("UPDATE", "DELETE")
    ]
    clash = " OR ".join(_SQLITE_KEYS[table])
    when = f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {clash})"  # noqa: S608 (constants only)
    out.append(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} {when} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: REPLACE refused'); END"
    )
    return out


def _pg_triggers(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION shulian_append_only()",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shulian_append_only()",
    ]


def upgrade() -> None:
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    existing = set(inspector.get_table_names())
    for table in _tables():
        if table.name not in existing:
            table.create(conn)
            continue
        # Adopting a table made before migrations: add what it lacks.
        have = {ix["name"] for ix in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in have:
                index.create(conn)
    if "entries" in existing:  # an index early ledgers had and nothing reads (a page write per append)
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_entries_actor")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_PG_FUNCTION.replace("%", "%%"))  # psycopg reads a bare % as a placeholder
        statements = [s for t in APPEND_ONLY for s in _pg_triggers(t)]
    else:
        statements = [s for t in APPEND_ONLY for s in _sqlite_triggers(t)]
    for statement in statements:
        conn.exec_driver_sql(statement)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.execute(sa.text("SELECT 1 FROM entries LIMIT 1")).first() is not None:
        raise RuntimeError("refusing to downgrade below 0001: the ledger holds entries and would be dropped")
    for table in reversed(_tables()):
        op.drop_table(table.name)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS shulian_append_only()")
