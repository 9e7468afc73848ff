"""Streaming digests over byte ranges of a file, one reader thread per stream.

Every file-level hash of DESIGN.md section 4 is computed here, in one sequential
pass. Independent streams (whole-file SHA-256, the safetensors body SHA-256 for
AutoV3, the per-tensor BLAKE3 digests) each read the file through their own file
descriptor into a reused 1 MiB buffer, in their own thread: hashlib and blake3
release the GIL on large buffers, so on two cores the streams overlap instead of
queueing behind one reader (slicing one shared memory map from several threads
was measured slower).

Example:
    >>> import io, hashlib
    >>> sink = Sha256Sink()
    >>> sink.feed(0, memoryview(b"hello"))
    >>> sink.hexdigest() == hashlib.sha256(b"hello").hexdigest()
    True
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Protocol

import blake3

CHUNK = 1 << 20  # 1 MiB reads: large enough that hashing dominates syscalls

AUTOV1_OFFSET = 0x100000  # A1111 "old model hash": 64 KiB at offset 1 MiB
AUTOV1_LENGTH = 0x10000
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Sink(Protocol):
    """Consumes the bytes of a stream; ``offset`` is the file offset of ``data[0]``."""

    def feed(self, offset: int, data: memoryview) -> None:
        """Take one chunk."""
        ...


class Sha256Sink:
    """SHA-256 of everything fed."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def feed(self, offset: int, data: memoryview) -> None:
        """Hash the chunk."""
        self._h.update(data)

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


class SpanDigestSink:
    """BLAKE3 of each of many byte ranges of the stream (the tensors' data).

    Ranges may overlap (torch tensors sharing a storage); each gets its own hasher.
    """

    def __init__(self, spans: Sequence[tuple[int, int]]) -> None:
        self._spans = sorted(range(len(spans)), key=lambda i: spans[i][0])
        self._ranges = list(spans)
        self._hashers = [blake3.blake3() for _ in spans]
        self._next = 0  # index into self._spans of the first span not yet opened
        self._open: list[int] = []

    def feed(self, offset: int, data: memoryview) -> None:
        """Route the chunk's bytes to every range it intersects."""
        end = offset + len(data)
        while self._next < len(self._spans):
            i = self._spans[self._next]
            if self._ranges[i][0] >= end:
                break
            self._open.append(i)
            self._next += 1
        still_open = []
        for i in self._open:
            lo, hi = self._ranges[i]
            a, b = max(lo, offset), min(hi, end)
            if a < b:
                self._hashers[i].update(data[a - offset : b - offset])
            if hi > end:
                still_open.append(i)
        self._open = still_open

    def hexdigests(self) -> list[str]:
        """One hex digest per range, in the order the ranges were given."""
        return [h.hexdigest() for h in self._hashers]


def stream_range(
    path: str | os.PathLike[str],
    start: int,
    end: int,
    sinks: Sequence[Sink],
    *,
    progress: Callable[[int], object] | None = None,
) -> None:
    """Read bytes [start, end) of ``path`` once and feed every chunk to each sink."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        pos = start
        while pos < end:
            want = min(CHUNK, end - pos)
            n = f.readinto(view[:want])
            if not n:
                raise EOFError(f"file shrank while reading: {pos} of {end} bytes")
            chunk = view[:n]
            for sink in sinks:
                sink.feed(pos, chunk)
            pos += n
            if progress is not None:
                progress(n)


def run_streams(
    path: str | os.PathLike[str],
    streams: Sequence[tuple[int, int, Sequence[Sink]]],
    *,
    threaded: bool,
    progress: Callable[[int], object] | None = None,
) -> None:
    """Run each (start, end, sinks) stream; in parallel threads when ``threaded``.

    Only the first stream reports progress (it covers the whole file).
    """
    if not threaded or len(streams) == 1:
        for i, (start, end, sinks) in enumerate(streams):
            stream_range(path, start, end, sinks, progress=progress if i == 0 else None)
        return
    errors: list[BaseException] = []

    def work(start: int, end: int, sinks: Sequence[Sink], report: bool) -> None:
        try:
            stream_range(path, start, end, sinks, progress=progress if report else None)
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(s, e, k, i == 0), daemon=True)
        for i, (s, e, k) in enumerate(streams)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
