"""Property: whatever citizens and departments do, every release rests on an allow that the ledger justifies.

Hypothesis draws sequences of consent grants and revocations, agreement approvals and revocations, and
data requests, and runs them through the SDK against the app in-process (Starlette's TestClient; each
example on its own copy of one SQLite world). Afterwards the ledger is replayed by code written here
from DESIGN §9 alone: every ``usage.release`` rests on an allow decision, at most one each, signed by
the service key; the allow's basis agreement was unrevoked, in force and covering at the decision's
time, and where it needs consent the grant was the subject's own, unrevoked, in force, covering, with a
use left. Conversely a deny is logged only when no such agreement (and grant) existed.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.client import ClientError, ShulianClient
from api.node import Node
from keys.keystore import StoredKey
from ledger.envelope import parse_envelope, sign_envelope
from ledger.timefmt import format_ts, now, parse_ts
from tests.access.world import DIBAO, World, build_world

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

FIELDS = ("name", "id_number", "household_size", "monthly_allowance")
PURPOSES = ("住房保障资格审核", "公积金提取审核")
WINDOWS = {"live": (-86400.0, 30 * 86400.0), "ended": (-2 * 86400.0, -86400.0), "pending": (86400.0, 2 * 86400.0)}
DEPTS = ("gjj", "rsj")
RECORDS = {"mzj-a": "a", "mzj-b": "b"}

fields_st = st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)
window_st = st.sampled_from(["live", "live", "live", "ended", "pending"])
# (fields, purpose) pairs that the world's agreements cover, drawn often so that allows are common too.
COVERED = [
    (["household_size"], PURPOSES[1]),
    (["monthly_allowance", "household_size"], PURPOSES[1]),
    (["name"], PURPOSES[0]),
    (["name", "monthly_allowance"], PURPOSES[0]),
]
ask_st = st.one_of(st.sampled_from(COVERED), st.tuples(fields_st, st.sampled_from(PURPOSES)))
dept_st = st.sampled_from(["gjj", "gjj", "rsj"])
request_st = st.builds(
    lambda dept, record, ask: ("request", dept, record, *ask), dept_st, st.sampled_from(sorted(RECORDS)), ask_st
)
grant_st = st.builds(
    lambda who, dept, ask, window, uses: ("grant", who, dept, *ask, window, uses),
    st.sampled_from(["a", "b"]),
    dept_st,
    ask_st,
    window_st,
    st.sampled_from([None, 1, 2]),
)
approve_st = st.tuples(
    st.just("approve"), dept_st,
    st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(["full", "masked"]), min_size=1),
    st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True), st.booleans(), window_st,
)  # fmt: skip
# Weighted: requests most often, then grants; the index shrinks towards a request.
KINDS = (
    [request_st] * 4
    + [grant_st] * 2
    + [
        approve_st,
        st.tuples(st.just("revoke_grant"), st.integers(0, 7)),
        st.tuples(st.just("revoke_agreement"), st.integers(0, 7)),
    ]
)
ops_st = st.lists(st.integers(0, len(KINDS) - 1).flatmap(lambda i: KINDS[i]), min_size=1, max_size=14)


@dataclass
class Template:
    """One world built once; each example runs on a copy of its directory."""

    root: Path
    world: World


@pytest.fixture
def template(shulian_home: Path, tmp_path: Path) -> Iterator[Template]:
    root = tmp_path / "template"
    node = Node(f"sqlite:///{root / 'ledger.db'}", root / "home")
    node.init(origin="test.shulian.example/log")
    client = TestClient(create_app(node), base_url="http://testserver")
    world = build_world(node, lambda key: ShulianClient("http://testserver", key, http=client))
    node.close()
    yield Template(root, world)
    client.close()


@dataclass
class Model:
    """What the run did, for the rebinding of revocation indices to seqs."""

    grants: list[int] = field(default_factory=list)
    agreements: list[int] = field(default_factory=list)


def run_op(world: World, model: Model, op: tuple[Any, ...], stats: Counter[str]) -> None:
    kind = op[0]
    try:
        if kind == "grant":
            _, who, grantee, fields, purpose, window, max_uses = op
            start, end = WINDOWS[window]
            model.grants.append(
                world.grant(
                    who, grantee=grantee, fields=fields, purpose=purpose, start=start, end=end, max_uses=max_uses
                )
            )
        elif kind == "revoke_grant" and model.grants:
            seq = model.grants[op[1] % len(model.grants)]
            owner = next(
                c for c in world.citizens.values() if seq in {int(x["entry"]["seq"]) for x in c.client.consents()}
            )
            owner.client.revoke_consent(seq, "撤回")
        elif kind == "approve":
            _, requester, scope, purposes, consent_required, window = op
            start, end = WINDOWS[window]
            model.agreements.append(
                world.approve(requester=requester, scope=scope, purposes=purposes,
                              consent_required=consent_required, start=start, end=end)
            )  # fmt: skip
        elif kind == "revoke_agreement" and model.agreements:
            world.depts["mzj"].client.revoke_agreement(model.agreements[op[1] % len(model.agreements)], "结束")
        elif kind == "request":
            _, dept, record, fields, purpose = op
            world.depts[dept].client.request(dataset=DIBAO, record=record, fields=fields, purpose=purpose)
            stats["allow"] += 1
    except ClientError as exc:
        assert exc.status is not None and 400 <= exc.status < 500, f"{op}: {exc}"
        if kind == "request":
            assert exc.status == 403 and exc.problem.get("reasons"), f"{op}: {exc}"
            stats["deny"] += 1
        else:
            assert exc.status == 409, f"{op}: {exc}"  # revoking what is already revoked


# -- the independent replay -------------------------------------------------------------------------


def in_window(body: dict[str, Any], at: str) -> bool:
    return parse_ts(body["valid_from"]) <= parse_ts(at) < parse_ts(body["valid_until"])


def check_ledger(leaves: list[bytes]) -> Counter[str]:
    """Replay the ledger; assert the release rules; count allows, denies and releases."""
    service = parse_envelope(leaves[1]).body
    assert service["role"] == "service"
    agreements: dict[int, dict[str, Any]] = {}
    grants: dict[int, dict[str, Any]] = {}
    revoked: set[tuple[str, int]] = set()
    uses: Counter[int] = Counter()
    allows: dict[int, dict[str, Any]] = {}
    released: dict[int, int] = {}
    seen: Counter[str] = Counter()
    for seq, leaf in enumerate(leaves):
        env = parse_envelope(leaf)
        if env.type == "agreement.approve":
            agreements[seq] = env.body
        elif env.type == "consent.grant":
            grants[seq] = env.body
        elif env.type == "agreement.revoke":
            revoked.add(("agreement", env.body["agreement"]))
        elif env.type == "consent.revoke":
            revoked.add(("grant", env.body["grant"]))
        elif env.type == "access.decision":
            assert env.actor == service["key_id"], f"seq {seq}: a decision not signed by the service"
            env.verify_signature(base64.b64decode(service["ed25519"]))
            d = env.body

            def agreement_ok(a_seq: int, d: dict[str, Any] = d, at: str = env.ts) -> bool:
                a = agreements.get(a_seq)
                return (
                    a is not None and ("agreement", a_seq) not in revoked and a["requester"] == d["requester"]
                    and in_window(a, at) and all(f in a["scope"].get(d["dataset"], {}) for f in d["fields"])
                    and d["purpose"] in a["purposes"]
                )  # fmt: skip

            def grant_ok(g_seq: int, d: dict[str, Any] = d, at: str = env.ts) -> bool:
                g = grants.get(g_seq)
                return (
                    g is not None and ("grant", g_seq) not in revoked and g["subject"] == d["subject"]
                    and g["grantee"] == d["requester"] and in_window(g, at) and g["purpose"] == d["purpose"]
                    and all(f in g["scope"].get(d["dataset"], []) for f in d["fields"])
                    and (g["max_uses"] is None or uses[g_seq] < g["max_uses"])
                )  # fmt: skip

            possible = any(
                agreement_ok(a) and (not agreements[a]["consent_required"] or any(grant_ok(g) for g in grants))
                for a in agreements
            )
            if d["outcome"] == "allow":
                seen["allow"] += 1
                basis = d["basis"]
                assert basis and agreement_ok(basis[0]), f"seq {seq}: allow without a live, covering agreement"
                scope = agreements[basis[0]]["scope"][d["dataset"]]
                assert d["modes"] == {f: scope[f] for f in d["fields"]}, f"seq {seq}: modes differ from the agreement"
                if agreements[basis[0]]["consent_required"]:
                    assert len(basis) == 2 and grant_ok(basis[1]), (
                        f"seq {seq}: allow without the subject's live consent"
                    )
                    uses[basis[1]] += 1
                else:
                    assert len(basis) == 1, f"seq {seq}: names a consent the agreement does not need"
                allows[seq] = d
            else:
                seen["deny"] += 1
                assert not possible, f"seq {seq}: denied ({d['reasons']}) though an allow was justified"
        elif env.type == "usage.release":
            assert env.actor == service["key_id"]
            seen["release"] += 1
            r = env.body
            decision = allows.get(r["decision"])
            assert decision is not None, f"seq {seq}: a release without an allow decision"
            assert r["decision"] not in released, f"seq {seq}: a second release of decision {r['decision']}"
            assert r["requester"] == decision["requester"] and r["record_seq"] == decision["record_seq"]
            assert r["decision"] == seq - 1, f"seq {seq}: the release is not committed with its decision"
            released[r["decision"]] = seq
    assert set(released) == set(allows), "an allow decision without its release"
    return seen


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_release_rests_on_a_justified_allow(template: Template) -> None:
    totals: Counter[str] = Counter()

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=ops_st)
    @example(ops=[("request", "gjj", "mzj-b", ["household_size"], PURPOSES[1])])  # an allow (履行职责)
    @example(ops=[("request", "rsj", "mzj-a", ["name"], PURPOSES[0])])  # a deny (no agreement)
    def run(ops: list[tuple[Any, ...]]) -> None:
        with tempfile.TemporaryDirectory(dir=template.root.parent) as tmp:
            copy = Path(tmp) / "w"
            shutil.copytree(template.root, copy)
            node = Node(f"sqlite:///{copy / 'ledger.db'}", copy / "home")
            client = TestClient(create_app(node), base_url="http://testserver")
            world = template.world.rebind(node, lambda key: ShulianClient("http://testserver", key, http=client))
            try:
                model, stats = Model(agreements=[world.consent_agreement, world.duty_agreement]), Counter[str]()
                for op in ops:
                    run_op(world, model, op, stats)
                seen = check_ledger(world.leaves())
                assert seen["allow"] == stats["allow"] and seen["deny"] == stats["deny"]
                assert seen["release"] == seen["allow"]
                event(f"allows: {min(seen['allow'], 3)}")
                totals.update(seen)
            finally:
                client.close()
                node.close()

    run()
    print("TOTALS", totals)
    assert totals["allow"] > 0 and totals["deny"] > 0, f"the examples exercised too little: {totals}"


def test_the_replay_catches_a_release_without_an_allow(template: Template) -> None:
    """The checker is not vacuous: a release resting on a deny, and an allow without consent, are caught."""
    node = Node(f"sqlite:///{template.root / 'ledger.db'}", template.root / "home")
    try:
        offline = template.world.rebind(node, lambda key: ShulianClient("http://unused.invalid", key))
        leaves = offline.leaves()
        offline.close()
        service: StoredKey = node.local_key("service")
        t = format_ts(now() - timedelta(seconds=1))
        deny = {
            "request": "0" * 64, "requester": template.world.depts["rsj"].key_id, "dataset": DIBAO, "record": "mzj-a",
            "record_seq": template.world.records["mzj-a"], "subject": template.world.citizens["a"].subject,
            "fields": ["name"], "purpose": PURPOSES[0], "outcome": "deny", "reasons": ["no_agreement"], "basis": [],
            "modes": {},
        }  # fmt: skip
        release = {
            "decision": len(leaves), "requester": deny["requester"], "record_seq": deny["record_seq"],
            "delivered": base64.b64encode(bytes(32)).decode(),
        }  # fmt: skip
        forged = [
            *leaves,
            sign_envelope(service.signing, "access.decision", deny, ts=t),
            sign_envelope(service.signing, "usage.release", release, ts=t),
        ]
        check_ledger(leaves)
        with pytest.raises(AssertionError, match="a release without an allow decision"):
            check_ledger(forged)
        allow = deny | {"outcome": "allow", "reasons": [], "basis": [template.world.consent_agreement],
                        "modes": {"name": "masked"}, "requester": template.world.depts["gjj"].key_id}  # fmt: skip
        with pytest.raises(AssertionError, match="allow without the subject's live consent"):
            check_ledger([*leaves, sign_envelope(service.signing, "access.decision", allow, ts=t)])
    finally:
        node.close()
