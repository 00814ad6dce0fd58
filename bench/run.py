"""`make bench`: print one JSON object of figures (progress on stderr); also bench/out/latest.json.

Figures: Ed25519 verification (the reference), canonical JSON, signed appends per second on SQLite
and PostgreSQL through the real sequencer, the offline verifier over a 10^6-entry ledger (rate and
peak memory), proof latency at 10^3 and 10^6 entries, and the tree against merkletools and pymerkle.
Each target in ``targets`` says its figure, its bound and whether it is met; a rate's figure is its ratio
to the Ed25519 reference measured just before and after it (``bench.reference``), and its ratio to the
reference at the start of the run is given beside it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import append, build, fuzz, growth, micro, peers, proofs, release, verify
from bench.reference import Reference

OUT = build.OUT
PG_ADMIN_URL = os.environ.get("SHULIAN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
LEDGER_SIZES = (1_000, 1_000_000)
APPEND_ENTRIES = int(os.environ.get("SHULIAN_BENCH_APPENDS", "40000"))
# (processes, threads per process, entries per call) tried for each engine; the best is the figure,
# all are reported. Entries per call > 1: each thread calls Sequencer.append_many with that many
# envelopes (a department posting a batch of records) and is answered once all of them are
# committed. Few submitters with big calls beat many with one entry each: every entry's signature
# check releases the GIL, and with a hundred threads each release is a contended hand-over. Two
# processes posting batches (two API workers, each with its department clients) check signatures and
# parse under two GILs while one of them commits: 2026-11-30, SQLite, 40,000 entries: 1 x 2 x 512
# 8,280/s, 2 x 2 x 512 10,730/s.
APPEND_CONFIGS = [(1, 128, 1), (2, 128, 1), (1, 4, 128), (1, 2, 512), (2, 2, 512)]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@contextmanager
def scratch() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="append-", dir=OUT))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A fresh database for the run, dropped afterwards; None if PostgreSQL cannot be reached."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as exc:
        log(f"PostgreSQL unavailable ({exc}); skipping it")
        yield None
        return
    name = f"shulian_bench_{os.getpid()}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def sqlite_database(home: Path) -> Iterator[str | None]:
    yield f"sqlite:///{home / 'ledger.db'}"


def append_engine(database: Callable[[Path], Any], label: str, reference: Reference) -> dict[str, Any]:
    """Timed appends on a fresh ledger for each (processes, threads, entries per call) configuration,
    each between two samples of the Ed25519 reference."""
    runs = []
    for processes, threads, per_call in APPEND_CONFIGS:
        with scratch() as home, database(home) as db:
            if db is None:
                return {"per_s": None, "reason": f"{label} not reachable"}
            world, pool = append.prepared_ledger(db, home)
            leaves = append.sign_timed_batch(world, pool, APPEND_ENTRIES)
            pool.close()
            each = f", {per_call} entries per call" if per_call > 1 else ""
            log(f"{label}: {len(leaves)} pre-signed appends, {processes} process(es) × {threads} threads{each}")
            section = f"append {label} {processes}x{threads}x{per_call}"
            with reference.around(section):
                result = append.timed_appends(db, home, leaves, processes=processes, threads=threads, per_call=per_call)
            log(f"{label}: {result.per_s:.0f} appends/s (mean batch {result.entries / max(result.blocks, 1):.0f})")
            run = result.to_json()
            run["ed25519_reference"] = reference.of(section)
            run["ratio"] = reference.ratio(result.per_s, section)
            runs.append(run)
    best = max(runs, key=lambda r: r["per_s"] if not r["errors"] else 0)
    single = max((r["per_s"] for r in runs if r["entries_per_call"] == 1 and not r["errors"]), default=None)
    return {
        "per_s": best["per_s"],
        "ratio": best["ratio"],
        "ratio_to_first_reference": reference.ratio_to_first(best["per_s"]),
        "per_s_one_entry_per_call": single,
        "best": best,
        "runs": runs,
    }


def appends(reference: Reference) -> dict[str, Any]:
    return {
        "sqlite": append_engine(sqlite_database, "sqlite", reference),
        "postgresql": append_engine(lambda _home: postgres_database(), "postgresql", reference),
    }


def target(
    figure: float | None, bound: float, *, at_most: bool = False, what: str, to_first: float | None = None
) -> dict[str, Any]:
    """A target: ``figure`` against ``bound``; ``to_first``, a rate's ratio to the run's first reference."""
    met = figure is not None and (figure <= bound if at_most else figure >= bound)
    out = {"figure": figure, ("at_most" if at_most else "at_least"): round(bound, 3), "met": met, "what": what}
    if to_first is not None:
        out["figure_to_first_reference"] = to_first
    return out


def verified(big: build.Ledger, reference: Reference) -> dict[str, Any]:
    """The offline verifier over ``big`` between two samples of the reference."""
    log(f"offline verifier over {big.entries} entries (child process)")
    with reference.around("verify"):
        vf = verify.verify_figures(big.db, big.entries)
    log(f"  {vf}")
    return vf


def verify_targets(vf: dict[str, Any], reference: Reference) -> dict[str, Any]:
    return {
        "verify_rate": target(
            reference.ratio(vf["per_s"], "verify"),
            1.2,
            what="verify_per_s / ed25519_verify_per_s (measured before and after it)",
            to_first=reference.ratio_to_first(vf["per_s"]),
        ),
        "verify_rss": target(vf["rss_mb"], 200, at_most=True, what="verify_rss_mb"),
    }


def verify_only(report: dict[str, Any], reference: Reference, t0: float) -> None:
    """The verify figures and their two targets beside the Ed25519 reference of the same run."""
    size = LEDGER_SIZES[-1]
    log(f"ledger of {size} entries")
    big = build.build(size, any_version=True)
    report["ledgers"] = {str(size): {"entries": big.entries, "blocks": big.blocks, "path": big.path.name}}
    vf = verified(big, reference)
    report["verify_per_s"] = vf["per_s"]
    report["verify_rss_mb"] = vf["rss_mb"]
    report["verify_detail"] = vf
    report["ed25519_reference"] = reference.report()
    report["targets"] = verify_targets(vf, reference)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, ensure_ascii=False, indent=1)
    (OUT / "verify.json").write_text(text + "\n")
    print(text)


def growth_only(report: dict[str, Any], t0: float) -> None:
    """The growth table alone (``--only growth``), written to bench/out/growth.json."""
    log("growth table: append and proof cost at 10^4, 10^5, 10^6 entries")
    report["growth"] = growth.growth_table(postgres_database)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, ensure_ascii=False, indent=1)
    (OUT / "growth.json").write_text(text + "\n")
    print(text)


def fuzz_only(report: dict[str, Any], t0: float) -> None:
    """The schemathesis run alone (``--only fuzz``), written to bench/out/fuzz.json."""
    log(f"fuzzing the OpenAPI document: {fuzz.EXAMPLES} cases per operation and mode, seed {fuzz.SEED}")
    report["fuzz"] = fuzz.fuzz_figures()
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, ensure_ascii=False, indent=1)
    (OUT / "fuzz.json").write_text(text + "\n")
    print(text)


def main(argv: list[str] | None = None) -> None:
    """``--only append``: the Ed25519 reference and the timed appends only (no ledgers, proofs, peers).

    ``--only verify``: the Ed25519 reference and the offline verifier over the 10^6 ledger only (a
    cached ledger built by other code is reused: the verifier checks whatever ledger it is given).

    ``--only growth``: the growth table only (append and proof cost at 10^4, 10^5, 10^6 entries).

    ``--only release``: the Ed25519 reference and the release figures only (SQLite with two workers,
    two PostgreSQL replicas), written to bench/out/release.json.

    ``--only fuzz``: the schemathesis run over the OpenAPI document only (bench/fuzz.py), written to
    bench/out/fuzz.json.
    """
    args = sys.argv[1:] if argv is None else argv
    only = args[args.index("--only") + 1] if "--only" in args[:-1] else None
    if only not in (None, "append", "verify", "growth", "release", "fuzz"):
        raise SystemExit(f"--only takes 'append', 'verify', 'growth', 'release' or 'fuzz', not {only!r}")
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SHULIAN_PASSPHRASE", "shulian-bench")
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "code_version": build.code_version(),
    }
    if only == "fuzz":
        fuzz_only(report, t0)
        return
    log("Ed25519 verification, one core")
    reference = Reference(log)
    report["ed25519_verify_per_s"] = reference.sample("start")
    if only == "verify":
        verify_only(report, reference, t0)
        return
    if only == "growth":
        growth_only(report, t0)
        return
    if only == "release":
        report.update(release.release_report(reference, scratch, postgres_database, log))
        report["ed25519_reference"] = reference.report()
        report["seconds"] = round(time.perf_counter() - t0, 1)
        text = json.dumps(report, ensure_ascii=False, indent=1)
        (OUT / "release.json").write_text(text + "\n")
        print(text)
        return
    log("canonical JSON: rfc8785 vs ledger.canonical.canonical_bytes")
    report["canonical"] = micro.canonical_figures()

    log("timed appends")
    detail = appends(reference)
    report["append_per_s"] = {k: v["per_s"] for k, v in detail.items()}
    report["append_ratio"] = {k: v.get("ratio") for k, v in detail.items()}
    report["append_detail"] = detail
    if only == "append":
        report["ed25519_reference"] = reference.report()
        report["seconds"] = round(time.perf_counter() - t0, 1)
        text = json.dumps(report, ensure_ascii=False, indent=1)
        (OUT / "append.json").write_text(text + "\n")
        print(text)
        return

    ledgers = {}
    for size in LEDGER_SIZES:
        log(f"ledger of {size} entries")
        ledgers[size] = build.build(size, any_version=True)  # proofs and verify read whatever ledger is built
    big = ledgers[LEDGER_SIZES[-1]]
    report["ledgers"] = {
        str(s): {"entries": lg.entries, "blocks": lg.blocks, "build_s": round(lg.build_seconds, 1), "cached": lg.cached}
        for s, lg in ledgers.items()
    }

    vf = verified(big, reference)
    report["verify_per_s"] = vf["per_s"]
    report["verify_rss_mb"] = vf["rss_mb"]
    report["verify_detail"] = vf

    log("proofs through LogReader")
    proof_detail = {str(s): proofs.proof_latency(lg.db) for s, lg in ledgers.items()}
    report["inclusion_proof_ms"] = {k: v["inclusion_p50_ms"] for k, v in proof_detail.items()}
    report["consistency_proof_ms"] = {k: v["consistency_p50_ms"] for k, v in proof_detail.items()}
    report["proof_detail"] = proof_detail

    log("growth table: append and proof cost at 10^4, 10^5, 10^6 entries")
    report["growth"] = growth.growth_table(postgres_database)
    flat = report["growth"]["ratio_largest_to_smallest"]["sqlite"]

    releases = release.release_report(reference, scratch, postgres_database, log)
    report.update({k: v for k, v in releases.items() if k != "release_targets"})

    log("tree peers at 10^5 leaves")
    report["peers"] = peers.peers(100_000)

    small, large = (str(s) for s in LEDGER_SIZES)
    incl = report["inclusion_proof_ms"]
    pe = report["peers"]
    sq, pg = detail["sqlite"], detail["postgresql"]

    def faster(field: str) -> bool:
        ours = pe["shulian"][field]
        return all(pe[p][field] is None or ours < pe[p][field] for p in ("merkletools", "pymerkle"))

    log("fuzzing the OpenAPI document (schemathesis)")
    report["fuzz"] = fuzz.fuzz_figures()
    log(f"  {report['fuzz']['cases']} cases, {report['fuzz']['failures']} failures")

    report["targets"] = {
        "fuzz": {"met": report["fuzz"]["failures"] == 0, "what": "no 5xx and every answer as documented"},
        "append_sqlite": target(
            sq.get("ratio"),
            0.5,
            what="append_per_s.sqlite / ed25519_verify_per_s (measured before and after it)",
            to_first=sq.get("ratio_to_first_reference"),
        ),
        "append_postgresql": target(
            pg.get("ratio"),
            0.3,
            what="append_per_s.postgresql / ed25519_verify_per_s (measured before and after it)",
            to_first=pg.get("ratio_to_first_reference"),
        ),
        **verify_targets(vf, reference),
        "inclusion_1e6_ms": target(incl[large], 2.0, at_most=True, what=f"inclusion_proof_ms[{large}]"),
        "inclusion_growth": target(
            round(incl[large] / incl[small], 3), 3.0, at_most=True, what=f"inclusion_proof_ms {large} / {small}"
        ),
        **releases["release_targets"],
        "append_growth": target(
            flat and flat["append_us_per_entry"], 2.0, at_most=True, what="append µs/entry at 10^6 / at 10^4 (SQLite)"
        ),
        "peers_build": {"met": faster("build_s"), "what": "shulian build_s below merkletools and pymerkle"},
        "peers_proof": {"met": faster("proof_ms"), "what": "shulian proof_ms below merkletools and pymerkle"},
    }
    report["ed25519_reference"] = reference.report()
    report["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(report, ensure_ascii=False, indent=1)
    (OUT / "latest.json").write_text(text + "\n")
    print(text)
    log(f"done in {report['seconds']} s; written to {(OUT / 'latest.json').relative_to(build.ROOT)}")


if __name__ == "__main__":
    main()
