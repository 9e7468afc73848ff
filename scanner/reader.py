"""One sequential read of a file feeding every digest: a ring of buffers.

A single reader (the calling thread) fills a few page-aligned buffers in turn
with ``os.preadv``; each lane (a list of sinks from ``hashing.py``: the
whole-file SHA-256, the AutoV3 body SHA-256, the per-tensor BLAKE3s, ...) sees
every buffer, as a memoryview, in file order. A buffer goes back to the reader
once every lane has released it, so memory is ``BUFFERS * BUFFER_SIZE``
whatever the file size, and the page cache is copied into user space once, not
once per digest. The reading thread runs the first lane itself, every other lane
has a thread; hashlib and blake3 release the GIL on large buffers, so the lanes
run on separate cores. :func:`plan_lanes` packs the digests into as many lanes
as there are cores, balanced by their measured cost, the reads counted in the
reading thread's: on 2 cores a GGUF's SHA-256 hashes in a thread of its own
while the reader reads and hashes the tensors' BLAKE3s, so the file takes about
one SHA-256 pass, less than the baseline's reads plus its SHA-256.

Sizes were measured on the 2-core machine (README, "Speed and memory"): with
the lanes above, 1, 2 and 4 MiB buffers all run a GGUF's pump at the SHA-256's
own pace (0.61-0.64 s a GiB), 256 and 512 KiB ones up to 0.1 s slower; 8 of
them give the lanes some slack when one is descheduled.
``posix_fadvise(SEQUENTIAL)`` and blake3's own threads changed nothing
measurable, so neither is used.

Example:
    >>> import hashlib, os, tempfile
    >>> from modelscan.scanner.hashing import Sha256Sink
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     _ = f.write(b"abc" * 1000); f.flush()
    ...     fd = os.open(f.name, os.O_RDONLY)
    ...     sink = Sha256Sink()
    ...     pump(fd, 3000, [[sink]], threaded=True)
    ...     os.close(fd)
    >>> sink.hexdigest() == hashlib.sha256(b"abc" * 1000).hexdigest()
    True
"""

from __future__ import annotations

import mmap
import os
import queue
import threading
from collections.abc import Callable, Sequence

from modelscan.scanner.hashing import Sink

BUFFER_SIZE = 1 << 20  # bytes per buffer (measured: README, "Speed and memory")
BUFFERS = 8  # buffers in the ring: memory is BUFFERS * BUFFER_SIZE
INLINE_FIRST = True  # the reader runs the first lane itself (measured: README)

Lane = Sequence[Sink]
Progress = Callable[[int], object]

# Seconds to hash (or read) 1 GiB on the 2-core machine (README, "Speed and
# memory"): what plan_lanes() balances; only their ratios matter.
SHA256_COST = 0.61
BLAKE3_COST = 0.17
CRC32_COST = 0.25
READ_COST = 0.08  # os.preadv from the page cache into a page-aligned buffer


