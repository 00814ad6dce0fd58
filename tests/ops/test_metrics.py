"""GET /metrics over two worker processes: a real city's appends, decisions and releases, HTTP traffic,
witness lag and `shulian verify`'s progress."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import MULTIPROC_VARIABLE, prepare_multiprocess_dir
from tests.api.conftest import run_cli
from tests.ops.conftest import PASSPHRASE, Live
from tests.ops.world import build_city

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(live: Live) -> Samples:
    response = httpx.get(live.url + "/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_metrics_count_a_real_city(live: Live) -> None:
    before = scrape(live)
    city = build_city(live.url, live.home, PASSPHRASE, "metrics")
    for _ in range(30):  # fresh connections: the kernel spreads them over both workers
        assert httpx.get(live.url + "/v1/checkpoint", timeout=30).status_code == 200
    after = scrape(live)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert total(after, "shulian_appends_total") - total(before, "shulian_appends_total") == city.appends
    assert delta("shulian_appends_total", type="identity_register") == 3
    assert delta("shulian_appends_total", type="access_decision") == 2
    assert delta("shulian_decisions_total", outcome="allow") == 1
    assert delta("shulian_decisions_total", outcome="deny") == 1
    assert city.deny_reasons
    for reason in city.deny_reasons:
        assert delta("shulian_deny_reasons_total", reason=reason) == 1
    assert delta("shulian_releases_total") == 1
    # one commit per append here (nothing else appends): the release commits with its decision
    assert delta("shulian_commit_entries_count") == city.appends - 1
    assert delta("shulian_commit_entries_sum") == city.appends
    assert delta("shulian_commit_seconds_count") == city.appends - 1
    assert delta("shulian_seal_seconds_count") == city.appends - 1
    assert value(after, "shulian_commit_seconds_sum") > 0
    # the workers send their appends to the writer process: it alone holds a sequencer and replayed the
    # ledger, once, when it first appended; being the only writer, it never took a plan back
    assert value(after, "shulian_writer_replays_total") == 1
    assert value(after, "shulian_writer_replay_seconds_count") == 1
    assert ("shulian_writer_rollbacks_total", ()) in after
    assert value(after, "shulian_writer_rollbacks_total") == 0
    http = "shulian_http_requests_total"
    assert delta(http, method="GET", route="/v1/checkpoint", status="200") >= 30
    assert delta(http, method="POST", route="/v1/access/requests", status="403") == 1
    assert delta(http, method="POST", route="/v1/access/requests", status="201") == 1
    assert delta("shulian_http_request_duration_seconds_count", method="POST", route="/v1/entries") == 3
    size = int(httpx.get(live.url + "/v1/checkpoint", timeout=30).text.splitlines()[1])
    assert value(after, "shulian_ledger_entries") == size
    # both workers and the writer process (which committed the access request) wrote their counters to
    # the run's multiprocess directory
    runs = list((live.home / "metrics").glob("serve-*"))
    assert len(runs) == 1
    assert len(list(runs[0].glob("counter_*.db"))) == 3


def test_witness_lag_and_verify_progress(live: Live, tmp_path) -> None:  # type: ignore[no-untyped-def]
    witness_env = dict(live.env, SHULIAN_HOME=str(tmp_path / "witness-home"))
    vkey = run_cli(witness_env, "witness", "init", "--name", "lagging.example").stdout.strip().split()[-1]
    run_cli(live.env, "witness", "add", vkey, "http://127.0.0.1:9")  # nobody listens: it never cosigns
    samples = scrape(live)
    size = value(samples, "shulian_ledger_entries")
    assert size >= 2
    assert value(samples, "shulian_witness_lag_entries", witness="lagging.example") == size
    assert value(samples, "shulian_witness_lag_seconds", witness="lagging.example") > 0

    done = run_cli(live.env, "verify", "-q")
    assert done.stdout.startswith("OK: ")
    checked = int(done.stdout.split()[1])
    samples = scrape(live)  # the server serves the textfile `shulian verify` wrote (SHULIAN_VERIFY_METRICS)
    assert value(samples, "shulian_verify_ok", source="database") == 1
    assert value(samples, "shulian_verify_running", source="database") == 0
    assert value(samples, "shulian_verify_entries_checked", source="database") == checked
    assert value(samples, "shulian_verify_entries_total", source="database") == checked
    assert value(samples, "shulian_verify_finished_timestamp_seconds", source="database") > 0


def test_multiprocess_dir_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each serve run gets a fresh directory; those of serve processes no longer alive are removed."""
    monkeypatch.setenv(MULTIPROC_VARIABLE, "")  # prepare_multiprocess_dir sets it: restored afterwards
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "metrics" / f"serve-{dead.pid}"
    running = tmp_path / "metrics" / f"serve-{os.getppid()}"  # a live process's run is left alone
    for d in (stale, running):
        d.mkdir(parents=True)
        (d / "counter_1.db").write_bytes(b"x")
    mine = tmp_path / "metrics" / f"serve-{os.getpid()}"
    mine.mkdir()
    (mine / "counter_old.db").write_bytes(b"x")
    path = prepare_multiprocess_dir(tmp_path)
    assert path == mine and os.environ[MULTIPROC_VARIABLE] == str(mine)
    assert list(mine.iterdir()) == []  # fresh: nothing counted by an earlier run with this pid
    assert not stale.exists() and (running / "counter_1.db").exists()
