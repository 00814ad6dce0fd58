"""Off-ledger tables of the service: the encrypted records vault and the request-nonce register.

The ledger tables (ledger/schema.py) are the truth; these hold what must not go on a ledger
(record values, encrypted) or what only guards the API (nonces seen, to refuse replays).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, String
from sqlalchemy.schema import MetaData, Table
from sqlmodel import Field, SQLModel

metadata: MetaData = SQLModel.metadata  # these models' tables (the ledger's are on ledger.schema.metadata)


class VaultKey(SQLModel, table=True):
    """A dataset's AES-256 key, wrapped by the master key held in the keystore."""

    __tablename__ = "vault_keys"
    dataset: str = Field(sa_column=Column(String(80), primary_key=True))
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class VaultRecord(SQLModel, table=True):
    """One committed version of a record: values and salts, AES-256-GCM sealed under the dataset key."""

    __tablename__ = "vault_records"
    dataset: str = Field(sa_column=Column(String(80), primary_key=True))
    record: str = Field(sa_column=Column(String(120), primary_key=True))
    version: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    commit_seq: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class RequestNonce(SQLModel, table=True):
    """Nonces of signed requests already seen (kept past the clock-skew window, then purged)."""

    __tablename__ = "request_nonces"
    nonce: str = Field(sa_column=Column(String(120), primary_key=True))
    key_id: str = Field(sa_column=Column(String(32), nullable=False))
    created: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))


vault_keys: Table = VaultKey.__table__  # type: ignore[attr-defined]
vault_records: Table = VaultRecord.__table__  # type: ignore[attr-defined]
request_nonces: Table = RequestNonce.__table__  # type: ignore[attr-defined]
