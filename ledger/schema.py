"""The ledger's tables (SQLModel). They are created, with the triggers that make them append-only in
both engines, only by the migrations (``ledger.migrate``; scripts in ``ledger/migrations/versions``)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, SmallInteger, String, Text
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

APPEND_ONLY = ("entries", "tree_nodes", "blocks", "ledger_meta")  # refuse UPDATE, DELETE (and REPLACE)
metadata: MetaData = SQLModel.metadata
entries: Table = Entry.__table__  # type: ignore[attr-defined]
tree_nodes: Table = TreeNode.__table__  # type: ignore[attr-defined]
blocks: Table = Block.__table__  # type: ignore[attr-defined]
meta: Table = Meta.__table__  # type: ignore[attr-defined]
