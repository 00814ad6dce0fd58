"""`shulian demo` and `shulian simulate`: a believable city on the ledger, driven through the real service.

Identities and the catalogue are appended by the operator in group commits through the sequencer.
Everything else (records, agreements, consents, requests, objections, key rotations) goes through the
API in-process: the FastAPI app behind Starlette's TestClient, each request signed (RFC 9421) by the
actor's own key with the Python SDK, so the real routes, authentication, rules and decision answer.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from api import world
from api.client import ClientError, ShulianClient
from api.httpsig import sign_request
from api.node import Node, identity_body
from consent.agreement import agreement_body, sign_commitment
from consent.decision import decide
from consent.grant import grant_body
from consent.objection import objection_body, resolution_body
from consent.state import EXHAUSTED, LIVE, AgreementState, ConsentState, GrantState, RecordState
from keys.keystore import StoredKey, load_keystore, save_keystore
from keys.registry import KeyRegistry
from keys.subject import subject_id, subject_secret
from ledger.canonical import canonical_bytes
from ledger.envelope import parse_envelope, sign_envelope
from ledger.errors import LedgerError
from ledger.store import Store
from ledger.timefmt import now

if TYPE_CHECKING:
    from starlette.testclient import TestClient

BASE_URL = "http://testserver"
SPARE = "spare"  # name of a generated key not yet given to anyone
SPARES = 16  # spare keys made (and saved) at a time, so rotations need few keystore saves
SHORT_GRANT = timedelta(seconds=1)  # a consent given for one counter visit only
WORKERS = 8  # threads committing demo records (the sequencer groups their commits)
QUIET_CITIZENS = 10  # citizens 1..10 get no demo consents: walkthroughs start from a clean slate
DATASET_OWNER = {d.dataset: d.owner for d in world.DATASETS}


class DemoError(LedgerError):
    status = 409


def _public_to_key_name() -> dict[str, str]:
    names = {d.name: d.key for d in world.DEPARTMENTS}
    names[world.AUDITOR[1]] = world.AUDITOR[0]
    return names


def _citizen_key_name(public: str) -> str | None:
    """citizen-0001 for 市民0001 (the public name a demo citizen's key carries)."""
    digits = public.removeprefix("市民")
    return world.citizen_key_name(int(digits)) if digits != public and digits.isascii() and digits.isdigit() else None


@dataclass
class DemoKeys:
    """The demo city's private keys (one encrypted keystore); the last key of a name is its current one.

    Spare keys are generated and saved ahead of use; a spare that reached the ledger (a run stopped
    before the keystore was saved again) gets its name back from the registry on the next load.
    """

    node: Node
    keys: list[StoredKey] = field(default_factory=list)
    spares: list[StoredKey] = field(default_factory=list)
    dirty: bool = False

    @property
    def path(self) -> Path:
        return self.node.key_path("demo")

    def load(self) -> DemoKeys:
        if not self.path.exists():
            return self
        stored = load_keystore(self.path)
        self.keys = [k for k in stored if k.name != SPARE]
        spares = [k for k in stored if k.name == SPARE]
        if spares:
            public = _public_to_key_name()
            with self.node.view.read() as (registry, _):
                for k in spares:
                    rec = registry.keys.get(k.key_id)
                    name = None if rec is None else public.get(rec.name) or _citizen_key_name(rec.name)
                    if rec is None or name is None:
                        self.spares.append(k)
                        continue
                    k.name, k.role = name, rec.role
                    self.keys.append(k)
                    self.dirty = True
        return self

    def save(self) -> None:
        save_keystore(self.path, self.keys + self.spares)
        self.dirty = False

    def save_if_dirty(self) -> None:
        if self.dirty:
            self.save()

    def current(self, name: str) -> StoredKey | None:
        for key in reversed(self.keys):
            if key.name == name:
                return key
        return None

    def require(self, name: str) -> StoredKey:
        key = self.current(name)
        if key is None:
            raise DemoError(f"the demo keystore holds no key {name}; run `shulian demo`")
        return key

    def names(self, prefix: str) -> list[str]:
        return sorted({k.name for k in self.keys if k.name.startswith(prefix)})

    def take_spare(self, name: str, role: str) -> StoredKey:
        """A fresh key, already saved to disk, now called ``name`` (saved under that name later)."""
        if not self.spares:
            self.spares = [StoredKey.generate(SPARE, x25519=True) for _ in range(SPARES)]
            self.save()
        key = self.spares.pop(0)
        key.name, key.role = name, role
        self.keys.append(key)
        self.dirty = True
        return key


def _ensure(keys: DemoKeys, name: str, role: str, *, x25519: bool = False) -> StoredKey:
    key = keys.current(name)
    if key is None:
        key = StoredKey.generate(name, x25519=x25519, role=role)
        keys.keys.append(key)
        keys.dirty = True
    return key


def _commit(node: Node, leaves: list[bytes]) -> int:
    """Append ``leaves`` in one group commit; any refusal is an error naming the entry."""
    done = 0
    for leaf, result in zip(leaves, node.sequencer.append_many(leaves), strict=True):
        if isinstance(result, LedgerError):
            env = parse_envelope(leaf)
            raise DemoError(f"{env.type} by {env.actor} refused: {result}") from result
        done += 1
    return done


def _bodies(node: Node, types: list[str]) -> list[dict[str, Any]]:
    with node.store.reader() as conn:
        rows = Store.entries_of_types(conn, types, 0)
    return [parse_envelope(leaf).body for _, leaf in rows]


def registered_datasets(node: Node) -> set[str]:
    return {body["dataset"] for body in _bodies(node, ["dataset.register"])}


def registered_keys(node: Node) -> set[str]:
    return {body["key_id"] for body in _bodies(node, ["identity.register", "identity.rotate"])}


def _progress(total: int, what: str) -> tqdm[Any]:
    return tqdm(total=total, desc=what, unit="ev", file=sys.stderr, disable=not sys.stderr.isatty() and total < 1000)


# ---------------------------------------------------------------------------------------------------
# The city, in-process: every actor a signed SDK client of the real app
# ---------------------------------------------------------------------------------------------------


class CityClient(ShulianClient):
    """The SDK client, reading the catalogue once per city instead of once per record committed."""

    def __init__(self, city: City, key: StoredKey) -> None:
        super().__init__(BASE_URL, key, log_key=city.log_key, http=city.http)
        self.city = city

    def datasets(self) -> list[dict[str, Any]]:
        if self.city.catalogue is None:
            self.city.catalogue = super().datasets()
        return self.city.catalogue


class City:
    """The demo city's actors, each an SDK client signing with its own key, over one in-process app."""

    def __init__(self, node: Node, keys: DemoKeys) -> None:
        self.node = node
        self.keys = keys
        self.secret = subject_secret(node.home / "subject.secret")
        self.log_key = node.reader.vkey.encode()
        self.catalogue: list[dict[str, Any]] | None = None
        self._clients: dict[str, CityClient] = {}
        self._last: CityClient | None = None
        self._stack = contextlib.ExitStack()
        self._admin: StoredKey | None = None

    def __enter__(self) -> City:
        from api.app import create_app

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Starlette's notice that it prefers httpx2
            from starlette.testclient import TestClient

        self.http: TestClient = self._stack.enter_context(TestClient(create_app(self.node), base_url=BASE_URL))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def client(self, key: StoredKey) -> CityClient:
        """The client signing with ``key``; it starts from the newest checkpoint any client accepted."""
        c = self._clients.get(key.key_id)
        if c is None:
            c = self._clients[key.key_id] = CityClient(self, key)
        newest = self._last.last if self._last is not None else None
        if newest is not None and (c.last is None or c.last.size < newest.size):
            c.last = newest
        self._last = c
        return c

    def actor(self, name: str) -> CityClient:
        return self.client(self.keys.require(name))

    def admin(self) -> CityClient:
        if self._admin is None:
            self._admin = self.node.local_key("admin")
        return self.client(self._admin)

    def subject(self, index: int) -> str:
        return subject_id(world.citizen_id_number(index), self.secret)


def _window(kind: str, at: datetime) -> tuple[datetime, datetime]:
    if kind == "expired":
        return datetime.fromisoformat("2022-12-01T00:00:00+00:00"), datetime.fromisoformat("2023-06-30T00:00:00+00:00")
    if kind == "future":
        return at + timedelta(days=30), at + timedelta(days=395)
    return at - timedelta(days=30), at + timedelta(days=365)


def _matches(a: AgreementState, s: world.Scenario, owner: str, requester: str) -> bool:
    ag = a.agreement
    return a.owner == owner and a.requester == requester and ag.scope == s.scope and ag.purposes == s.purposes


def approve_scenario(city: City, s: world.Scenario, at: datetime) -> dict[str, Any]:
    """The owner approves scenario ``s`` (with the requester's signed 告知承诺 where that is the basis)."""
    owner = city.keys.require(s.owner)
    requester = city.keys.require(s.requester)
    commitment = None
    if s.statement is not None:
        commitment = sign_commitment(
            requester.signing, statement=s.statement, scope=s.scope, purposes=s.purposes, requester=requester.key_id
        )
    start, end = _window(s.window, at)
    body = agreement_body(
        owner=owner.key_id, requester=requester.key_id, scope=s.scope, purposes=s.purposes,
        legal_basis=s.legal_basis, consent_required=s.consent_required, valid_from=start, valid_until=end,
        commitment=commitment,
    )  # fmt: skip
    return city.client(owner).approve_agreement(body)


def _principal(registry: KeyRegistry, state: ConsentState, keys: DemoKeys, name: str) -> str:
    return state.principal_of(registry, keys.require(name).key_id)


# ---------------------------------------------------------------------------------------------------
# shulian demo
# ---------------------------------------------------------------------------------------------------


def seed_demo(node: Node) -> Counter[str]:
    """Seed the demo city: identities, catalogue, records, agreements, consents; idempotent.

    Returns how many entries of each type were appended (none when everything was already there).
    """
    start = node.reader.size()
    keys = DemoKeys(node).load()
    _seed_identities(node, keys)
    records, agreements, consents = _chain_plan(node, keys)
    if records or agreements or consents:
        with City(node, keys) as city:
            _seed_records(city, records)
            _seed_agreements(city)
            _seed_consents(city)
    keys.save_if_dirty()
    with node.store.reader() as conn:
        return Counter(parse_envelope(leaf).type for _, leaf in Store.entries_between(conn, start, node.reader.size()))


def _seed_identities(node: Node, keys: DemoKeys) -> None:
    admin = node.local_key("admin").signing
    secret = subject_secret(node.home / "subject.secret")
    plan: list[tuple[StoredKey, dict[str, Any]]] = []
    for dept in world.DEPARTMENTS:
        k = _ensure(keys, dept.key, "department", x25519=True)
        plan.append((k, identity_body(k, "department", dept.name)))
    k = _ensure(keys, world.AUDITOR[0], "auditor")
    plan.append((k, identity_body(k, "auditor", world.AUDITOR[1])))
    for i in range(1, world.CITIZENS + 1):
        k = _ensure(keys, world.citizen_key_name(i), "citizen", x25519=True)
        subject = subject_id(world.citizen_id_number(i), secret)
        plan.append((k, identity_body(k, "citizen", world.citizen_public_name(i), subject=subject)))
    keys.save_if_dirty()  # secrets on disk before their keys are registered
    known = registered_keys(node)
    leaves = [sign_envelope(admin, "identity.register", body) for key, body in plan if key.key_id not in known]
    if leaves:
        _commit(node, leaves)
    have = registered_datasets(node)
    leaves = []
    for ds in world.DATASETS:
        if ds.dataset not in have:
            owner = keys.require(ds.owner)
            leaves.append(sign_envelope(owner.signing, "dataset.register", ds.body(owner.key_id)))
    if leaves:
        _commit(node, leaves)


@dataclass(frozen=True)
class _Record:
    dataset: str
    record: str
    subject: str
    values: dict[str, str | int]


def _demo_records(secret: bytes) -> Iterator[_Record]:
    for i in range(1, world.CITIZENS + 1):
        p = world.person(i)
        subject = subject_id(p.id_number, secret)
        for ds in world.person_datasets(p):
            yield _Record(ds, world.record_id(ds, i), subject, world.record_values(ds, p))
    for i in range(1, world.LICENCES + 1):
        code, values = world.licence(i)
        yield _Record("scjgj.business_licence", code, f"org:{code}", values)


def _consenters(s: world.Scenario) -> Iterator[int]:
    """The demo citizens who consent to scenario ``s`` (deterministic)."""
    for i in range(QUIET_CITIZENS + 1, world.CITIZENS + 1):
        p = world.person(i)
        held = world.person_datasets(p)
        if all(d in held for d in s.consenters) and world._rng("consent", s.purposes[0], i).random() < s.share:
            yield i


def _chain_plan(node: Node, keys: DemoKeys) -> tuple[list[_Record], list[world.Scenario], int]:
    """What the demo still has to add: records, agreements and (the number of) consents."""
    secret = subject_secret(node.home / "subject.secret")
    with node.view.read() as (registry, state):
        records = [r for r in _demo_records(secret) if (r.dataset, r.record) not in state.records]
        agreements = [s for s in world.SCENARIOS if s.demo and not _has_agreement(registry, state, keys, s)]
        consents = sum(
            1
            for s in world.SCENARIOS
            if s.demo and s.consent_required
            for i in _consenters(s)
            if not _has_grant(registry, state, keys, s, subject_id(world.citizen_id_number(i), secret))
        )
    return records, agreements, consents


def _has_agreement(registry: KeyRegistry, state: ConsentState, keys: DemoKeys, s: world.Scenario) -> bool:
    owner = _principal(registry, state, keys, s.owner)
    requester = _principal(registry, state, keys, s.requester)
    return any(_matches(a, s, owner, requester) for a in state.agreements_for(requester, s.dataset))


def _has_grant(registry: KeyRegistry, state: ConsentState, keys: DemoKeys, s: world.Scenario, subject: str) -> bool:
    grantee = _principal(registry, state, keys, s.requester)
    return any(g.grant.purpose in s.purposes for g in state.grants_for(subject, grantee, s.dataset))


def _seed_records(city: City, records: list[_Record], workers: int = WORKERS) -> None:
    """Commit ``records`` from ``workers`` threads (their own clients), so that commits are grouped."""
    if not records:
        return
    bar = _progress(len(records), "records")
    city.actor(DATASET_OWNER[records[0].dataset]).datasets()  # the catalogue, read once for all

    def work(share: list[_Record]) -> None:
        clients: dict[str, CityClient] = {}
        for r in share:
            owner = DATASET_OWNER[r.dataset]
            client = clients.get(owner)
            if client is None:
                client = clients[owner] = CityClient(city, city.keys.require(owner))
            client.commit_record(dataset=r.dataset, record=r.record, subject=r.subject, values=r.values)
            bar.update(1)

    with ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(work, records[i::workers]) for i in range(workers)]:
            done.result()
    bar.close()


