"""Principals: the identity behind a chain of rotated keys, named by the first key of the chain.

Keys rotate (``identity.rotate``), so an agreement approved for a department's old key must still
hold for its new one, and a citizen's new key may revoke a grant signed with the old. The consent
rules therefore compare principals, never raw key ids. Derived from ``KeyRegistry.keys`` without
changing the registry.
"""

from __future__ import annotations

from datetime import datetime

from keys.registry import KeyRecord, KeyRegistry
from ledger.envelope import Envelope


def key_valid_at(rec: KeyRecord, at: datetime) -> bool:
    """Whether ``rec`` could sign at ``at`` (registered, not yet rotated away or revoked)."""
    return rec.valid_from <= at and (rec.valid_until is None or at < rec.valid_until)


def replaces_map(registry: KeyRegistry) -> dict[str, str]:
    """``{new key id: the key id it replaced}`` for every rotation in the registry (one pass)."""
    return {rec.replaced_by: kid for kid, rec in registry.keys.items() if rec.replaced_by is not None}


def principal(registry: KeyRegistry, key_id: str, replaces: dict[str, str] | None = None) -> str:
    """The first key id of ``key_id``'s rotation chain (``key_id`` itself when it replaced none)."""
    back = replaces_map(registry) if replaces is None else replaces
    seen = {key_id}
    while key_id in back:
        key_id = back[key_id]
        if key_id in seen:  # impossible in a registry built by its own rules; never loop
            break
        seen.add(key_id)
    return key_id


def current_key(registry: KeyRegistry, key_id: str) -> KeyRecord | None:
    """The last key of the rotation chain through ``key_id`` (None when ``key_id`` is unknown)."""
    rec = registry.keys.get(key_id)
    seen: set[str] = set()
    while rec is not None and rec.replaced_by is not None and rec.key_id not in seen:
        seen.add(rec.key_id)
        nxt = registry.keys.get(rec.replaced_by)
        if nxt is None:
            break
        rec = nxt
    return rec


class PrincipalIndex:
    """Principals of every key, kept up to date from identity entries: O(1) a look-up.

    ``observe`` each identity entry in ledger order; a key never observed (the index was not fed the
    identity entries) makes ``of`` rebuild the map from the registry once.
    """

    def __init__(self) -> None:
        self._of: dict[str, str] = {}

    def observe(self, env: Envelope) -> None:
        body = env.body
        if env.type == "identity.register":
            self._of[body["key_id"]] = body["key_id"]
        elif env.type == "identity.rotate":
            old = body["replaces"]
            self._of[body["key_id"]] = self._of.get(old, old)

    def forget(self, env: Envelope) -> None:
        """Take back ``observe(env)``, the last identity entry observed."""
        if env.type in ("identity.register", "identity.rotate"):
            self._of.pop(env.body["key_id"], None)

    def of(self, registry: KeyRegistry, key_id: str) -> str:
        """The principal of ``key_id`` (``key_id`` itself for a key the registry does not know)."""
        found = self._of.get(key_id)
        if found is not None:
            return found
        if key_id in registry.keys:
            back = replaces_map(registry)
            for kid in registry.keys:
                self._of.setdefault(kid, principal(registry, kid, back))
            return self._of[key_id]
        return key_id
