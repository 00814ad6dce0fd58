"""The ledger's tables (SQLModel) and the triggers that make them append-only in both engines."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import MetaData, Table
from sqlmodel import Field, SQLModel

# On SQLite an INTEGER primary key is the table's rowid: one B-tree for the rows instead of a rowid
# table plus a separate index on seq (BIGINT is the same 64-bit integer there, but not the rowid).
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


class Entry(SQLModel, table=True):
    """One ledger entry: ``leaf`` is the exact signed bytes (the truth); the rest indexes it."""

    __tablename__ = "entries"
    seq: int = Field(sa_column=Column(_SEQ, primary_key=True, autoincrement=False))
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    type: str = Field(sa_column=Column(String(40), nullable=False))
    actor: str = Field(sa_column=Column(String(32), nullable=False))
    ts: str = Field(sa_column=Column(String(27), nullable=False))
    height: int = Field(sa_column=Column(BigInteger, nullable=False))


class TreeNode(SQLModel, table=True):
    """The hash of the complete subtree of ``2**level`` leaves starting at leaf ``idx * 2**level``."""

    __tablename__ = "tree_nodes"
    __table_args__ = {"sqlite_with_rowid": False}  # the primary key is the row: one B-tree, not two
    level: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class Block(SQLModel, table=True):
    """A sealed block: its canonical header JSON and the checkpoint note the log key signed."""

    __tablename__ = "blocks"
    height: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    header: str = Field(sa_column=Column(Text, nullable=False))
    checkpoint: str = Field(sa_column=Column(Text, nullable=False))


class Meta(SQLModel, table=True):
    """Set-once facts about the log: origin and verifier key."""

    __tablename__ = "ledger_meta"
    name: str = Field(sa_column=Column(String(40), primary_key=True))
    value: str = Field(sa_column=Column(Text, nullable=False))


# ``Store.entries_of_types`` (the sequencer's registry scan, the demo) reads by type. No index by actor:
# nothing queries one, and it cost a random B-tree page per append (ledgers made before keep theirs).
Index("ix_entries_type_seq", Entry.__table__.c.type, Entry.__table__.c.seq)  # type: ignore[attr-defined]

APPEND_ONLY = ("entries", "tree_nodes", "blocks", "ledger_meta")
metadata: MetaData = SQLModel.metadata
entries: Table = Entry.__table__  # type: ignore[attr-defined]
tree_nodes: Table = TreeNode.__table__  # type: ignore[attr-defined]
blocks: Table = Block.__table__  # type: ignore[attr-defined]
meta: Table = Meta.__table__  # type: ignore[attr-defined]


def _sqlite_triggers(table: str) -> list[str]:
    statements = [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
        for op in ("UPDATE", "DELETE")
    ]
    # INSERT OR REPLACE (and REPLACE INTO) delete the conflicting row without firing DELETE triggers
    # (SQLite fires them only with recursive_triggers on), so refuse any insert that would collide.
    t = metadata.tables[table]
    keys = [[c.name for c in t.primary_key.columns]] + [[c.name] for c in t.columns if c.unique]
    clash = " OR ".join("(" + " AND ".join(f"{c} = NEW.{c}" for c in key) + ")" for key in keys)
    when = f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {clash})"  # noqa: S608 (names from our own metadata)
    statements.append(
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} {when} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: REPLACE refused'); END"
    )
    return statements


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION shulian_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$
"""


def _pg_triggers(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION shulian_append_only()",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shulian_append_only()",
    ]


def install_triggers(conn: Connection) -> None:
    """Create the append-only triggers on every ledger table (idempotent)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_PG_FUNCTION.replace("%", "%%"))  # psycopg reads a bare % as a placeholder
        statements = [s for t in APPEND_ONLY for s in _pg_triggers(t)]
    else:
        statements = [s for t in APPEND_ONLY for s in _sqlite_triggers(t)]
    for statement in statements:
        conn.exec_driver_sql(statement)


def create_schema(conn: Connection) -> None:
    """Create tables, indexes and triggers if they do not exist."""
    metadata.create_all(conn)
    install_triggers(conn)
