"""`shulian demo` and `shulian simulate`: a believable city on the ledger, through the real sequencer."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from api import world
from api.node import Node, identity_body
from keys.keystore import StoredKey, load_keystore, save_keystore
from keys.subject import subject_id, subject_secret
from ledger.envelope import parse_envelope, sign_envelope
from ledger.errors import LedgerError
from ledger.store import Store


class DemoError(LedgerError):
    status = 409


@dataclass
class DemoKeys:
    """The demo city's private keys (one encrypted keystore); the last key of a name is its current one."""

    node: Node
    keys: list[StoredKey] = field(default_factory=list)

    @property
    def path(self) -> Any:
        return self.node.key_path("demo")

    def load(self) -> DemoKeys:
        if self.path.exists():
            self.keys = load_keystore(self.path)
        return self

    def save(self) -> None:
        save_keystore(self.path, self.keys)

    def current(self, name: str) -> StoredKey | None:
        for key in reversed(self.keys):
            if key.name == name:
                return key
        return None

    def names(self, prefix: str) -> list[str]:
        return sorted({k.name for k in self.keys if k.name.startswith(prefix)})


def _ensure(keys: DemoKeys, name: str, role: str, *, x25519: bool = False) -> StoredKey:
    key = keys.current(name)
    if key is None:
        key = StoredKey.generate(name, x25519=x25519, role=role)
        keys.keys.append(key)
    return key


def _commit(node: Node, leaves: list[bytes]) -> int:
    """Append ``leaves`` in one group commit; any refusal is an error naming the entry."""
    done = 0
    for leaf, result in zip(leaves, node.sequencer.append_many(leaves), strict=True):
        if isinstance(result, LedgerError):
            env = parse_envelope(leaf)
            raise DemoError(f"{env.type} by {env.actor} refused: {result}")
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


def seed_demo(node: Node) -> int:
    """Register the demo city's identities and catalogue; idempotent. Returns entries appended."""
    admin = node.local_key("admin").signing
    keys = DemoKeys(node).load()
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
    keys.save()  # secrets on disk before their keys are registered
    known = registered_keys(node)
    leaves = [sign_envelope(admin, "identity.register", body) for key, body in plan if key.key_id not in known]
    appended = _commit(node, leaves) if leaves else 0
    have = registered_datasets(node)
    leaves = []
    for ds in world.DATASETS:
        if ds.dataset not in have:
            owner = keys.current(ds.owner)
            assert owner is not None
            leaves.append(sign_envelope(owner.signing, "dataset.register", ds.body(owner.key_id)))
    if leaves:
        appended += _commit(node, leaves)
    return appended


def _progress(total: int, what: str) -> tqdm[Any]:
    return tqdm(total=total, desc=what, unit="ev", file=sys.stderr, disable=not sys.stderr.isatty() and total < 1000)


def simulate(node: Node, events: int, seed: int | None = None, batch: int = 200) -> dict[str, int]:
    """Append ``events`` realistic identity and catalogue events, in group commits of ``batch``."""
    keys = DemoKeys(node).load()
    if not keys.keys:
        raise DemoError("run `shulian demo` first: simulate acts for the demo city")
    rng = random.Random(seed)
    admin = node.local_key("admin").signing
    secret = subject_secret(node.home / "subject.secret")
    have = registered_datasets(node)
    counts: dict[str, int] = {}
    bar = _progress(events, "simulate")
    left = events
    while left > 0:
        n = min(batch, left)
        leaves: list[bytes] = []
        for kind, leaf_list in _events(rng, n, keys, admin, secret, have):
            counts[kind] = counts.get(kind, 0) + 1
            leaves.extend(leaf_list)
        keys.save()
        _commit(node, leaves)
        left -= n
        bar.update(n)
    bar.close()
    return counts


def _events(
    rng: random.Random, n: int, keys: DemoKeys, admin: Any, secret: bytes, have: set[str]
) -> Iterator[tuple[str, list[bytes]]]:
    """``n`` events, each a kind and the entries it appends (a re-issue is a revoke then a register)."""
    busy: set[str] = set()  # a key acts at most once per batch, so rotations never race each other

    def pick(prefix: str) -> StoredKey | None:
        names = [x for x in keys.names(prefix) if x not in busy]
        if not names:
            return None
        name = rng.choice(names)
        busy.add(name)
        return keys.current(name)

    def new_citizen() -> tuple[str, list[bytes]]:
        index = len(keys.names("citizen-")) + 1
        k = StoredKey.generate(world.citizen_key_name(index), x25519=True, role="citizen")
        keys.keys.append(k)
        busy.add(k.name)
        subject = subject_id(world.citizen_id_number(index), secret)
        body = identity_body(k, "citizen", world.citizen_public_name(index), subject=subject)
        return "citizen.register", [sign_envelope(admin, "identity.register", body)]

    def rotate(prefix: str) -> tuple[str, list[bytes]] | None:
        old = pick(prefix)
        if old is None:
            return None
        new = StoredKey.generate(old.name, x25519=old.x25519 is not None, role=old.role)
        keys.keys.append(new)
        body = {"key_id": new.key_id, "replaces": old.key_id, "ed25519": new.public_b64}
        if new.x25519_b64 is not None:
            body["x25519"] = new.x25519_b64
        return f"{old.role}.rotate", [sign_envelope(old.signing, "identity.rotate", body)]

    def reissue() -> tuple[str, list[bytes]] | None:
        old = pick("citizen-")
        if old is None:
            return None
        new = StoredKey.generate(old.name, x25519=True, role="citizen")
        keys.keys.append(new)
        index = int(old.name.split("-")[1])
        subject = subject_id(world.citizen_id_number(index), secret)
        revoke = sign_envelope(admin, "identity.revoke", {"key_id": old.key_id, "reason": "lost device"})
        body = identity_body(new, "citizen", world.citizen_public_name(index), subject=subject)
        return "citizen.reissue", [revoke, sign_envelope(admin, "identity.register", body)]

    def new_dataset() -> tuple[str, list[bytes]] | None:
        owner_name, title, fields = rng.choice(world.NEW_DATASET_TITLES)
        owner = keys.current(owner_name)
        if owner is None or owner_name in busy:
            return None
        number = sum(1 for d in have if d.startswith(owner_name[5:] + ".")) + 1
        dataset = f"{owner_name[5:]}.extra{number:03d}"
        have.add(dataset)
        ds = world.Dataset(dataset, owner_name, f"{title}（{number}）", fields, rng.choice(world.LEVELS), True, "每月")
        return "dataset.register", [sign_envelope(owner.signing, "dataset.register", ds.body(owner.key_id))]

    choices: list[tuple[float, Callable[[], tuple[str, list[bytes]] | None]]] = [
        (0.40, new_citizen),
        (0.25, lambda: rotate("citizen-")),
        (0.10, lambda: rotate("dept-")),
        (0.10, reissue),
        (0.15, new_dataset),
    ]
    made = 0
    while made < n:
        r = rng.random()
        for weight, make in choices:
            if r < weight:
                event = make()
                break
            r -= weight
        else:
            event = new_citizen()
        if event is not None:
            made += 1
            yield event
