"""Demo sign-in for the demo city, in development only: hand the browser a demo identity's key.

``SHULIAN_ENV=development`` (what ``make run`` sets) enables it; any other value, or none, refuses.
The chosen identity's current key is read from the demo keystore that ``shulian demo`` wrote and
handed over as a browser keystore (PBKDF2-SHA256 + AES-256-GCM) under a fresh random passphrase,
so the page opens it exactly as it opens a keystore file a user picks.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from api import world
from api.node import Node
from consent.principal import key_valid_at
from keys.keystore import browser_keystore, load_keystore
from keys.registry import KeyRecord
from ledger.errors import LedgerError
from ledger.timefmt import now

DEVELOPMENT = "development"
DEMO_CITIZENS = 12  # the first citizens of the demo city offered for sign-in


class DemoUnavailable(LedgerError):
    status = 404
    title = "Demo sign-in unavailable"


def environment() -> str:
    return os.environ.get("SHULIAN_ENV", "").strip() or "unset"


def require_development() -> None:
    env = environment()
    if env != DEVELOPMENT:
        raise DemoUnavailable(
            f"demo sign-in is offered only when SHULIAN_ENV=development (here SHULIAN_ENV is {env});"
            " sign in with your own key"
        )


@dataclass(frozen=True)
class DemoIdentity:
    name: str  # the demo keystore's name for it, e.g. citizen-0003
    role: str
    label: str  # the public name on the ledger
    key_id: str
    person: str | None = None  # citizens: the (synthetic) person's name, for the demo list only
    holds: tuple[str, ...] = ()  # citizens: titles of the datasets holding a record about them
    grants: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "label": self.label,
            "key_id": self.key_id,
            "person": self.person,
            "holds": list(self.holds),
            "grants": self.grants,
        }


def _wanted() -> list[tuple[str, str, str]]:
    """(keystore name, role, public name) of the identities offered, in the order shown."""
    out = [(d.key, "department", d.name) for d in world.DEPARTMENTS]
    out.append((world.AUDITOR[0], "auditor", world.AUDITOR[1]))
    out += [(world.citizen_key_name(i), "citizen", world.citizen_public_name(i)) for i in range(1, DEMO_CITIZENS + 1)]
    return out


def _person_name(name: str) -> str | None:
    """The synthetic person behind a demo citizen's key (shown in the demo list only)."""
    if not name.startswith("citizen-"):
        return None
    return world.person(int(name.removeprefix("citizen-"))).name


def demo_identities(node: Node) -> list[DemoIdentity]:
    """The demo city's departments, auditor and first citizens whose keys are valid now."""
    at = now()
    out: list[DemoIdentity] = []
    with node.view.read() as (registry, state):
        current: dict[tuple[str, str], KeyRecord] = {}
        for key in registry.keys.values():
            if key_valid_at(key, at):
                current[(key.role, key.name)] = key
        for name, role, public in _wanted():
            rec = current.get((role, public))
            if rec is None:
                continue
            holds: tuple[str, ...] = ()
            grants = 0
            if rec.subject is not None:
                titles = []
                for r in state.records_of_subject(rec.subject):
                    ds = state.datasets.get(r.dataset)
                    titles.append(ds.dataset.title if ds else r.dataset)
                holds = tuple(dict.fromkeys(titles))
                grants = len(state.grants_of_subject(rec.subject))
            out.append(DemoIdentity(name, role, public, rec.key_id, _person_name(name), holds, grants))
    return out


def demo_keystore(node: Node, name: str) -> dict[str, Any]:
    """The browser keystore of demo identity ``name``'s current key and the passphrase that opens it."""
    chosen = next((i for i in demo_identities(node) if i.name == name), None)
    if chosen is None:
        raise DemoUnavailable(f"no demo identity {name!r} with a valid key; run `shulian demo`")
    path = node.key_path("demo")
    if not path.exists():
        raise DemoUnavailable("there is no demo keystore here; run `shulian demo` first")
    key = next((k for k in load_keystore(path) if k.key_id == chosen.key_id), None)
    if key is None:
        raise DemoUnavailable(f"the demo keystore does not hold the current key of {name}; run `shulian demo`")
    key.name, key.role = name, chosen.role
    secret = secrets.token_urlsafe(18)
    return {
        "identity": chosen.to_json(),
        "passphrase": secret,
        "keystore": browser_keystore([key], secret.encode()),
    }
