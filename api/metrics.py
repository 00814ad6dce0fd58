"""Prometheus metrics: the ledger's appends, commits and decisions, HTTP traffic, witness lag, verify progress.

Counters and histograms only are kept in the worker processes; with ``serve`` they live in
prometheus-client's multiprocess files under ``PROMETHEUS_MULTIPROC_DIR`` (``serve`` makes a fresh
directory per run under ``SHULIAN_HOME/metrics/``), so one scrape of any worker sums all of them.
Values that are state rather than events (ledger size, witness lag) are read from the database at
scrape time; ``shulian verify`` writes its progress to a textfile (``SHULIAN_VERIFY_METRICS``) that
node_exporter's textfile collector reads and that ``/metrics`` also serves when the setting is given.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ledger import schema
from ledger.block import parse_header
from ledger.envelope import Envelope
from ledger.errors import LedgerError
from ledger.store import Store
from ledger.timefmt import parse_ts

log = logging.getLogger("shulian.metrics")
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABEL_RE = re.compile(r"[a-z][a-z0-9_]{0,47}")

APPENDS = Counter("shulian_appends", "Entries appended to the ledger, by entry type", ["type"])
COMMIT_SECONDS = Histogram(
    "shulian_commit_seconds",
    "Time of one group commit's writer transaction, COMMIT included",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SEAL_SECONDS = Histogram(
    "shulian_seal_seconds",
    "Time to sign one block header and its checkpoint",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
)
GROUP_SIZE = Histogram(
    "shulian_commit_entries",
    "Entries per group commit (one block each)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
)
DECISIONS = Counter("shulian_decisions", "Access decisions logged, by outcome", ["outcome"])
DENY_REASONS = Counter("shulian_deny_reasons", "Reasons given by deny decisions (a deny may give several)", ["reason"])
RELEASES = Counter("shulian_releases", "Releases logged (usage.release)")
WRITER_REPLAYS = Counter(
    "shulian_writer_replays",
    "Times a writer built its cached state by replaying the whole ledger (a process starting, or a commit it"
    " could not take back)",
)
WRITER_REPLAY_SECONDS = Histogram(
    "shulian_writer_replay_seconds",
    "Time of one replay of the whole ledger into a writer's cached state",
    buckets=(0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0),
)
WRITER_ROLLBACKS = Counter(
    "shulian_writer_rollbacks", "Batches a writer took back off its cached state because they did not commit"
)
HTTP_REQUESTS = Counter(
    "shulian_http_requests", "HTTP requests answered, by route and status", ["method", "route", "status"]
)
HTTP_SECONDS = Histogram(
    "shulian_http_request_duration_seconds",
    "Time from request to the end of the response, by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

OWN: tuple[Collector, ...] = (
    APPENDS,
    COMMIT_SECONDS,
    SEAL_SECONDS,
    GROUP_SIZE,
    DECISIONS,
    DENY_REASONS,
    RELEASES,
    HTTP_REQUESTS,
    HTTP_SECONDS,
)


def _label(value: object) -> str:
    """A bounded label value: a snake_case code as is, anything else as ``other``."""
    return value if isinstance(value, str) and _LABEL_RE.fullmatch(value) else "other"


def observe_commit(envs: list[Envelope], commit_seconds: float, seal_seconds: float) -> None:
    """The sequencer's observer: count one committed group. Never raises (an append is already done)."""
    try:
        COMMIT_SECONDS.observe(commit_seconds)
        SEAL_SECONDS.observe(seal_seconds)
        GROUP_SIZE.observe(len(envs))
        types = Tally(env.type for env in envs)
        for kind, n in types.items():
            APPENDS.labels(_label(kind.replace(".", "_"))).inc(n)
        for env in envs:
            if env.type == "access.decision":
                outcome = env.body.get("outcome")
                DECISIONS.labels(_label(outcome)).inc()
                if outcome == "deny":
                    for reason in env.body.get("reasons") or ():
                        DENY_REASONS.labels(_label(reason)).inc()
        if types.get("usage.release"):
            RELEASES.inc(types["usage.release"])
    except Exception:  # pragma: no cover - a metrics bug must not fail an append that committed
        log.exception("metrics: commit not counted")


def observe_cache(event: str, entries: int, seconds: float) -> None:
    """The sequencer's cache observer: a replay of the whole ledger, or a batch taken back. Never raises."""
    try:
        if event == "replay":
            WRITER_REPLAYS.inc()
            WRITER_REPLAY_SECONDS.observe(seconds)
            log.info("writer state replayed from the ledger: %d entries in %.1f s", entries, seconds)
        elif event == "rollback":
            WRITER_ROLLBACKS.inc()
            log.info("writer took back a batch of %d entries that did not commit (%.3f s)", entries, seconds)
    except Exception:  # pragma: no cover - a metrics bug must not fail an append
        log.exception("metrics: cache event not counted")


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_SECONDS.labels(method, route).observe(seconds)


# -- the multiprocess directory ------------------------------------------------------------------


