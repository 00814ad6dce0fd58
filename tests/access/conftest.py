"""Fixtures of the access tests: a real uvicorn server on loopback and the world built through it.

The server runs in a thread of the test process (so a test can also look at the node directly) and
serves whichever node the current test gives it; it is started once per module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.client import ShulianClient
from api.node import Node
from keys.keystore import StoredKey
from tests.access.world import World, build_world


class LiveServer:
    """uvicorn on 127.0.0.1 (an ephemeral port) in a daemon thread, serving ``app.state.node``."""

    def __init__(self) -> None:
        self.app: FastAPI | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def serve(self, node: Node) -> str:
        if self.app is None:
            self.app = create_app(node)
            config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
            self._server = uvicorn.Server(config)
            self._thread = threading.Thread(target=self._server.run, daemon=True)
            self._thread.start()
            deadline = time.monotonic() + 20
            while not self._server.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.01)
            port = self._server.servers[0].sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
        self.app.state.node = node
        return self.url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    server = LiveServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(live_server: LiveServer, node: Node) -> Iterator[httpx.Client]:
    """A plain httpx client on the live server (for hand-made requests)."""
    with httpx.Client(base_url=live_server.serve(node), timeout=30) as client:
        yield client


@pytest.fixture
def world(live_server: LiveServer, node: Node, tmp_path: Path) -> Iterator[World]:
    """The city of ``tests.access.world`` on ``node`` (SQLite and PostgreSQL), over the live server."""
    url = live_server.serve(node)

    def make_client(key: StoredKey) -> ShulianClient:
        return ShulianClient(url, key, timeout=30)

    w = build_world(node, make_client)
    try:
        yield w
    finally:
        w.close()
