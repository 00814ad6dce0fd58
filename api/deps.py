"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.node import Node


async def get_node(request: Request) -> Node:
    """The app's node (async: FastAPI runs a plain ``def`` dependency in the thread pool, a hop per request)."""
    node: Node = request.app.state.node
    return node


NodeDep = Annotated[Node, Depends(get_node)]
