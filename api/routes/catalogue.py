"""The data resource catalogue (政务数据目录): datasets departments register."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.auth import CallerDep, require
from api.deps import NodeDep
from api.routes.common import ERRORS, SIGNED_HEADERS, envelope_body, envelope_example
from api.schemas import AppendOut
from api.services import submit

router = APIRouter(prefix="/v1/datasets", tags=["catalogue"])


class DatasetOut(BaseModel):
    seq: int
    dataset: str
    owner: str
    title: str
    fields: list[dict[str, str]]
    level: str
    personal: bool
    update_frequency: str


@router.get("", responses=ERRORS, summary="The catalogue", description=SIGNED_HEADERS)
def list_datasets(node: NodeDep, caller: CallerDep) -> list[DatasetOut]:
    with node.view.read() as (_, state):
        return [
            DatasetOut(seq=d.seq, **{k: v for k, v in d.dataset.to_body().items() if k in DatasetOut.model_fields})
            for d in sorted(state.datasets.values(), key=lambda d: d.seq)
        ]


_EXAMPLE: dict[str, Any] = {
    "dataset": "mzj.dibao",
    "owner": "3f1c0a5e9b2d4c6f8a1b3c5d7e9f0a2b",
    "title": "最低生活保障对象信息",
    "fields": [{"name": "name", "sensitivity": "high"}, {"name": "monthly_allowance", "sensitivity": "medium"}],
    "level": "重要",
    "personal": True,
    "update_frequency": "每月",
}


@router.post(
    "",
    status_code=201,
    responses=ERRORS,
    summary="Register a dataset (department, signed dataset.register)",
    description=SIGNED_HEADERS,
    openapi_extra=envelope_body(envelope_example("dataset.register", _EXAMPLE)),
)
def register_dataset(node: NodeDep, caller: CallerDep) -> AppendOut:
    require(caller, "department")
    return submit(node, caller, caller.body, ["dataset.register"])
