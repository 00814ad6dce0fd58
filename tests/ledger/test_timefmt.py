"""The ledger's one time format: strict parsing, exact formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import EnvelopeError
from ledger.timefmt import format_ts, now_ts, parse_ts


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)))
def test_round_trip(moment: datetime) -> None:
    text = format_ts(moment)
    assert len(text) == 27 and text.endswith("Z")
    assert parse_ts(text) == moment


def test_format_converts_to_utc() -> None:
    beijing = timezone(timedelta(hours=8))
    assert format_ts(datetime(2024, 6, 1, 20, 0, 0, 5, tzinfo=beijing)) == "2024-06-01T12:00:00.000005Z"
    with pytest.raises(ValueError):
        format_ts(datetime(2024, 6, 1))
    assert parse_ts(now_ts()).tzinfo is not None


@pytest.mark.parametrize(
    "text",
    [
        "2024-06-01T12:00:00Z",
        "2024-06-01T12:00:00.000Z",
        "2024-06-01T12:00:00.0000000Z",
        "2024-06-01 12:00:00.000000Z",
        "2024-06-01T12:00:00.000000z",
        "2024-06-01T12:00:00.000000+00:00",
        "2024-06-01T12:00:00.000000",
        " 2024-06-01T12:00:00.000000Z",
        "2024-06-01T12:00:00.000000Z\n",
        "2024-13-01T12:00:00.000000Z",
        "2024-02-30T12:00:00.000000Z",
        "2023-02-29T12:00:00.000000Z",
        "2024-06-01T24:00:00.000000Z",
        "2024-06-01T12:60:00.000000Z",
        "2024-06-01T12:00:60.000000Z",
        "0000-06-01T12:00:00.000000Z",
        "٢٠٢٤-06-01T12:00:00.000000Z",  # Arabic-Indic digits
        "２０２４-06-01T12:00:00.000000Z",  # fullwidth digits
        "2024-06-01T12:00:00.00000٠Z",
        "",
    ],
)
def test_strict_parsing(text: str) -> None:
    with pytest.raises(EnvelopeError):
        parse_ts(text)


@pytest.mark.parametrize("value", [None, 1717243200, b"2024-06-01T12:00:00.000000Z", ["2024-06-01T12:00:00.000000Z"]])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(EnvelopeError):
        parse_ts(value)


def test_leap_day() -> None:
    assert parse_ts("2024-02-29T23:59:59.999999Z") == datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
