"""Pseudonymous subject ids from national ID numbers (GB 11643-1999 check digit, keyed hash)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keys.subject import id_check_digit, subject_id, subject_secret, valid_id_number

# A well-known sample number from GB 11643-1999's own example (check digit X).
GOOD = "11010519491231002X"


def test_check_digit() -> None:
    assert id_check_digit(GOOD[:17]) == "X"
    assert valid_id_number(GOOD) and valid_id_number(GOOD.lower())


@pytest.mark.parametrize(
    "number",
    [
        GOOD[:-1] + "1",  # wrong check digit
        GOOD[:-1],  # too short
        GOOD + "0",  # too long
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",  # Arabic-Indic digits: the same number, spelled otherwise
        "²" * 17 + "X",  # digits that int() cannot read
        "1101051949123100" + "a" + "X",
    ],
)
def test_invalid_numbers(number: str) -> None:
    assert not valid_id_number(number)
    with pytest.raises(ValueError):
        subject_id(number, b"secret")


def test_subject_id_is_a_keyed_hash(tmp_path: Path) -> None:
    secret = subject_secret(tmp_path / "subject.secret")
    assert len(secret) == 32 and (tmp_path / "subject.secret").stat().st_mode & 0o777 == 0o600
    assert subject_secret(tmp_path / "subject.secret") == secret
    sid = subject_id(GOOD, secret)
    assert sid.startswith("sub:") and len(sid) == 4 + 64
    assert GOOD not in sid
    assert subject_id(GOOD.lower(), secret) == sid
    assert subject_id(GOOD, b"another secret") != sid
