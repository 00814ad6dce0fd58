"""The objection life cycle runs against the access tests' live server and city (real uvicorn on loopback)."""

from __future__ import annotations

from tests.access.conftest import live_server, world

__all__ = ["live_server", "world"]
