"""The database holds no plaintext record values, and the ledger no raw ID number, name or phone number.

Records with distinctive values are committed through the SDK and released once; then the raw bytes are
searched: on SQLite every file the node wrote (database, WAL, keystores), on PostgreSQL every row of
every table as text. A control value that is stored in the clear (a dataset title) must be found, so
the search itself is shown to work.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import inspect, text

from tests.access.world import CONSENT_PURPOSE, DIBAO, World

TITLE = "最低生活保障对象信息"  # public catalogue data: on the ledger, in the clear


def needles(value: str) -> list[bytes]:
    """The spellings a stored value could take: UTF-8, JSON with \\u escapes, and hex of UTF-8 (bytea as text)."""
    raw = value.encode()
    escaped = json.dumps(value).strip('"').encode()
    return list({raw, escaped, raw.hex().encode()})


def found_in(haystack: bytes, value: str) -> bool:
    return any(n in haystack for n in needles(value))


def secrets_of(world: World) -> dict[str, str]:
    a = world.citizens["a"]
    return {
        "name": a.name,  # 测试张三丰
        "id_number": a.id_number,
        "phone": a.phone,
        "address": str(world.values["mzj-a"]["address"]),
        "masked id_number": a.id_number[:3] + "*" * 11 + a.id_number[-4:],
    }


def sqlite_bytes(world: World) -> bytes:
    db = Path(str(world.node.store.engine.url.database))
    files = [p for p in db.parent.rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in files) or db.exists()
    return b"\n".join(p.read_bytes() for p in files)


def table_bytes(world: World) -> bytes:
    engine = world.node.store.engine
    chunks: list[bytes] = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for (row,) in conn.execute(text(f'SELECT CAST(t AS text) FROM "{table}" t')):
                chunks.append(str(row).encode())
    return b"\n".join(chunks)


def test_no_plaintext_record_values(world: World) -> None:
    world.grant("a")
    release = world.depts["gjj"].client.request(
        dataset=DIBAO,
        record="mzj-a",
        fields=["name", "id_number", "phone", "monthly_allowance"],
        purpose=CONSENT_PURPOSE,
    )
    assert release.values["name"] == "测****"
    world.node.close()  # let SQLite check the WAL in; its contents are searched either way
    if world.node.store.engine.dialect.name == "sqlite":
        stored = sqlite_bytes(world)
        assert found_in(stored, TITLE), "control: the search does not see what is in the database"
    else:
        stored = table_bytes(world)
        assert found_in(stored, TITLE), "control: the search does not see what is in the tables"
    leaked = [label for label, value in secrets_of(world).items() if found_in(stored, value)]
    assert not leaked, f"stored in the clear: {leaked}"


def test_ledger_leaves_hold_no_identity(world: World) -> None:
    leaves = b"\n".join(world.leaves())
    assert found_in(leaves, TITLE) and found_in(leaves, world.citizens["a"].subject)
    for c in world.citizens.values():
        for value in (c.name, c.id_number, c.phone, c.id_number[-6:] + c.phone[-4:]):
            assert not found_in(leaves, value), f"a ledger entry holds {value!r}"
