"""Verification from a real ledger database and from its export, good and tampered."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import audit.sources
from api.node import Node
from audit.errors import AuditError, ExportError
from audit.export import write_export
from audit.sources import verify_database, verify_export
from ledger.envelope import parse_envelope, sign_envelope
from ledger.note import sign_note
from tests.audit.factory import LedgerFactory, seeded_key

ORIGIN = "audit.test/log"


@pytest.fixture
def node(ledger_url: str, shulian_home: Path) -> Iterator[Node]:
    """A ledger of about 300 entries in 5 blocks, on SQLite and (where it answers) PostgreSQL."""
    n = Node(ledger_url, shulian_home)
    n.init(origin=ORIGIN)
    LedgerFactory(n, seed=3).build(300, batch=80)
    try:
        yield n
    finally:
        n.close()


@pytest.fixture
def sqlite_node(sqlite_url: str, shulian_home: Path) -> Iterator[Node]:
    n = Node(sqlite_url, shulian_home)
    n.init(origin=ORIGIN)
    LedgerFactory(n, seed=4).build(300, batch=80)
    try:
        yield n
    finally:
        n.close()


def db_path(node: Node) -> str:
    database = make_url(node.store.url).database
    assert database
    return database


def tamper(node: Node, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Run statements on the SQLite file directly, after dropping the append-only triggers."""
    conn = sqlite3.connect(db_path(node))
    try:
        for table in ("entries", "blocks"):
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        for sql, args in statements:
            conn.execute(sql, args)
        conn.commit()
    finally:
        conn.close()


def leaf_at(node: Node, seq: int) -> bytes:
    with node.store.reader() as conn:
        leaf = node.store.entry(conn, seq)
    assert leaf is not None
    return leaf


def block_row(node: Node, height: int) -> tuple[str, str]:
    conn = sqlite3.connect(db_path(node))
    try:
        row = conn.execute("SELECT header, checkpoint FROM blocks WHERE height = ?", (height,)).fetchone()
    finally:
        conn.close()
    return str(row[0]), str(row[1])


def block_count(node: Node) -> int:
    with node.store.reader() as conn:
        head = node.store.head(conn)
    assert head is not None
    return head[0].height + 1


def export_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


# -- good ledgers -------------------------------------------------------------------------------


def test_database_verifies(node: Node) -> None:
    size = node.reader.size()
    result = verify_database(node.store, progress=False)
    assert result.ok, result.message
    assert result.entries == size
    assert result.blocks == block_count(node) == 7
    assert result.root == node.reader.root(size)