def _seed_agreements(city: City) -> None:
    at = now()
    for s in world.SCENARIOS:
        if not s.demo:
            continue
        with city.node.view.read() as (registry, state):
            done = _has_agreement(registry, state, city.keys, s)
        if not done:
            approve_scenario(city, s, at)


def _seed_consents(city: City) -> None:
    at = now()
    for s in world.SCENARIOS:
        if not (s.demo and s.consent_required):
            continue
        for i in _consenters(s):
            subject = city.subject(i)
            with city.node.view.read() as (registry, state):
                done = _has_grant(registry, state, city.keys, s, subject)
                grantee = city.keys.require(s.requester).key_id
            if done:
                continue
            rng = world._rng("consent-terms", s.purposes[0], i)
            body = grant_body(
                subject=subject, grantee=grantee, scope={s.dataset: [f for f, _ in s.fields]}, purpose=s.purposes[0],
                valid_from=at, valid_until=at + timedelta(days=rng.choice((90, 180, 365))),
                max_uses=rng.choice((None, None, 3, 5, 10)),
            )  # fmt: skip
            city.actor(world.citizen_key_name(i)).grant_consent(body)


# ---------------------------------------------------------------------------------------------------
# shulian simulate
# ---------------------------------------------------------------------------------------------------

EVENTS: tuple[tuple[str, float], ...] = (
    ("request", 0.46),
    ("consent.grant", 0.12),
    ("consent.revoke", 0.04),
    ("agreement.approve", 0.025),
    ("agreement.revoke", 0.015),
    ("record.update", 0.05),
    ("record.commit", 0.03),
    ("objection.file", 0.04),
    ("objection.resolve", 0.035),
    ("citizen.register", 0.04),
    ("citizen.rotate", 0.04),
    ("department.rotate", 0.01),
    ("citizen.reissue", 0.015),
    ("dataset.register", 0.01),
)
# What a simulated request aims at; the server's decision is what gets counted.
TARGETS: tuple[tuple[str, float], ...] = (
    ("allow", 0.40),
    ("no_agreement", 0.05),
    ("agreement_revoked", 0.04),
    ("agreement_expired", 0.04),
    ("agreement_not_yet_valid", 0.03),
    ("field_out_of_scope", 0.06),
    ("purpose_not_allowed", 0.06),
    ("consent_missing", 0.08),
    ("consent_revoked", 0.05),
    ("consent_expired", 0.04),
    ("consent_uses_exhausted", 0.05),
    ("unknown_key", 0.03),
    ("replay", 0.03),
)
REVOKE_CONSENT = ("不再需要办理该业务", "业务已办结", "担心个人信息被过度使用", "授权范围有误，重新授权")
REVOKE_AGREEMENT = ("应用场景已办结", "需求变更，终止共享", "监督检查发现超范围使用，暂停共享")
OBJECTION_REASONS = {
    "household_address": "户籍地址已迁移，登记信息未更新",
    "address": "居住地址已变更",
    "phone": "联系电话已变更",
    "employer": "工作单位已变更",
    "monthly_allowance": "低保金额与实际发放不符",
    "household_size": "家庭人口数登记有误",
    "months_paid": "缴费月数少计",
    "contribution_base": "缴费基数与工资不符",
    "status": "状态登记有误",
    "balance": "账户余额有误",
    "chronic_conditions": "慢性病登记有误",
}


