"""The digest sinks that one read of a file feeds (see ``reader.py``).

Every file-level hash of DESIGN.md section 4 is a sink here: whole-file SHA-256,
the safetensors body SHA-256 for AutoV3 (a SHA-256 sink that starts at the
body), whole-file BLAKE3 and CRC-32, the AutoV1 window, the per-tensor BLAKE3
digests and the sketch windows. A sink's ``feed`` takes a memoryview of a
shared buffer and never keeps it: it hashes, or copies the few bytes it needs.

Example:
    >>> import hashlib
    >>> sink = Sha256Sink()
    >>> sink.feed(0, memoryview(b"hello"))
    >>> sink.hexdigest() == hashlib.sha256(b"hello").hexdigest()
    True
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from typing import Protocol

import blake3

AUTOV1_OFFSET = 0x100000  # A1111 "old model hash": 64 KiB at offset 1 MiB
AUTOV1_LENGTH = 0x10000
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
EMPTY_BLAKE3 = blake3.blake3(b"").hexdigest()


class Sink(Protocol):
    """Consumes the bytes of a stream; ``offset`` is the file offset of ``data[0]``."""

    def feed(self, offset: int, data: memoryview) -> None:
        """Take one chunk."""
        ...


class Sha256Sink:
    """SHA-256 of everything fed from file offset ``start`` on (AutoV3: the body)."""

    def __init__(self, start: int = 0) -> None:
        self._h = hashlib.sha256()
        self._start = start

    def feed(self, offset: int, data: memoryview) -> None:
        """Hash the chunk (the part at or after ``start``)."""
        if offset >= self._start:
            self._h.update(data)
        elif offset + len(data) > self._start:
            self._h.update(data[self._start - offset :])

    def hexdigest(self) -> str:
        """Lower-case hex."""
        return self._h.hexdigest()


class Blake3Crc32Sink:
    """Whole-file BLAKE3 and zlib CRC-32 together (``--all-hashes``)."""

    def __init__(self) -> None:
        self._b = blake3.blake3()
        self.crc32 = 0

    def feed(self, offset: int, data: memoryview) -> None:
        """Hash the chunk."""
        self._b.update(data)
        self.crc32 = zlib.crc32(data, self.crc32)

    def blake3_hex(self) -> str:
        """256-bit BLAKE3 as lower-case hex."""
        return self._b.hexdigest()


class WindowSink:
    """Collects the bytes of one fixed window, e.g. AutoV1's [1 MiB, 1 MiB + 64 KiB)."""

    def __init__(self, start: int, length: int) -> None:
        self.start = start
        self.end = start + length
        self._parts: list[bytes] = []

    def feed(self, offset: int, data: memoryview) -> None:
        """Keep the part of the chunk inside the window."""
        lo = max(self.start, offset)
        hi = min(self.end, offset + len(data))
        if lo < hi:
            self._parts.append(bytes(data[lo - offset : hi - offset]))

    def value(self) -> bytes:
        """The window's bytes (shorter when the file ends inside it)."""
        return b"".join(self._parts)


class _SpanRouter:
    """Routes each chunk's bytes to the byte ranges [start, end) it intersects.

    Ranges may overlap (torch tensors sharing a storage). Only the ranges open
    at a chunk are visited, so the work per chunk does not grow with the
    number of ranges already finished or not yet reached.
    """

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        self._ranges = list(spans)
        self._order = sorted(range(len(spans)), key=lambda i: spans[i][0])
        self._next = 0  # index into self._order of the first range not yet opened
        self._open: list[int] = []

    def feed(self, offset: int, data: memoryview) -> None:
        """Hand the chunk's piece of every open range to ``_take``."""
        end = offset + len(data)
        ranges, order = self._ranges, self._order
        while self._next < len(order):
            i = order[self._next]
            lo, hi = ranges[i]
            if lo >= end:
                break
            self._next += 1
            if lo >= hi:
                self._close(i)  # empty: nothing to take
            else:
                self._open.append(i)
        still_open = []
        for i in self._open:
            lo, hi = ranges[i]
            a, b = max(lo, offset), min(hi, end)
            if a < b:
                self._take(i, data[a - offset : b - offset])
            if hi > end:
                still_open.append(i)
            else:
                self._close(i)
        self._open = still_open

    def _take(self, i: int, piece: memoryview) -> None:
        raise NotImplementedError

    def _close(self, i: int) -> None:
        raise NotImplementedError


class SpanDigestSink(_SpanRouter):
    """BLAKE3 of each of many byte ranges of the stream (the tensors' data).

    A hasher exists only while its range is open: memory stays flat however
    many tensors a file lists (an empty range is the BLAKE3 of nothing).
    """

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        super().__init__(spans)
        self._hex: list[str | None] = [None] * len(spans)
        self._hashers: dict[int, blake3.blake3] = {}

    def _take(self, i: int, piece: memoryview) -> None:
        hasher = self._hashers.get(i)
        if hasher is None:
            hasher = self._hashers[i] = blake3.blake3()
        hasher.update(piece)

    def _close(self, i: int) -> None:
        hasher = self._hashers.pop(i, None)
        self._hex[i] = hasher.hexdigest() if hasher is not None else EMPTY_BLAKE3

    def hexdigests(self) -> list[str]:
        """One hex digest per range, in the order the ranges were given."""
        out = []
        for i, digest in enumerate(self._hex):
            if digest is None:  # the stream ended inside or before the range
                hasher = self._hashers.get(i)
                digest = hasher.hexdigest() if hasher is not None else EMPTY_BLAKE3
            out.append(digest)
        return out


class RangeBytesSink(_SpanRouter):
    """Keeps the bytes of a few small ranges (the sketch windows) as they stream by.

    ``value(i)`` is range ``i``'s bytes, None until the stream has passed it
    whole, so a caller falls back to a positioned read for what it missed.
    """

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        super().__init__(spans)
        self._parts: dict[int, list[bytes]] = {}
        self._done: dict[int, bytes] = {}

    def _take(self, i: int, piece: memoryview) -> None:
        self._parts.setdefault(i, []).append(bytes(piece))

    def _close(self, i: int) -> None:
        self._done[i] = b"".join(self._parts.pop(i, []))

    def value(self, i: int) -> bytes | None:
        """The bytes of range ``i`` once the stream has covered it."""
        return self._done.get(i)
