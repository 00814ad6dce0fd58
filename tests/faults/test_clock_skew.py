"""Two replicas whose clocks differ by four minutes append concurrently: the ledger's time never goes back.

The skew is real for each process: libfaketime (Debian's ``faketime`` package, installed by ``make
test``) shifts every wall-clock call of one replica 2 minutes ahead and of the other 2 minutes behind
(the monotonic clock is left alone, as NTP would). A block's time is the later of the sealing
replica's clock and the previous block's time, and each entry's ``ts`` must lie within
``MAX_CLOCK_SKEW_SECONDS`` of its block's time; the verifier checks both.
"""

from __future__ import annotations

import glob
import json
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from ledger.block import MAX_CLOCK_SKEW_SECONDS, parse_header
from ledger.store import Store
from ledger.timefmt import now, parse_ts
from tests.faults.conftest import Answer, Load, check_settled, ledger_env, start_replicas

SKEW_SECONDS = 120


def _faketime_lib() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1")) + sorted(glob.glob("/usr/lib/faketime/*.so.1"))
    if not found:
        pytest.skip("libfaketime not installed (Debian package faketime; `make test` installs it as root)")
    return found[0]


def _skewed(env: dict[str, str], lib: str, offset: int) -> dict[str, str]:
    return dict(env, LD_PRELOAD=lib, FAKETIME=f"{offset:+d}", DONT_FAKE_MONOTONIC="1")


def _blocks(db: str) -> list[tuple[int, str]]:
    """(tree_size, time) of every block, by height."""
    store = Store(db)
    try:
        with store.reader() as conn:
            rows = conn.execute(text("SELECT header FROM blocks ORDER BY height")).all()
    finally:
        store.close()
    headers = [parse_header(json.loads(r[0])) for r in rows]
    return [(h.tree_size, h.time) for h in headers]


@pytest.mark.slow
@pytest.mark.pg
def test_replicas_with_skewed_clocks_keep_time_in_order(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = _faketime_lib()
    env, keys = ledger_env(tmp_path, pg_url, monkeypatch)
    (ahead, ahead_url), (behind, behind_url) = start_replicas(
        _skewed(env, lib, SKEW_SECONDS), _skewed(env, lib, -SKEW_SECONDS)
    )
    try:
        # each replica's wall clock is off by its skew (its HTTP Date header says so) ...
        for url, offset in ((ahead_url, SKEW_SECONDS), (behind_url, -SKEW_SECONDS)):
            said = parsedate_to_datetime(httpx.get(url + "/healthz", timeout=30).headers["date"])
            assert abs((said - now()).total_seconds() - offset) < 15, (said, now(), offset)
        # ... and the one ahead, alone, seals by its own clock
        load = Load([ahead_url], keys)
        load.start(1)
        load.wait_acks(1)
        load.stop()
        first_ahead = parse_ts(_blocks(pg_url)[-1][1])
        assert abs((first_ahead - now()).total_seconds() - SKEW_SECONDS) < 30, first_ahead
        # then both at once
        sealed_behind: set[int] = set()  # tree sizes of the blocks the replica behind sealed

        def note(url: str, answer: Answer) -> None:
            if url == behind_url and answer.status == 201:
                sealed_behind.add(int(json.loads(answer.body)["tree_size"]))

        load = Load([ahead_url, behind_url], keys, on_answer=note)
        load.start(4)
        load.wait_acks(30)
        load.stop()
        assert load.statuses[201] >= 30 and set(load.statuses) <= {201, 409}, load.statuses
        blocks = _blocks(pg_url)
        times = [parse_ts(t) for _, t in blocks]
        assert times == sorted(times), "a block's time goes back"
        # the replica behind sealed blocks too, at the ledger's time, not at its own
        assert sealed_behind, "the replica behind sealed nothing"
        assert all(parse_ts(t) >= first_ahead for size, t in blocks if size in sealed_behind)
        # every entry's ts lies within the allowed skew of its block's time
        store = Store(pg_url)
        try:
            with store.reader() as conn:
                rows = conn.execute(text("SELECT seq, ts, height FROM entries ORDER BY seq")).all()
        finally:
            store.close()
        limit = timedelta(seconds=MAX_CLOCK_SKEW_SECONDS)
        for seq, ts, height in rows:
            assert abs(parse_ts(ts) - times[height]) <= limit, f"seq {seq}: ts {ts}, block time {times[height]}"
        check_settled(pg_url, load)  # and the verifier passes
    finally:
        for proc_ in (ahead, behind):
            proc_.terminate()
            proc_.wait(10)
