"""ledger.frames: length-prefixed pickles between a Shulian process and its helper processes."""

from __future__ import annotations

import io

import pytest

from ledger.frames import encode_frame, read_frame, take_frames, write_frame

ASK = ("access", "k" * 32, "a" * 64, "mzj.dibao", "r-1", ["name"], "住房保障")
VALUES: list[object] = [ASK, None, b"\x00" * 70_000]


def test_a_stream_round_trip_and_its_end() -> None:
    stream = io.BytesIO()
    for value in VALUES:
        write_frame(stream, value)
    assert stream.getvalue() == b"".join(encode_frame(v) for v in VALUES)
    stream.seek(0)
    assert [read_frame(stream) for _ in VALUES] == VALUES
    with pytest.raises(EOFError, match="end of stream"):
        read_frame(stream)
    with pytest.raises(EOFError, match="within a frame"):
        read_frame(io.BytesIO(encode_frame(VALUES[0])[:-1]))


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_frames_taken_off_a_buffer_however_the_bytes_arrive(step: int) -> None:
    wire = b"".join(encode_frame(v) for v in VALUES)
    buffer = bytearray()
    got: list[object] = []
    for at in range(0, len(wire), step):
        buffer += wire[at : at + step]
        got.extend(take_frames(buffer))
        assert len(buffer) < len(wire)  # whole frames never linger
    assert got == VALUES and not buffer