def available_cores() -> int:
    """Processors this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def plan_lanes(
    work: Sequence[tuple[float, Sink]],
    *,
    cores: int,
    read_cost: float,
    with_reader: Sequence[Sink] = (),
) -> list[list[Sink]]:
    """Group sinks into at most ``cores`` lanes of about equal work.

    Longest first, each sink joins the lane with the least work so far; the
    first lane is the reading thread's, which starts with the reads' cost and
    takes ``with_reader`` (cheap sinks: windows). On 2 cores a GGUF's SHA-256
    gets a thread of its own and the reader hashes the tensors' BLAKE3s; a
    safetensors file's two SHA-256s go one to each thread.

    Args:
        work: (estimated seconds, sink) for every heavy sink.
        cores: threads to spread over, the reading thread included.
        read_cost: estimated seconds of the reads themselves.
        with_reader: sinks to run in the reading thread whatever their cost.

    Returns:
        The lanes, the reading thread's first; none empty but that one.
    """
    lanes: list[list[Sink]] = [list(with_reader)] + [[] for _ in range(cores - 1)]
    loads = [read_cost] + [0.0] * (cores - 1)
    for cost, sink in sorted(work, key=lambda w: -w[0]):
        i = loads.index(min(loads))
        lanes[i].append(sink)
        loads[i] += cost
    return [lanes[0]] + [lane for lane in lanes[1:] if lane]


class ShortRead(EOFError):
    """The file ended before the size it had when it was opened."""


def pump(
    fd: int,
    size: int,
    lanes: Sequence[Lane],
    *,
    threaded: bool,
    progress: Progress | None = None,
    buffer_size: int = BUFFER_SIZE,
    buffers: int = BUFFERS,
    inline_first: bool = INLINE_FIRST,
) -> None:
    """Read bytes [0, size) of ``fd`` once and feed every buffer to every lane.

    Args:
        fd: an open file descriptor (positioned reads: its offset is untouched).
        size: how many bytes to read.
        lanes: sinks grouped by thread; sinks of one lane run in order.
        threaded: one thread per lane; otherwise every sink in this thread.
        progress: called with each buffer's byte count, in this thread.
        buffer_size: bytes per buffer.
        buffers: buffers in the ring (threaded only).
        inline_first: the reading thread runs the first lane itself, right
            after handing each buffer to the other lanes' threads.

    Raises:
        ShortRead: the file shrank while being read.
        OSError: a read failed.
    """
    if not threaded or len(lanes) < 2:
        _pump_inline(
            fd, size, [s for lane in lanes for s in lane], progress, buffer_size
        )
        return
    ring = _Ring(fd, lanes, buffer_size, max(2, buffers), inline=inline_first)
    ring.run(size, progress)


def page_aligned_buffers(count: int, size: int) -> list[memoryview]:
    """``count`` writable buffers of ``size`` bytes, each starting on a page.

    One anonymous map holds them all. A ``bytearray`` of 1 MiB starts 16 bytes
    into its malloc'd pages, and the kernel's copy into a destination that is not
    64-byte aligned is slow: reading 1 GiB from the page cache took 0.13-0.14 s
    of system time into such a buffer against 0.08-0.09 s into a page-aligned one
    (README, "Speed and memory").
    """
    page = mmap.PAGESIZE
    stride = -(-size // page) * page
    whole = memoryview(mmap.mmap(-1, stride * count))
    return [whole[i * stride : i * stride + size] for i in range(count)]


def _read_into(fd: int, view: memoryview, pos: int) -> int:
    n = os.preadv(fd, [view], pos)
    if not n:
        raise ShortRead(f"file shrank while reading: got {pos} bytes")
    return n


def _pump_inline(
    fd: int,
    size: int,
    sinks: Sequence[Sink],
    progress: Progress | None,
    buffer_size: int,
) -> None:
    (view,) = page_aligned_buffers(1, min(buffer_size, max(size, 1)))
    pos = 0
    while pos < size:
        n = _read_into(fd, view[: min(len(view), size - pos)], pos)
        chunk = view[:n]
        for sink in sinks:
            sink.feed(pos, chunk)
        pos += n
        if progress is not None:
            progress(n)


class _Ring:
    """The buffers, the free list and one queue per lane for one :func:`pump`."""

    def __init__(
        self, fd: int, lanes: Sequence[Lane], size: int, count: int, *, inline: bool
    ) -> None:
        self._fd = fd
        self._inline = list(lanes[0]) if inline else []
        self._lanes = lanes[1:] if inline else lanes
        self._holders = len(lanes)  # lanes that must release each buffer
        self._views = page_aligned_buffers(count, size)
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(count):
            self._free.put(i)
        self._pending = [0] * count  # lanes still holding each buffer
        self._lock = threading.Lock()
        self._queues: list[queue.SimpleQueue[tuple[int, int, int] | None]] = [
            queue.SimpleQueue() for _ in self._lanes
        ]
        self._errors: list[BaseException] = []

    def run(self, size: int, progress: Progress | None) -> None:
        threads = [
            threading.Thread(target=self._consume, args=(q, lane), daemon=True)
            for q, lane in zip(self._queues, self._lanes, strict=True)
        ]
        for t in threads:
            t.start()
        try:
            self._produce(size, progress)
        finally:
            for q in self._queues:
                q.put(None)
            for t in threads:
                t.join()
        if self._errors:
            raise self._errors[0]

    def _produce(self, size: int, progress: Progress | None) -> None:
        pos = 0
        while pos < size and not self._errors:
            i = self._free.get()
            view = self._views[i]
            n = _read_into(self._fd, view[: min(len(view), size - pos)], pos)
            self._pending[i] = self._holders
            for q in self._queues:
                q.put((i, pos, n))
            if self._inline:  # the first lane hashes what was just read, cache-hot
                chunk = view[:n]
                for sink in self._inline:
                    sink.feed(pos, chunk)
                self._release(i)
            pos += n
            if progress is not None:
                progress(n)

    def _consume(
        self, q: queue.SimpleQueue[tuple[int, int, int] | None], lane: Lane
    ) -> None:
        failed = False
        while (item := q.get()) is not None:
            i, pos, n = item
            if not failed:
                try:
                    chunk = self._views[i][:n]
                    for sink in lane:
                        sink.feed(pos, chunk)
                except BaseException as exc:  # re-raised by run() in the caller
                    self._errors.append(exc)
                    failed = True
            self._release(i)

    def _release(self, i: int) -> None:
        with self._lock:
            self._pending[i] -= 1
            last = self._pending[i] == 0
        if last:
            self._free.put(i)