def prepare_multiprocess_dir(home: Path) -> Path:
    """A fresh, empty metrics directory for this serve run under ``home/metrics`` (set in the environment).

    Must run before prometheus-client is imported in this process (it picks its value class at import)
    or the process's own metrics are kept in memory only; worker processes import it afresh.
    """
    root = home / "metrics"
    for stale in root.glob("serve-*"):  # left by a serve that was killed: its counters are gone with it
        pid = stale.name.removeprefix("serve-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    path = root / f"serve-{os.getpid()}"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_VARIABLE] = str(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_multiprocess_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- scrape-time state ---------------------------------------------------------------------------


class LedgerStateCollector(Collector):
    """Ledger size and each witness's lag, read from the database when scraped."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("shulian_ledger_entries", "Entries sealed in the latest block")
        lag_entries = GaugeMetricFamily(
            "shulian_witness_lag_entries",
            "Entries sealed beyond the last checkpoint the witness cosigned",
            labels=["witness"],
        )
        lag_seconds = GaugeMetricFamily(
            "shulian_witness_lag_seconds",
            "Seconds since the oldest checkpoint the witness has not cosigned was sealed (0 when caught up)",
            labels=["witness"],
        )
        try:
            self._read(size, lag_entries, lag_seconds)
        except (SQLAlchemyError, LedgerError) as exc:  # the database is away: say so through /readyz, not here
            log.warning("metrics: ledger state not read: %s", exc)
            return
        yield size
        yield lag_entries
        yield lag_seconds

    def _read(self, size: GaugeMetricFamily, lag_entries: GaugeMetricFamily, lag_seconds: GaugeMetricFamily) -> None:
        from api.witnesses import list_witnesses  # the witness module imports httpx: only when scraped

        witnesses = list_witnesses(self.store)
        b = schema.blocks
        with self.store.reader() as conn:
            head = Store.head_position(conn)
            tree_size = head[1] if head else 0
            size.add_metric([], tree_size)
            now = self.clock()
            for w in witnesses:
                name = w.vkey.split("+", 1)[0]
                behind = max(0, tree_size - w.last_size)
                waited = 0.0
                if behind:
                    row = conn.execute(
                        select(b.c.header).where(b.c.tree_size > w.last_size).order_by(b.c.height).limit(1)
                    ).first()
                    if row is not None:
                        sealed = parse_ts(parse_header(json.loads(row[0])).time).timestamp()
                        waited = max(0.0, now - sealed)
                lag_entries.add_metric([name], behind)
                lag_seconds.add_metric([name], waited)


class TextfileCollector(Collector):
    """The metrics of a Prometheus textfile (``shulian verify``'s progress), when the file exists."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        try:
            text = self.path.read_text()
        except OSError:
            return []
        try:
            return list(text_string_to_metric_families(text))
        except ValueError as exc:
            log.warning("metrics: %s is not a Prometheus textfile: %s", self.path, exc)
            return []


def render(extra: Iterable[Collector]) -> bytes:
    """The text exposition of every worker's counters (multiprocess) or this process's, plus ``extra``."""
    path = os.environ.get(MULTIPROC_VARIABLE)
    registry = CollectorRegistry()
    if path and os.path.isdir(path):
        multiprocess.MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    else:
        for own in OWN:
            registry.register(own)
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


# -- shulian verify's progress, as a textfile ----------------------------------------------------


class VerifyProgress(Collector):
    """``shulian verify``'s progress gauges, written atomically to a Prometheus textfile (at most once a second).

    Built from metric families, not Gauge objects, so no multiprocess file is ever written for it.
    """

    def __init__(self, path: Path, source: str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.source = source
        self.clock = clock
        self.started = clock()
        self.checked = 0
        self.total: int | None = None
        self.running = True
        self.ok: bool | None = None
        self.finished: float | None = None
        self._written = 0.0

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=["source"])
            family.add_metric([self.source], value)
            return family

        yield gauge("shulian_verify_running", "1 while shulian verify runs", 1.0 if self.running else 0.0)
        yield gauge("shulian_verify_started_timestamp_seconds", "When the verification started", self.started)
        yield gauge("shulian_verify_entries_checked", "Entries replayed so far", self.checked)
        if self.total is not None:
            yield gauge("shulian_verify_entries_total", "Entries to replay", self.total)
        if self.ok is not None and self.finished is not None:
            yield gauge("shulian_verify_ok", "1 if the last verification passed, 0 if it found a fault", float(self.ok))
            yield gauge("shulian_verify_finished_timestamp_seconds", "When the last verification ended", self.finished)

    def update(self, checked: int, total: int | None) -> None:
        self.checked = checked
        self.total = total
        if self.clock() - self._written >= 1.0:
            self.write()

    def finish(self, *, ok: bool, checked: int | None = None) -> None:
        self.running = False
        self.ok = ok
        self.finished = self.clock()
        if checked is not None:
            self.checked = checked
        self.write()

    def write(self) -> None:
        from prometheus_client import write_to_textfile

        registry = CollectorRegistry()
        registry.register(self)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.path), registry)  # a temporary file, then renamed over the old one
        self._written = self.clock()
