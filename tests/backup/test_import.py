"""`shulian import`: an export (and its vault file) restored into an empty database on each engine, and
the refusals (a flipped byte, a truncated file, a non-empty target, another ledger's vault) that write
nothing. The source is one small simulated city (the demo plus mixed traffic) on SQLite."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select

import keys.keystore
from api import tables
from api.backup import ImportRefused, import_export
from api.cli import main
from api.client import ShulianClient
from api.node import Node
from audit.export import write_export
from audit.sources import verify_database
from ledger import schema
from ledger.log import LogReader
from ledger.store import Store
from ledger.tree import leaf_hash
from tests.access.conftest import LiveServer
from tests.access.world import CONSENT_PURPOSE, DIBAO, build_world
from tests.api.conftest import cli_env, start_serve
from tests.conftest import FAST_ARGON2, PASSPHRASE


@dataclass
class Source:
    home: Path
    db: str
    export: Path
    vault: Path
    size: int


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """The access tests' city (departments, citizens, datasets, records in the vault, agreements) plus
    consents, a revocation and releases, appended through a real server; exported with its vault."""
    tmp = tmp_path_factory.mktemp("backup-src")
    server = LiveServer()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHULIAN_PASSPHRASE", PASSPHRASE)
        mp.setattr(keys.keystore, "ARGON2", dict(FAST_ARGON2))
        node = Node(f"sqlite:///{tmp / 'src.db'}", home_dir=tmp / "home")
        node.init("backup.example.gov.cn/shulian")
        url = server.serve(node)
        world = build_world(node, lambda key: ShulianClient(url, key, timeout=30))
        try:
            world.grant("a")
            world.citizens["b"].client.revoke_consent(world.grant("b"), "测试撤回")
            gjj = world.depts["gjj"].client
            for fields in (["name"], ["name", "monthly_allowance"]):
                gjj.request(dataset=DIBAO, record="mzj-a", fields=fields, purpose=CONSENT_PURPOSE)
        finally:
            world.close()
            server.stop()
        summary = write_export(node.store, tmp / "ledger.jsonl", progress=False)
        out = ["export", "-q", "-o", str(tmp / "cli.jsonl"), "--vault", str(tmp / "vault.jsonl")]
        assert main(["--db", node.store.url, *out]) == 0
        node.close()
    yield Source(
        tmp / "home", f"sqlite:///{tmp / 'src.db'}", tmp / "ledger.jsonl", tmp / "vault.jsonl", summary.entries
    )


def _rows(store: Store, table: object) -> list[tuple[object, ...]]:
    with store.reader() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]  # type: ignore[attr-defined]


def _assert_nothing_written(url: str, before: set[str]) -> None:
    """No table created and no ledger row written since ``before`` (the tables then)."""
    store = Store(url)
    try:
        with store.reader() as conn:
            names = set(inspect(conn).get_table_names())
            assert names == before, "the refused import created tables"
            if schema.meta.name in names:
                assert not Store.meta(conn) and Store.entry_count(conn) == 0, "the refused import wrote rows"
    finally:
        store.close()


def _tables(url: str) -> set[str]:
    store = Store(url)
    try:
        with store.reader() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        store.close()


def test_round_trip_restores_everything(source: Source, ledger_url: str, shulian_home: Path) -> None:
    target = Store(ledger_url)
    src = Store(source.db)
    try:
        assert verify_database(src, progress=False).ok
        done = import_export(target, source.export, vault=source.vault, progress=False)
        assert (done.entries, done.vault_records > 0) == (source.size, True)
        assert verify_database(target, progress=False).ok
        # every table the service keeps, row for row (the checkpoints carry no witness in this city)
        for table in (schema.entries, schema.tree_nodes, schema.blocks, schema.meta):
            assert _rows(target, table) == _rows(src, table), table.name
        for table in (tables.vault_keys, tables.vault_records):
            assert _rows(target, table) == _rows(src, table), table.name
        from api.index import consent_index

        assert _rows(target, consent_index) == _rows(src, consent_index)
        a, b = LogReader(src), LogReader(target)
        assert a.checkpoint() == b.checkpoint()
        with src.reader() as conn:
            leaf = Store.entry(conn, source.size // 3)
        assert leaf is not None
        assert a.inclusion(leaf_hash(leaf)).hashes == b.inclusion(leaf_hash(leaf)).hashes
        assert a.consistency(7, source.size) == b.consistency(7, source.size)
    finally:
        target.close()
        src.close()


def test_restored_node_serves_the_same_checkpoint_and_opens_the_vault(
    source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full restore (export + vault file + SHULIAN_HOME keys) through the CLI, then a real server."""
    env = cli_env(tmp_path)
    env["SHULIAN_PASSPHRASE"] = PASSPHRASE
    monkeypatch.setenv("SHULIAN_PASSPHRASE", PASSPHRASE)
    shutil.copytree(source.home, env["SHULIAN_HOME"])
    assert (
        main(["--db", env["SHULIAN_DB"], "import", "-q", "-i", str(source.export), "--vault", str(source.vault)]) == 0
    )
    node = Node(env["SHULIAN_DB"], home_dir=Path(env["SHULIAN_HOME"]))
    src = Node(source.db, home_dir=source.home)
    try:
        t = tables.vault_records
        with src.store.reader() as conn:
            dataset, record, version = conn.execute(select(t.c.dataset, t.c.record, t.c.version).limit(1)).one()
            want = src.vault.get(conn, dataset=dataset, record=record, version=version)
        with node.store.reader() as conn:
            assert node.vault.get(conn, dataset=dataset, record=record, version=version) == want
        size, note = src.reader.checkpoint()
        with src.store.reader() as conn:
            leaf = Store.entry(conn, size - 1)
        assert leaf is not None
    finally:
        node.close()
        src.close()
    proc, url = start_serve(env)
    try:
        assert httpx.get(url + "/v1/checkpoint").text == note
        h = base64.urlsafe_b64encode(leaf_hash(leaf)).decode().rstrip("=")
        got = httpx.get(url + "/v1/proof/inclusion", params={"hash": h}).json()
        assert (got["seq"], got["tree_size"]) == (size - 1, size)
    finally:
        proc.terminate()
        proc.wait(10)


