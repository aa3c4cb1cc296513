"""Length-prefixed frames over pipes, shared by the processes executor and its workers."""

from __future__ import annotations

import os
import struct

__all__ = ["read_frame", "write_frame"]

_HEADER = struct.Struct("!Q")


def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame (8-byte big-endian length, then the payload) to ``fd``."""
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes | None:
    """Read one frame from ``fd``; None when the other side has closed the pipe."""
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    return _read_exact(fd, size) if size else b""
