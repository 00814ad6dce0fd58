"""The ledger's tables (SQLAlchemy Core). They are created, with the triggers that make them append-only in
both engines, only by the migrations (``ledger.migrate``; scripts in ``ledger/migrations/versions``).

Core tables on a metadata of their own, not SQLModel classes: the offline verifier imports this module,
and with it no ORM (SQLModel would bring in SQLAlchemy's ORM and pydantic, ~15 MB of a process it keeps
under 200 MB). The service's own tables (``api.tables``) are SQLModel models.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy.schema import MetaData, Table

# On SQLite an INTEGER primary key is the table's rowid: one B-tree for the rows instead of a rowid
# table plus a separate index on seq (BIGINT is the same 64-bit integer there, but not the rowid).
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

# One ledger entry: ``leaf`` is the exact signed bytes (the truth); the rest indexes it.
entries = Table(
    "entries",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=False),
    Column("leaf", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("actor", String(32), nullable=False),
    Column("ts", String(27), nullable=False),
    Column("height", BigInteger, nullable=False),
)

# The hash of the complete subtree of ``2**level`` leaves starting at leaf ``idx * 2**level``.
tree_nodes = Table(
    "tree_nodes",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    sqlite_with_rowid=False,  # the primary key is the row: one B-tree, not two
)

# A sealed block: its canonical header JSON and the checkpoint note the log key signed.
blocks = Table(
    "blocks",
    metadata,
    Column("height", BigInteger, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False, unique=True),
    Column("header", Text, nullable=False),
    Column("checkpoint", Text, nullable=False),
)

# Set-once facts about the log: origin and verifier key.
meta = Table(
    "ledger_meta",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", Text, nullable=False),
)

# ``Store.entries_of_types`` (the sequencer's registry scan, the demo) reads by type. No index by actor:
# nothing queries one, and it cost a random B-tree page per append (ledgers made before keep theirs).
Index("ix_entries_type_seq", entries.c.type, entries.c.seq)

APPEND_ONLY = ("entries", "tree_nodes", "blocks", "ledger_meta")  # refuse UPDATE, DELETE (and REPLACE)
