"""ASGI entry point for several worker processes: each builds its own node from the environment."""

from __future__ import annotations

import contextlib
import os
import sys

from fastapi import FastAPI

from api.app import create_app
from api.node import Node

# How long a thread may hold the GIL while another waits for it (CPython's default is 5 ms).
SWITCH_INTERVAL_S = 0.0002


def tune_interpreter() -> None:
    """Shorten the GIL switch interval in a serving process.

    The committing thread releases the GIL for every SQLite statement and COMMIT, and gets it back
    only once the thread holding it (the event loop, a request thread parsing JSON) gives it up: up to
    a whole switch interval each time, while every request in the batch waits on that thread.
    """
    sys.setswitchinterval(SWITCH_INTERVAL_S)


# How much lower an HTTP worker's CPU priority is than its writer process's (os.nice, 0-19).
WORKER_NICENESS = 5


def yield_to_writer() -> None:
    """Lower this HTTP worker's CPU priority when a writer process decides its access requests.

    The writers of all replicas queue for one lock, and a release holds it while its writer decides,
    builds and writes it and the database runs the statements: with the cores contended, every
    moment the lock holder or the database waits for a core lengthens every other writer's wait.
    Below them, the HTTP workers take the cores those two leave idle (an HTTP worker's request waits
    for its writer anyway). Without a writer process (``SHULIAN_WRITER_SOCKET`` unset) nothing changes.
    """
    from api.writer import SOCKET_VARIABLE

    if os.environ.get(SOCKET_VARIABLE):
        with contextlib.suppress(OSError):
            os.nice(WORKER_NICENESS)


def app_from_env() -> FastAPI:
    """The app over SHULIAN_DB and SHULIAN_HOME (uvicorn ``--factory``; one node per worker)."""
    tune_interpreter()
    yield_to_writer()
    node = Node()
    node.view.warm()  # the ledger into memory now, not in the first request (/readyz waits for it)
    return create_app(node)
