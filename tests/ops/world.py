"""A small city driven through a live server: the real appends, a deny and an allow with its release."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from api.client import ClientError, ShulianClient
from api.node import identity_body
from api.world import DATASETS
from keys.keystore import StoredKey, load_key
from ledger.envelope import sign_envelope
from ledger.timefmt import format_ts, now
from tests.support import stored_key

DATASET = "mzj.dibao"
FIELDS = ["name", "monthly_allowance"]
PURPOSE = "住房保障资格审核"
SUBJECT = "sub:" + "5a" * 32


@dataclass
class City:
    owner: StoredKey
    requester: StoredKey
    citizen: StoredKey
    appends: int  # entries the server appended for it
    deny_reasons: list[str]


def post_entry(url: str, leaf: bytes) -> None:
    response = httpx.post(url + "/v1/entries", content=leaf, timeout=60)
    assert response.status_code == 201, response.text


def build_city(url: str, home: Path, passphrase: bytes, tag: str) -> City:
    """Register three keys, a dataset, a record; a request denied, an agreement and consent, a request allowed."""
    admin = load_key(home / "keys" / "admin.json", "admin", passphrase)
    owner = stored_key(f"{tag}-owner", "department")
    requester = stored_key(f"{tag}-requester", "department")
    citizen = stored_key(f"{tag}-citizen", "citizen", x25519=True)
    for key, role, extra in ((owner, "department", {}), (requester, "department", {}), (citizen, "citizen", {})):
        if role == "citizen":
            extra = {"subject": SUBJECT}
        post_entry(url, sign_envelope(admin.signing, "identity.register", identity_body(key, role, key.name, **extra)))
    as_owner = ShulianClient(url, owner, timeout=60)
    spec = next(d for d in DATASETS if d.dataset == DATASET)
    as_owner.register_dataset(spec.body(owner.key_id))
    values = {
        "name": "测试0001",
        "id_number": "330106199001011234",
        "household_size": 2,
        "monthly_allowance": 640,
        "approved_on": "2025-01-01",
        "address": "浙江省杭州市西湖区文三路100号",
        "phone": "13800000000",
    }
    as_owner.commit_record(dataset=DATASET, record="rec-1", subject=SUBJECT, values=values)
    as_requester = ShulianClient(url, requester, timeout=60)
    with pytest.raises(ClientError) as denied:
        as_requester.request(dataset=DATASET, record="rec-1", fields=FIELDS, purpose=PURPOSE)
    assert denied.value.status == 403
    reasons = list((denied.value.problem or {}).get("reasons", []))
    t0 = now()
    window = {"valid_from": format_ts(t0 - timedelta(days=1)), "valid_until": format_ts(t0 + timedelta(days=30))}
    as_owner.approve_agreement(
        {
            "owner": owner.key_id,
            "requester": requester.key_id,
            "scope": {DATASET: {"name": "masked", "monthly_allowance": "full"}},
            "purposes": [PURPOSE],
            "legal_basis": "履行职责",
            "consent_required": True,
            "commitment": None,
            **window,
        }
    )
    ShulianClient(url, citizen, timeout=60).grant_consent(
        {
            "subject": SUBJECT,
            "grantee": requester.key_id,
            "scope": {DATASET: FIELDS},
            "purpose": PURPOSE,
            "max_uses": None,
            **window,
        }
    )
    released = as_requester.request(dataset=DATASET, record="rec-1", fields=FIELDS, purpose=PURPOSE)
    assert released.values["monthly_allowance"] == 640
    # 3 identities, dataset, record, deny decision, agreement, consent, allow decision and release
    return City(owner, requester, citizen, 10, reasons)
