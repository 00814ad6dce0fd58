"""`shulian demo` is idempotent; `shulian simulate` drives the whole chain and `shulian verify` agrees."""

from __future__ import annotations

import re

from api import world
from consent.decision import DENY_REASONS
from tests.cli.conftest import Server, run_cli, tree_size


def test_demo_twice_then_simulate_then_verify(server: Server) -> None:
    # The server fixture already ran `shulian demo` once: a second run appends nothing.
    size = tree_size(server)
    assert size > 600  # identities, catalogue, a few hundred records, agreements, consents
    again = run_cli(server.env, "demo")
    assert "nothing changed" in again.stdout
    assert tree_size(server) == size

    out = run_cli(server.env, "simulate", "--events", "300", "--seed", "11").stdout
    assert out.startswith("simulated 300 events (")
    counts = {k: int(v) for k, v in re.findall(r"([a-z_.:]+) (\d+)[,)]", out)}
    assert sum(counts.values()) == 300, counts
    assert counts.get("allow", 0) > 10, counts
    reasons = {k.removeprefix("deny:") for k in counts if k.startswith("deny:")}
    assert len(reasons) >= 6, reasons
    assert reasons <= set(DENY_REASONS)
    assert {"consent.grant", "record.update", "objection.file"} <= set(counts), counts
    assert tree_size(server) > size + 300

    verified = run_cli(server.env, "verify", "-q")
    assert verified.stdout.startswith("OK: ")

    # and demo still changes nothing: what simulate revoked or rotated stays as it is
    size = tree_size(server)
    assert "nothing changed" in run_cli(server.env, "demo").stdout
    assert tree_size(server) == size


def test_world_is_deterministic() -> None:
    assert world.person(7) == world.person(7)
    p = world.person(7)
    assert p.id_number == world.citizen_id_number(7)
    assert world.record_values("gaj.hukou", p) == world.record_values("gaj.hukou", p)
    assert world.record_values("gaj.hukou", p, 2) != world.record_values("gaj.hukou", p)
    code, values = world.licence(3)
    assert len(code) == 18 and values["credit_code"] == code
    assert world.credit_code("91350100M000100Y4"[:17]) == "91350100M000100Y43"