def test_export_round_trip(node: Node, tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    summary = write_export(node.store, path, progress=False)
    assert (summary.entries, summary.blocks) == (node.reader.size(), block_count(node))
    from_db = verify_database(node.store, progress=False)
    from_export = verify_export(path, progress=False)
    assert from_export.ok, from_export.message
    assert (from_export.entries, from_export.blocks, from_export.root) == (
        from_db.entries,
        from_db.blocks,
        from_db.root,
    )


def test_export_format(sqlite_node: Node, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    path = write_export(sqlite_node.store, tmp_path / "out" / "e.jsonl", progress=False).path
    lines = [json.loads(line) for line in export_lines(path)]
    size = sqlite_node.reader.size()
    assert lines[0] == {
        "format": "shulian-export/1",
        "origin": ORIGIN,
        "log_key": sqlite_node.reader.vkey.encode(),
    }
    entries, blocks = lines[1 : 1 + size], lines[1 + size :]
    assert [e["seq"] for e in entries] == list(range(size))
    assert base64.b64decode(entries[7]["leaf"]) == leaf_at(sqlite_node, 7)
    assert [b["block"] for b in blocks] == list(range(7))
    header, checkpoint = block_row(sqlite_node, 5)
    assert blocks[5] == {"block": 5, "header": json.loads(header), "checkpoint": checkpoint}
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["e.jsonl"]  # no temp file left


def test_export_is_atomic(sqlite_node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = out / "e.jsonl"
    path.write_bytes(b"the previous export\n")

    def broken(*_args: object, **_kw: object) -> Iterator[object]:
        yield 0, {}, "x"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sqlite_node.store, "iter_blocks", broken)
    with pytest.raises(ExportError, match="No space left on device"):
        write_export(sqlite_node.store, path, progress=False)
    assert path.read_bytes() == b"the previous export\n"
    assert [p.name for p in out.iterdir()] == ["e.jsonl"]


def test_uninitialised_database(sqlite_url: str, shulian_home: Path, tmp_path: Path) -> None:
    n = Node(sqlite_url, shulian_home)
    n.store.create_schema()
    try:
        with pytest.raises(AuditError, match="not initialised"):
            verify_database(n.store, progress=False)
        with pytest.raises(AuditError, match="not initialised"):
            write_export(n.store, tmp_path / "e.jsonl", progress=False)
    finally:
        n.close()


def test_progress_bar_goes_to_stderr(sqlite_node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    assert verify_database(sqlite_node.store, progress=True).ok
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "entries" in captured.err


# -- tampered databases ---------------------------------------------------------------------------


def test_changed_leaf_byte(sqlite_node: Node) -> None:
    seq = next(s for s in range(100, 200) if b'"record":"rec-' in leaf_at(sqlite_node, s))
    leaf = leaf_at(sqlite_node, seq)
    at = leaf.index(b'"record":"rec-') + len(b'"record":"r')
    changed = leaf[:at] + b"f" + leaf[at + 1 :]  # "rec-…" becomes "rfc-…": still canonical JSON
    tamper(sqlite_node, ("UPDATE entries SET leaf = ? WHERE seq = ?", (changed, seq)))
    result = verify_database(sqlite_node.store, progress=False)
    assert result.message == f"seq {seq}: signature does not verify"
    assert (result.ok, result.seq, result.entries) == (False, seq, seq)


def test_changed_leaf_byte_breaking_the_json(sqlite_node: Node) -> None:
    leaf = leaf_at(sqlite_node, 100)
    changed = leaf[:-1] + b"]"
    tamper(sqlite_node, ("UPDATE entries SET leaf = ? WHERE seq = 100", (changed,)))
    assert verify_database(sqlite_node.store, progress=False).message.startswith("seq 100: not JSON: ")


def test_bad_signature(sqlite_node: Node) -> None:
    env = parse_envelope(leaf_at(sqlite_node, 120))
    forged = parse_envelope(
        sign_envelope(seeded_key("mallory", "department", 9).signing, env.type, env.body, ts=env.ts)
    )
    value = json.loads(env.leaf)
    value["sig"] = base64.b64encode(forged.sig).decode()
    leaf = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    tamper(sqlite_node, ("UPDATE entries SET leaf = ? WHERE seq = 120", (leaf,)))
    assert verify_database(sqlite_node.store, progress=False).message == "seq 120: signature does not verify"


def test_altered_block_header(sqlite_node: Node) -> None:
    header, _ = block_row(sqlite_node, 3)
    value = json.loads(header)
    value["time"] = value["time"][:-7] + "000000Z"
    tamper(sqlite_node, ("UPDATE blocks SET header = ? WHERE height = 3", (json.dumps(value),)))
    assert verify_database(sqlite_node.store, progress=False).message == "block 3: header signature does not verify"


def test_header_that_is_not_json(sqlite_node: Node) -> None:
    tamper(sqlite_node, ("UPDATE blocks SET header = ? WHERE height = 2", ("{not json",)))
    assert verify_database(sqlite_node.store, progress=False).message.startswith("block 2: stored header is not JSON")


def test_checkpoint_with_a_wrong_signature(sqlite_node: Node) -> None:
    _, checkpoint = block_row(sqlite_node, 4)
    text = checkpoint.split("\n\n")[0] + "\n"
    forged = sign_note(text, ORIGIN, seeded_key("mallory", "department", 9).signing)
    tamper(sqlite_node, ("UPDATE blocks SET checkpoint = ? WHERE height = 4", (forged,)))
    assert verify_database(sqlite_node.store, progress=False).message == (
        f"block 4: checkpoint: note has no signature by {ORIGIN}"
    )


def test_checkpoint_signature_bytes_changed(sqlite_node: Node) -> None:
    _, checkpoint = block_row(sqlite_node, 4)
    text, line = checkpoint.split("\n\n")
    dash, name, sig = line.rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 0x40
    bad = f"{text}\n\n{dash} {name} {base64.b64encode(bytes(raw)).decode()}\n"
    tamper(sqlite_node, ("UPDATE blocks SET checkpoint = ? WHERE height = 4", (bad,)))
    assert verify_database(sqlite_node.store, progress=False).message == (
        f"block 4: checkpoint: signature by {ORIGIN} does not verify"
    )


def test_deleted_last_block_leaves_unsealed_entries(sqlite_node: Node) -> None:
    header, _ = block_row(sqlite_node, 5)
    last_sealed = json.loads(header)["tree_size"]
    tamper(sqlite_node, ("DELETE FROM blocks WHERE height = 6", ()))
    assert verify_database(sqlite_node.store, progress=False).message == (
        f"seq {last_sealed}: not sealed by any block (the last block ends at tree size {last_sealed})"
    )


def test_entry_breaking_a_consent_rule(sqlite_node: Node) -> None:
    """A validly signed record.commit by a department for a dataset it does not own."""
    leaves = [(seq, parse_envelope(leaf_at(sqlite_node, seq))) for seq in range(40, 80)]
    seq, env = next((s, e) for s, e in leaves if e.type == "record.commit" and e.body["dataset"] != "d1.people")
    intruder = seeded_key("dept1", "department", 4)
    body = {**env.body, "dataset": env.body["dataset"]}
    forged = sign_envelope(intruder.signing, "record.commit", body, ts=env.ts)
    tamper(sqlite_node, ("UPDATE entries SET leaf = ? WHERE seq = ?", (forged, seq)))
    assert verify_database(sqlite_node.store, progress=False).message == (
        f"seq {seq}: only the owner of {env.body['dataset']} commits its records"
    )


def test_consent_index_row_changed(sqlite_node: Node) -> None:
    conn = sqlite3.connect(db_path(sqlite_node))
    try:
        grant_seq = conn.execute("SELECT min(grant_seq) FROM consent_index").fetchone()[0]
        conn.execute("UPDATE consent_index SET uses = uses + 5 WHERE grant_seq = ?", (grant_seq,))
        conn.commit()
    finally:
        conn.close()
    result = verify_database(sqlite_node.store, progress=False)
    assert result.message == f"seq {grant_seq}: consent index differs from the ledger in uses"
    assert result.seq == grant_seq and not result.ok


@pytest.mark.parametrize("slice_size", [50, 20_000])
def test_consent_index_rows_missing_or_extra(
    sqlite_node: Node, monkeypatch: pytest.MonkeyPatch, slice_size: int
) -> None:
    monkeypatch.setattr(audit.sources, "_INDEX_RANGE", slice_size)
    assert verify_database(sqlite_node.store, progress=False).ok
    conn = sqlite3.connect(db_path(sqlite_node))
    try:
        seqs = [r[0] for r in conn.execute("SELECT grant_seq FROM consent_index ORDER BY grant_seq")]
        row = conn.execute("SELECT * FROM consent_index WHERE grant_seq = ?", (seqs[-1],)).fetchone()
        conn.execute("INSERT INTO consent_index VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (10**9, *row[1:]))
        conn.commit()
        assert verify_database(sqlite_node.store, progress=False).message == (
            f"seq {10**9}: consent index has a row for a grant the ledger does not hold"
        )
        conn.execute("DELETE FROM consent_index WHERE grant_seq = ?", (seqs[len(seqs) // 2],))
        conn.commit()
    finally:
        conn.close()
    assert verify_database(sqlite_node.store, progress=False).message == (
        f"seq {seqs[len(seqs) // 2]}: consent index lacks the grant's row"
    )


def test_deleted_entry(sqlite_node: Node) -> None:
    tamper(sqlite_node, ("DELETE FROM entries WHERE seq = 50", ()))
    assert verify_database(sqlite_node.store, progress=False).message == (
        "seq 50: missing or out of order (found seq 51 in its place)"
    )


# -- tampered exports -----------------------------------------------------------------------------


@pytest.fixture
def export(sqlite_node: Node, tmp_path: Path) -> Path:
    return write_export(sqlite_node.store, tmp_path / "ledger.jsonl", progress=False).path


def entry_count(path: Path) -> int:
    return sum(1 for line in export_lines(path) if line.startswith(b'{"seq"'))


def test_truncated_export_inside_the_blocks(export: Path) -> None:
    data = export.read_bytes()
    write_lines(export, [data[: len(data) - 100]])
    lines = export_lines(export)
    assert verify_export(export, progress=False).message == (
        f"block 6: export line {len(lines)} is not JSON (truncated?)"
    )


def test_truncated_export_inside_the_entries(export: Path) -> None:
    lines = export_lines(export)
    write_lines(export, lines[:150])
    assert verify_export(export, progress=False).message == "seq 0: not sealed by any block (there are no blocks)"


def test_truncated_export_mid_line(export: Path) -> None:
    lines = export_lines(export)
    write_lines(export, [*lines[:150], lines[150][:40]])
    assert verify_export(export, progress=False).message == "seq 0: not sealed by any block (there are no blocks)"


def test_export_missing_an_entry_line(export: Path) -> None:
    lines = export_lines(export)
    del lines[1 + 77]
    assert verify_export(write_lines(export, lines), progress=False).message == (
        "seq 77: missing or out of order (found seq 78 in its place)"
    )


def test_export_with_a_reordered_entry(export: Path) -> None:
    lines = export_lines(export)
    lines[1 + 200], lines[1 + 201] = lines[1 + 201], lines[1 + 200]
    assert verify_export(write_lines(export, lines), progress=False).message == (
        "seq 200: missing or out of order (found seq 201 in its place)"
    )


def test_export_with_a_leaf_from_another_entry(export: Path) -> None:
    lines = export_lines(export)
    leaf_199 = json.loads(lines[1 + 199])["leaf"]
    lines[1 + 200] = json.dumps({"seq": 200, "leaf": leaf_199}).encode() + b"\n"
    result = verify_export(write_lines(export, lines), progress=False)
    assert result.message.startswith("seq 200: duplicate: the same leaf")


def test_export_with_trailing_garbage(export: Path) -> None:
    lines = export_lines(export)
    lines.append(b"garbage\n")
    assert verify_export(write_lines(export, lines), progress=False).message == (
        f"block 7: export line {len(lines)} is not JSON"
    )


def test_export_with_a_trailing_entry_line(export: Path) -> None:
    lines = export_lines(export)
    lines.append(lines[1])
    assert verify_export(write_lines(export, lines), progress=False).message == (
        f"block 7: export line {len(lines)} is not a block line"
    )


def test_export_with_a_bad_entry_line(export: Path) -> None:
    lines = export_lines(export)
    lines[1 + 30] = b'{"seq":30,"leaf":"not base64!"}\n'
    assert verify_export(write_lines(export, lines), progress=False).message == (
        "seq 30: export line 32: leaf is not base64"
    )
    lines[1 + 30] = b'{"seq":"30","leaf":""}\n'
    assert verify_export(write_lines(export, lines), progress=False).message == (
        "seq 30: export line 32 is not an entry line (no integer seq and string leaf)"
    )
    lines[1 + 30] = b"[1, 2]\n"
    assert verify_export(write_lines(export, lines), progress=False).message == (
        "seq 30: export line 32 is not an entry line"
    )


def test_export_with_an_altered_block_line(export: Path) -> None:
    lines = export_lines(export)
    size = entry_count(export)
    value = json.loads(lines[1 + size + 2])
    value["header"]["root"] = base64.b64encode(bytes(32)).decode()
    lines[1 + size + 2] = json.dumps(value).encode() + b"\n"
    assert verify_export(write_lines(export, lines), progress=False).message == (
        "block 2: header signature does not verify"
    )


def test_export_with_a_bad_header_line(export: Path) -> None:
    lines = export_lines(export)
    lines[0] = b'{"format":"something-else/1"}\n'
    result = verify_export(write_lines(export, lines), progress=False)
    assert result.message == "export: line 1 is not a shulian-export/1 header"
    lines[0] = json.dumps({"format": "shulian-export/1", "origin": "other.test/log", "log_key": "x+1+2"}).encode()
    result = verify_export(write_lines(export, [lines[0] + b"\n", *lines[1:]]), progress=False)
    assert result.message.startswith("export: log key")


def test_export_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot read the export"):
        verify_export(tmp_path / "absent.jsonl", progress=False)


def test_export_with_unknown_fields_verifies(export: Path) -> None:
    lines = export_lines(export)
    out = []
    for line in lines:
        value = json.loads(line)
        value["note"] = "readers ignore fields they do not know"
        out.append(json.dumps(value, ensure_ascii=False).encode() + b"\n")
    assert verify_export(write_lines(export, out), progress=False).ok


def test_consent_rule_fault_found_in_a_worker_chunk_with_the_compact_state(sqlite_node: Node) -> None:
    """Workers checking every chunk (threshold 0) and the packed consent replay name the same seq."""
    leaves = [(seq, parse_envelope(leaf_at(sqlite_node, seq))) for seq in range(40, 120)]
    seq, env = [(s, e) for s, e in leaves if e.type == "record.commit" and e.body["dataset"] != "d1.people"][-1]
    intruder = seeded_key("dept1", "department", 4)
    forged = sign_envelope(intruder.signing, "record.commit", dict(env.body), ts=env.ts)
    tamper(sqlite_node, ("UPDATE entries SET leaf = ? WHERE seq = ?", (forged, seq)))
    result = verify_database(sqlite_node.store, progress=False, workers=2, threshold=0)
    assert result.message == f"seq {seq}: only the owner of {env.body['dataset']} commits its records"
    assert result.seq == seq and result.entries == seq


def test_compact_and_full_consent_replays_give_the_same_verdicts(
    sqlite_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``verify_database`` with the full ``ConsentState`` and with the compact one, good and tampered."""
    from audit import sources
    from consent.compact import CompactConsentState
    from consent.state import ConsentState

    assert isinstance(sources.default_machines()[0], CompactConsentState)
    compact = verify_database(sqlite_node.store, progress=False)
    with monkeypatch.context() as m:
        m.setattr(sources, "default_machines", lambda: [ConsentState()])
        full = verify_database(sqlite_node.store, progress=False)
    assert compact == full and compact.ok
    conn = sqlite3.connect(db_path(sqlite_node))
    try:
        grant_seq = conn.execute("SELECT max(grant_seq) FROM consent_index").fetchone()[0]
        conn.execute("UPDATE consent_index SET valid_until = valid_from WHERE grant_seq = ?", (grant_seq,))
        conn.commit()
    finally:
        conn.close()
    compact = verify_database(sqlite_node.store, progress=False)
    with monkeypatch.context() as m:
        m.setattr(sources, "default_machines", lambda: [ConsentState()])
        full = verify_database(sqlite_node.store, progress=False)
    assert compact == full and not compact.ok
    assert compact.message == f"seq {grant_seq}: consent index differs from the ledger in valid_until"
