"""ASGI entry point for several worker processes: each builds its own node from the environment."""

from __future__ import annotations

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


def app_from_env() -> FastAPI:
    """The app over SHULIAN_DB and SHULIAN_HOME (uvicorn ``--factory``; one node per worker)."""
    tune_interpreter()
    return create_app(Node())
