"""Frames between a Shulian process and the helper processes it talks to: an 8-byte big-endian length
and a pickle.

Pickles are read only from the other end of a pipe a parent made for its own child (``audit.worker``)
or of a Unix socket in a directory only the service's user may enter, whose peer the server checks is
that user (``api.writer``): never from a file, a network socket or anyone else.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

FRAME_LENGTH = 8  # bytes of the big-endian length before each pickle


def encode_frame(value: object) -> bytes:
    """``value`` as one frame's bytes."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(FRAME_LENGTH, "big") + data


def frame_size(header: bytes) -> int:
    """The size of the pickle that follows a frame's ``FRAME_LENGTH``-byte header."""
    return int.from_bytes(header, "big")


def decode_frame(data: bytes) -> Any:
    """The value of a frame's pickle (the bytes after its header)."""
    return pickle.loads(data)  # noqa: S301 - a trusted peer (see the module docstring)


def write_frame(stream: BinaryIO | io.BufferedIOBase, value: object) -> None:
    """Write ``value`` as one frame and flush it."""
    stream.write(encode_frame(value))
    stream.flush()


def take_frames(buffer: bytearray) -> list[Any]:
    """The values of the whole frames at the start of ``buffer``, taken off it (a part of one stays)."""
    out = []
    while len(buffer) >= FRAME_LENGTH:
        size = int.from_bytes(buffer[:FRAME_LENGTH], "big")
        if len(buffer) < FRAME_LENGTH + size:
            break
        data = bytes(buffer[FRAME_LENGTH : FRAME_LENGTH + size])
        del buffer[: FRAME_LENGTH + size]
        out.append(pickle.loads(data))  # noqa: S301 - a trusted peer (see the module docstring)
    return out


def _read_exactly(stream: io.BufferedIOBase | io.RawIOBase, size: int) -> bytearray:
    """``size`` bytes, from a buffered or a raw stream (which may return fewer per read)."""
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        n = stream.readinto(view[got:])
        if not n:
            raise EOFError("end of stream" + (" within a frame" if got else ""))
        got += n
    return data


def read_frame(stream: io.BufferedIOBase | io.RawIOBase) -> Any:
    """The next frame's value; ``EOFError`` at the end of the stream (or in the middle of a frame)."""
    size = int.from_bytes(_read_exactly(stream, FRAME_LENGTH), "big")
    return pickle.loads(_read_exactly(stream, size))  # noqa: S301 - a trusted peer (see the module docstring)