@dataclass(frozen=True)
class Ask:
    """A request a department will make."""

    dept: str
    dataset: str
    record: str
    fields: list[str]
    purpose: str


def _short(g: GrantState) -> bool:
    """A consent for one counter visit: the simulation waits for it to lapse rather than racing the clock."""
    return g.grant.valid_until - g.grant.valid_from <= SHORT_GRANT


class Simulation:
    """Realistic events for the demo city, each through the API; counts what the service answered."""

    def __init__(self, city: City, rng: random.Random) -> None:
        self.city = city
        self.node = city.node
        self.keys = city.keys
        self.rng = rng
        self.counts: Counter[str] = Counter()
        self.subjects = {
            city.subject(int(name.split("-")[1])): name for name in self.keys.names("citizen-")
        }  # subject -> key name
        self.depts = [d.key for d in world.DEPARTMENTS]
        self.licences = {world.licence(i)[0]: i for i in range(1, world.LICENCES + 1)}
        self.handlers: dict[str, Callable[[], str | None]] = {
            "request": self.request,
            "consent.grant": self.consent_grant,
            "consent.revoke": self.consent_revoke,
            "agreement.approve": self.agreement_approve,
            "agreement.revoke": self.agreement_revoke,
            "record.update": self.record_update,
            "record.commit": self.record_commit,
            "objection.file": self.objection_file,
            "objection.resolve": self.objection_resolve,
            "citizen.register": self.citizen_register,
            "citizen.rotate": lambda: self.rotate("citizen-"),
            "department.rotate": lambda: self.rotate("dept-"),
            "citizen.reissue": self.citizen_reissue,
            "dataset.register": self.dataset_register,
        }

    # -- helpers -----------------------------------------------------------------------------------
    def pick(self, items: list[Any]) -> Any:
        return items[self.rng.randrange(len(items))]

    def choose(self, table: tuple[tuple[str, float], ...]) -> str:
        return self.rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]

    def sample(self, items: list[str], low: int = 1) -> list[str]:
        """A random non-empty subset of ``items``, in their order."""
        k = self.rng.randint(min(low, len(items)), len(items))
        chosen = set(self.rng.sample(items, k))
        return [x for x in items if x in chosen]

    def dept_of(self, registry: KeyRegistry, state: ConsentState) -> dict[str, str]:
        """principal -> demo department key name."""
        return {_principal(registry, state, self.keys, d): d for d in self.depts}

    def demo_records(self, state: ConsentState, dataset: str) -> list[RecordState]:
        return [r for k, r in sorted(state.records.items()) if k[0] == dataset and self.person_of(r) is not None]

    def person_of(self, r: RecordState) -> int | None:
        """The demo person (or licence) index behind a demo record; None for records others made."""
        if r.dataset == "scjgj.business_licence":
            return self.licences.get(r.record)
        prefix = world.RECORD_PREFIX.get(r.dataset)
        if prefix is None or not r.record.startswith(prefix + "-") or r.subject not in self.subjects:
            return None
        tail = r.record[len(prefix) + 1 :]
        return int(tail) if tail.isdigit() else None

    def live_agreements(self, registry: KeyRegistry, state: ConsentState, at: datetime) -> list[AgreementState]:
        depts = self.dept_of(registry, state)
        return [
            a
            for _, a in sorted(state.agreements.items())
            if a.status(at) == LIVE and a.owner in depts and a.requester in depts
        ]

    def outcome(self, registry: KeyRegistry, state: ConsentState, ask: Ask, at: datetime) -> str:
        d = decide(
            state, registry, requester=self.keys.require(ask.dept).key_id, dataset=ask.dataset, record=ask.record,
            fields=ask.fields, purpose=ask.purpose, at=at,
        )  # fmt: skip
        return "allow" if d.allowed else d.reasons[0]

    # -- the loop ------------------------------------------------------------------------------------
    def run(self, events: int, progress: tqdm[Any]) -> Counter[str]:
        for _ in range(events):
            kind = self.choose(EVENTS)
            label = self.handlers[kind]()
            if label is None:
                label = self.request()
            if label is None:
                label = self.request_as("unknown_key")
            assert label is not None
            self.counts[label] += 1
            progress.update(1)
        return self.counts

    # -- requests ------------------------------------------------------------------------------------
    def request(self) -> str | None:
        return self.request_as(self.choose(TARGETS))

    def request_as(self, target: str) -> str | None:
        if target == "unknown_key":
            return self.unknown_key()
        if target == "replay":
            return self.replay()
        ask = self.plan(target)
        if ask is None:
            return self.enable(target)
        return self.send(ask)

    def send(self, ask: Ask) -> str:
        client = self.city.actor(ask.dept)
        try:
            client.request(dataset=ask.dataset, record=ask.record, fields=ask.fields, purpose=ask.purpose)
        except ClientError as exc:
            if exc.status != 403 or "reasons" not in exc.problem:
                raise DemoError(f"request by {ask.dept} for {ask.dataset}/{ask.record} failed: {exc}") from exc
            return "deny:" + ",".join(exc.problem["reasons"])
        return "allow"

    def enable(self, target: str) -> str | None:
        """No request would meet ``target`` now: do what makes it possible (itself an event), if anything."""
        if target == "agreement_revoked":
            return self.agreement_revoke()
        if target == "agreement_not_yet_valid":
            return self.agreement_approve(window="future")
        if target == "consent_revoked":
            return self.consent_revoke()
        if target == "consent_expired":
            return self.consent_grant(short=True)
        if target in ("consent_uses_exhausted", "consent_missing"):
            ask = self.plan("allow")
            return self.send(ask) if ask is not None else self.consent_grant()
        if target == "allow":
            return self.consent_grant()
        return None

    def plan(self, target: str) -> Ask | None:
        """A request the decision would answer with ``target`` now (checked with ``decide``), or None."""
        if target == "consent_expired":
            self.let_short_grants_lapse()
        at = now()
        with self.node.view.read() as (registry, state):
            for ask in self.candidates(registry, state, target, at):
                if self.outcome(registry, state, ask, at) == target:
                    return ask
        return None

    def let_short_grants_lapse(self) -> None:
        """Wait (a second at most) until every one-visit consent has lapsed, so outcomes never race the clock."""
        with self.node.view.read() as (_, state):
            ends = [g.grant.valid_until for g in state.grants.values() if g.revoked_seq is None and _short(g)]
        if ends and max(ends) >= now():
            time.sleep((max(ends) - now()).total_seconds() + 0.001)

    def candidates(self, registry: KeyRegistry, state: ConsentState, target: str, at: datetime) -> Iterator[Ask]:
        depts = self.dept_of(registry, state)
        if target in ("allow", "consent_uses_exhausted", "consent_revoked", "consent_expired"):
            yield from self.grant_asks(registry, state, target, at, depts)
            if target == "allow":
                yield from self.duty_asks(state, at, depts)
            return
        if target == "no_agreement":
            for _ in range(20):
                dept = self.pick(self.depts)
                ds = self.pick(sorted(DATASET_OWNER))
                if DATASET_OWNER[ds] == dept or state.agreements_for(_principal(registry, state, self.keys, dept), ds):
                    continue
                recs = self.demo_records(state, ds)
                if recs:
                    names = list(state.datasets[ds].dataset.field_names)
                    purpose = self.pick([p for s in world.SCENARIOS for p in s.purposes])
                    yield Ask(dept, ds, self.pick(recs).record, self.sample(names), purpose)
            return
        if target in ("agreement_revoked", "agreement_expired", "agreement_not_yet_valid"):
            status = {"agreement_revoked": "revoked", "agreement_expired": "expired"}.get(target, "not_yet_valid")
            found = [
                a
                for _, a in sorted(state.agreements.items())
                if a.status(at) == status and a.requester in depts and a.owner in depts
            ]
            for a in self.rng.sample(found, min(len(found), 5)):
                yield from self.asks_under(state, a, depts, 1)
            return
        live = self.live_agreements(registry, state, at)
        for a in self.rng.sample(live, min(len(live), 8)):
            ds = next(iter(a.agreement.scope))
            scope = list(a.agreement.scope[ds])
            if target == "field_out_of_scope":
                outside = [f for f in state.datasets[ds].dataset.field_names if f not in scope]
                if outside:
                    for ask in self.asks_under(state, a, depts, 1):
                        yield Ask(ask.dept, ds, ask.record, [*self.sample(scope), self.pick(outside)], ask.purpose)
            elif target == "purpose_not_allowed":
                for ask in self.asks_under(state, a, depts, 1):
                    yield Ask(ask.dept, ds, ask.record, ask.fields, self.pick(list(world.STRAY_PURPOSES)))
            elif target == "consent_missing" and a.agreement.consent_required:
                yield from self.asks_under(state, a, depts, 4)

    def asks_under(self, state: ConsentState, a: AgreementState, depts: dict[str, str], n: int) -> Iterator[Ask]:
        """``n`` requests within agreement ``a``'s scope and purposes, for random demo records."""
        ds = next(iter(a.agreement.scope))
        recs = self.demo_records(state, ds)
        for _ in range(n if recs else 0):
            yield Ask(
                depts[a.requester], ds, self.pick(recs).record, self.sample(list(a.agreement.scope[ds])),
                self.pick(list(a.agreement.purposes)),
            )  # fmt: skip

    def duty_asks(self, state: ConsentState, at: datetime, depts: dict[str, str]) -> Iterator[Ask]:
        """Requests under live agreements that need no consent."""
        live = [a for a in state.agreements.values() if a.status(at) == LIVE and not a.agreement.consent_required]
        live = sorted((a for a in live if a.requester in depts and a.owner in depts), key=lambda a: a.seq)
        for a in self.rng.sample(live, min(len(live), 4)):
            yield from self.asks_under(state, a, depts, 1)

    def grant_asks(
        self, registry: KeyRegistry, state: ConsentState, target: str, at: datetime, depts: dict[str, str]
    ) -> Iterator[Ask]:
        """Requests resting on a grant in the state ``target`` calls for (live, exhausted, revoked, expired)."""

        def fits(g: GrantState) -> bool:
            if g.grantee not in depts:
                return False
            if target == "consent_revoked":
                return g.revoked_seq is not None
            if target == "consent_expired":
                return g.revoked_seq is None and at >= g.grant.valid_until
            return not _short(g) and g.status(at) == (EXHAUSTED if target == "consent_uses_exhausted" else LIVE)

        grants = [g for _, g in sorted(state.grants.items()) if fits(g)]
        live = self.live_agreements(registry, state, at)
        for g in self.rng.sample(grants, min(len(grants), 12)):
            ds = next(iter(g.grant.scope))
            under = [
                a
                for a in live
                if a.requester == g.grantee and a.agreement.consent_required and ds in a.agreement.scope
                and g.grant.purpose in a.agreement.purposes
            ]  # fmt: skip
            records = [r for r in state.records_of_subject(g.grant.subject) if r.dataset == ds]
            if not under or not records:
                continue
            allowed = [f for f in g.grant.scope[ds] if f in under[0].agreement.scope[ds]]
            if allowed:
                yield Ask(depts[g.grantee], ds, records[0].record, self.sample(allowed), g.grant.purpose)

    def unknown_key(self) -> str:
        """A request signed by a key the ledger never registered: refused (401), nothing logged."""
        stranger = StoredKey.generate("stranger", x25519=True, role="department")
        client = ShulianClient(BASE_URL, stranger, http=self.city.http, log_key=self.city.log_key)
        ask = self.plan("allow") or self.plan("no_agreement")
        if ask is None:
            ask = Ask("dept-ybj", "gaj.hukou", world.record_id("gaj.hukou", 1), ["name"], "参保核验")
        size = self.node.reader.size()
        try:
            client.request(dataset=ask.dataset, record=ask.record, fields=ask.fields, purpose=ask.purpose)
        except ClientError as exc:
            if exc.status != 401:
                raise DemoError(f"a request by an unregistered key got {exc}, not 401") from exc
        else:
            raise DemoError("a request by an unregistered key was answered")
        if self.node.reader.size() != size:
            raise DemoError("a request by an unregistered key was logged")
        return "refused:unknown_key"

    def replay(self) -> str | None:
        """The same signed request sent twice: the first is decided, the second refused (nonce reused)."""
        ask = self.plan("allow") or self.plan("no_agreement")
        if ask is None:
            return None
        key = self.keys.require(ask.dept)
        body = canonical_bytes(
            {"dataset": ask.dataset, "record": ask.record, "fields": ask.fields, "purpose": ask.purpose}
        )
        http = self.city.http
        request = http.build_request(
            "POST", BASE_URL + "/v1/access/requests", content=body, headers={"content-type": "application/json"}
        )
        request.headers.update(
            sign_request(
                method="POST", url=str(request.url), headers=request.headers, body=body, key=key.signing,
                key_id=key.key_id,
            )
        )  # fmt: skip
        first = http.send(request)
        size = self.node.reader.size()
        second = http.send(request)
        if first.status_code not in (201, 403) or second.status_code != 401:
            raise DemoError(f"replayed request: first {first.status_code}, second {second.status_code} (want 401)")
        if self.node.reader.size() != size:
            raise DemoError("a replayed request was logged")
        return "refused:replay"

    # -- consents ------------------------------------------------------------------------------------
    def consent_grant(self, short: bool = False) -> str | None:
        """A citizen consents to a live agreement that needs it, for one of their records."""
        at = now()
        with self.node.view.read() as (registry, state):
            depts = self.dept_of(registry, state)
            needs = [a for a in self.live_agreements(registry, state, at) if a.agreement.consent_required]
            for a in self.rng.sample(needs, min(len(needs), 6)):
                ds = next(iter(a.agreement.scope))
                purpose = self.pick(list(a.agreement.purposes))
                recs = self.demo_records(state, ds)
                for r in self.rng.sample(recs, min(len(recs), 6)):
                    live = [
                        g
                        for g in state.grants_for(r.subject, a.requester, ds)
                        if g.grant.purpose == purpose
                        and ((_short(g) and g.revoked_seq is None) or g.status(at) in (LIVE, "not_yet_valid"))
                    ]
                    if not live:
                        citizen = self.subjects[r.subject]
                        grantee = self.keys.require(depts[a.requester]).key_id
                        fields = list(a.agreement.scope[ds])
                        break
                else:
                    continue
                break
            else:
                return None
        if self.rng.random() < 0.3:
            fields = self.sample(fields)
        until = at + (SHORT_GRANT if short else timedelta(days=self.pick([30, 90, 180, 365])))
        body = grant_body(
            subject=r.subject, grantee=grantee, scope={ds: fields}, purpose=purpose, valid_from=at, valid_until=until,
            max_uses=None if short else self.pick([None, None, 1, 2, 3, 5, 10]),
        )  # fmt: skip
        self.city.actor(citizen).grant_consent(body)
        return "consent.grant"

    def consent_revoke(self) -> str | None:
        at = now()
        with self.node.view.read() as (_, state):
            grants = [
                g
                for _, g in sorted(state.grants.items())
                if g.revoked_seq is None
                and not _short(g)
                and g.status(at) in (LIVE, EXHAUSTED)
                and g.grant.subject in self.subjects
            ]
        if not grants:
            return None
        g = self.pick(grants)
        self.city.actor(self.subjects[g.grant.subject]).revoke_consent(g.seq, self.pick(list(REVOKE_CONSENT)))
        return "consent.revoke"

    # -- agreements ----------------------------------------------------------------------------------
    def agreement_approve(self, window: str | None = None) -> str | None:
        """Approve a scenario that has no agreement in force (or, for ``window`` future, a coming one)."""
        at = now()
        with self.node.view.read() as (registry, state):
            open_ = []
            for s in world.SCENARIOS:
                if s.window == "expired" or (window is not None and s.window != window):
                    continue
                owner = _principal(registry, state, self.keys, s.owner)
                requester = _principal(registry, state, self.keys, s.requester)
                want = "not_yet_valid" if s.window == "future" else LIVE
                if not any(
                    _matches(a, s, owner, requester) and a.status(at) == want
                    for a in state.agreements_for(requester, s.dataset)
                ):
                    open_.append(s)
        if not open_:
            return None
        approve_scenario(self.city, self.pick(open_), at)
        return "agreement.approve"

    def agreement_revoke(self) -> str | None:
        at = now()
        with self.node.view.read() as (registry, state):
            depts = self.dept_of(registry, state)
            live = [(a.seq, depts[a.owner]) for a in self.live_agreements(registry, state, at)]
        if not live:
            return None
        seq, owner = self.pick(live)
        self.city.actor(owner).revoke_agreement(seq, self.pick(list(REVOKE_AGREEMENT)))
        return "agreement.revoke"

    # -- records and objections ------------------------------------------------------------------------
    def values_of(self, r: RecordState, version: int) -> dict[str, str | int]:
        index = self.person_of(r)
        assert index is not None
        if r.dataset == "scjgj.business_licence":
            values = world.licence(index)[1]
            if version > 1:
                values["status"] = world._rng("licence-update", index, version).choice(("存续", "注销", "吊销"))
            return values
        return world.record_values(r.dataset, world.person(index), version)

    def commit_version(self, r: RecordState) -> int:
        """The owner commits the next version of record ``r``; returns its seq."""
        out = self.city.actor(DATASET_OWNER[r.dataset]).commit_record(
            dataset=r.dataset, record=r.record, subject=r.subject, values=self.values_of(r, r.version + 1),
            version=r.version + 1, replaces=r.seq,
        )  # fmt: skip
        return int(out["seq"])

    def record_update(self) -> str | None:
        with self.node.view.read() as (_, state):
            ds = self.pick(sorted(DATASET_OWNER))
            recs = self.demo_records(state, ds)
            r = self.pick(recs) if recs else None
        if r is None:
            return None
        self.commit_version(r)
        return "record.update"

    def record_commit(self) -> str | None:
        """A department records a citizen it holds no record of yet (often one registered lately)."""
        with self.node.view.read() as (_, state):
            names = self.keys.names("citizen-")
            for name in self.rng.sample(names, min(len(names), 10)):
                index = int(name.split("-")[1])
                p = world.person(index)
                missing = [d for d in world.person_datasets(p) if (d, world.record_id(d, index)) not in state.records]
                if missing:
                    break
            else:
                return None
        ds = missing[0]
        self.city.actor(DATASET_OWNER[ds]).commit_record(
            dataset=ds, record=world.record_id(ds, index), subject=self.city.subject(index),
            values=world.record_values(ds, p),
        )  # fmt: skip
        return "record.commit"

    def objection_file(self) -> str | None:
        with self.node.view.read() as (_, state):
            by_name = {name: subject for subject, name in self.subjects.items()}
            subject = by_name[self.pick(sorted(by_name))]
            recs = [r for r in state.records_of_subject(subject) if self.person_of(r) is not None]
            if not recs:
                return None
            r = self.pick(recs)
            names = [f for f in state.datasets[r.dataset].dataset.field_names if f in OBJECTION_REASONS]
        if not names:
            return None
        fields = self.rng.sample(names, min(len(names), self.rng.randint(1, 2)))
        body = objection_body(
            subject=subject, dataset=r.dataset, record=r.record, fields=fields,
            reason="；".join(OBJECTION_REASONS[f] for f in fields),
        )  # fmt: skip
        self.city.actor(self.subjects[subject]).file_objection(body)
        return "objection.file"

    def objection_resolve(self) -> str | None:
        with self.node.view.read() as (registry, state):
            depts = self.dept_of(registry, state)
            open_ = [
                (o, state.records[(o.objection.dataset, o.objection.record)])
                for _, o in sorted(state.objections.items())
                if o.is_open and o.owner in depts
            ]
            open_ = [(o, r) for o, r in open_ if self.person_of(r) is not None]
        if not open_:
            return None
        o, r = self.pick(open_)
        owner = self.city.actor(depts[o.owner])
        if self.rng.random() < 0.6:
            seq = self.commit_version(r)
            owner = self.city.actor(depts[o.owner])
            owner.resolve_objection(
                resolution_body(
                    objection=o.seq, outcome="corrected", reasons=["经核实，已更正登记信息"], correction=seq
                )
            )
            return "objection.corrected"
        owner.resolve_objection(
            resolution_body(objection=o.seq, outcome="rejected", reasons=["经核实，原登记信息无误，维持原记录"])
        )
        return "objection.rejected"

    # -- identities and catalogue ----------------------------------------------------------------------
    def citizen_register(self) -> str:
        index = len(self.keys.names("citizen-")) + 1
        name = world.citizen_key_name(index)
        key = self.keys.take_spare(name, "citizen")
        subject = self.city.subject(index)
        body = identity_body(key, "citizen", world.citizen_public_name(index), subject=subject)
        self.city.admin().append("/v1/entries", "identity.register", body)
        self.subjects[subject] = name
        return "citizen.register"

    def rotate(self, prefix: str) -> str:
        old = self.keys.require(self.pick(self.keys.names(prefix)))
        role = "department" if prefix == "dept-" else "citizen"
        new = self.keys.take_spare(old.name, role)
        body = {"key_id": new.key_id, "replaces": old.key_id, "ed25519": new.public_b64, "x25519": new.x25519_b64}
        self.city.client(old).append("/v1/entries", "identity.rotate", body)
        return f"{role}.rotate"

    def citizen_reissue(self) -> str:
        """A citizen lost their device: the admin revokes the key and registers a new one."""
        old = self.keys.require(self.pick(self.keys.names("citizen-")))
        index = int(old.name.split("-")[1])
        admin = self.city.admin()
        admin.append("/v1/entries", "identity.revoke", {"key_id": old.key_id, "reason": "lost device"})
        new = self.keys.take_spare(old.name, "citizen")
        body = identity_body(new, "citizen", world.citizen_public_name(index), subject=self.city.subject(index))
        self.city.admin().append("/v1/entries", "identity.register", body)
        return "citizen.reissue"

    def dataset_register(self) -> str | None:
        owner_name, title, fields = self.pick(list(world.NEW_DATASET_TITLES))
        with self.node.view.read() as (_, state):
            have = set(state.datasets)
        prefix = owner_name.removeprefix("dept-")
        number = sum(1 for d in have if d.startswith(prefix + ".extra")) + 1
        ds = world.Dataset(
            f"{prefix}.extra{number:03d}", owner_name, f"{title}（{number}）", fields, self.pick(list(world.LEVELS)),
            True, "每月",
        )  # fmt: skip
        owner = self.city.actor(owner_name)
        owner.register_dataset(ds.body(owner.key.key_id if owner.key else ""))
        self.city.catalogue = None
        return "dataset.register"


def simulate(node: Node, events: int, seed: int | None = None) -> dict[str, int]:
    """Drive ``events`` realistic events through the API for the demo city; counts per outcome."""
    keys = DemoKeys(node).load()
    if not keys.keys:
        raise DemoError("run `shulian demo` first: simulate acts for the demo city")
    rng = random.Random(seed)
    bar = _progress(events, "simulate")
    try:
        with City(node, keys) as city:
            counts = Simulation(city, rng).run(events, bar)
    finally:
        bar.close()
        keys.save_if_dirty()
    return dict(counts)
