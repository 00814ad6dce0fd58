"""ASGI entry point for several worker processes: each builds its own node from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from api.node import Node


def app_from_env() -> FastAPI:
    """The app over SHULIAN_DB and SHULIAN_HOME (uvicorn ``--factory``; one node per worker)."""
    return create_app(Node())