def _flip(src: Path, dst: Path, line_no: int) -> None:
    lines = src.read_bytes().split(b"\n")
    line = bytearray(lines[line_no])
    at = line.index(b'"leaf":"') + 40
    line[at] = ord("A") if line[at] != ord("A") else ord("B")
    lines[line_no] = bytes(line)
    dst.write_bytes(b"\n".join(lines))


def test_flipped_byte_is_refused_naming_the_seq(
    source: Source, ledger_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "flipped.jsonl"
    before = _tables(ledger_url)
    _flip(source.export, bad, 21)  # line 1 is the header: line index 21 is seq 20
    assert main(["--db", ledger_url, "import", "-q", "-i", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("shulian import: the export does not verify, nothing written: seq 20:")
    assert "\n" not in err
    _assert_nothing_written(ledger_url, before)


def test_truncated_file_is_refused(source: Source, sqlite_url: str, tmp_path: Path) -> None:
    data = source.export.read_bytes()
    before = _tables(sqlite_url)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: len(data) - 300])  # the last block line is cut short
    with pytest.raises(ImportRefused, match=r"nothing written: block \d+: export line \d+ is not JSON \(truncated\?\)"):
        import_export(Store(sqlite_url), cut, progress=False)
    cut.write_bytes(data[: len(data) // 2])  # entries only, no block seals them
    with pytest.raises(ImportRefused, match="nothing written"):
        import_export(Store(sqlite_url), cut, progress=False)
    _assert_nothing_written(sqlite_url, before)


def test_non_empty_target_is_refused(source: Source, node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    before = node.reader.checkpoint()
    assert main(["--db", node.store.url, "import", "-q", "-i", str(source.export)]) == 1
    err = capsys.readouterr().err
    assert "already holds a ledger (origin test.shulian.example/log, 2 entries); import needs an empty one" in err
    assert node.reader.checkpoint() == before


def test_vault_of_another_ledger_is_refused(source: Source, sqlite_url: str, tmp_path: Path) -> None:
    other = tmp_path / "other-vault.jsonl"
    lines = source.vault.read_bytes().split(b"\n", 1)
    other.write_bytes(lines[0].replace(b"backup.example.gov.cn", b"other.example.gov.cn") + b"\n" + lines[1])
    with pytest.raises(ImportRefused, match="vault of another ledger"):
        import_export(Store(sqlite_url), source.export, vault=other, progress=False)
    # a record whose commit seq points at another entry
    shifted = tmp_path / "shifted-vault.jsonl"
    shifted.write_bytes(source.vault.read_bytes().replace(b'"commit_seq":', b'"commit_seq":1', 1))
    with pytest.raises(ImportRefused, match=r"does not match the record\.commit at seq"):
        import_export(Store(sqlite_url), source.export, vault=shifted, progress=False)
    _assert_nothing_written(sqlite_url, _tables(sqlite_url))
