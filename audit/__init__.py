"""Audit: the offline verifier (pure, ``audit.verifier``), its parallel runner, sources and the export;
the anomaly rules (``audit.rules``) and usage reports (``audit.report``), pure as well.

``verify_database``, ``verify_export`` and ``write_export`` are loaded on first use, so importing the
pure verifier never pulls in the database layer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["verify_database", "verify_export", "write_export"]


def __getattr__(name: str) -> Any:
    if name in ("verify_database", "verify_export"):
        from audit import sources

        return getattr(sources, name)
    if name == "write_export":
        from audit.export import write_export

        return write_export
    raise AttributeError(f"module 'audit' has no attribute {name!r}")
