"""Roles (§9) and which role may sign which entry type."""

from __future__ import annotations

ROLES = frozenset({"admin", "department", "citizen", "auditor", "witness", "service"})

# Entry types other than identity.* and the roles whose keys may sign them.
SIGNER_ROLES: dict[str, frozenset[str]] = {
    "dataset.register": frozenset({"department"}),
    "record.commit": frozenset({"department"}),
    "agreement.approve": frozenset({"department"}),
    "agreement.revoke": frozenset({"department"}),
    "consent.grant": frozenset({"citizen"}),
    "consent.revoke": frozenset({"citizen"}),
    "access.decision": frozenset({"service"}),
    "usage.release": frozenset({"service"}),
    "objection.file": frozenset({"citizen"}),
    "objection.resolve": frozenset({"department"}),
}
