"""One read feeding every digest, against hashlib/blake3/zlib over the same bytes."""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3
import pytest

from modelscan.records import civitai_crc32, crc32_from_civitai
from modelscan.scanner import hashing, reader

SMALL_BUFFER = 4096  # many buffer boundaries in a small file


@contextmanager
def _fd(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def _spans(size: int, buffer: int) -> list[tuple[int, int]]:
    """Tensors inside one buffer, across boundaries, overlapping, empty, at the end."""
    spans = [
        (0, size // 3),
        (size // 3, size),
        (size // 4, size // 2),  # overlaps both of the above (a torch view)
        (size // 4, size // 2),  # the same bytes twice
        (size, size),
        (size // 2, size // 2),
    ]
    if size > buffer + 10:
        spans += [(buffer - 5, buffer + 5), (1, buffer), (buffer, buffer)]
    return spans


@pytest.mark.parametrize(
    ("threaded", "inline_first"), [(False, False), (True, False), (True, True)]
)
@pytest.mark.parametrize("buffer", [SMALL_BUFFER, reader.BUFFER_SIZE])
@pytest.mark.parametrize(
    "size", [0, 1, 4095, 4096, 4097, 1 << 20, (1 << 20) + 100, 3 * (1 << 20) + 7]
)
def test_one_read_matches_hashlib_blake3_zlib(
    tmp_path: Path, size: int, buffer: int, threaded: bool, inline_first: bool
) -> None:
    """Every lane's digests equal hashlib/blake3/zlib over the same bytes, any size."""
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    spans = _spans(size, buffer)
    body_start = min(size, 8 + size // 5)
    whole = hashing.Sha256Sink()
    body = hashing.Sha256Sink(body_start)
    window = hashing.WindowSink(hashing.AUTOV1_OFFSET, hashing.AUTOV1_LENGTH)
    digests = hashing.SpanDigestSink(spans)
    extra = hashing.Blake3Crc32Sink()
    kept = hashing.RangeBytesSink([(a, b) for a, b in spans if a < b])
    with _fd(path) as fd:
        reader.pump(
            fd,
            size,
            [[whole, window, kept], [digests], [body], [extra]],
            threaded=threaded,
            buffer_size=buffer,
            inline_first=inline_first,
        )
    assert whole.hexdigest() == hashlib.sha256(data).hexdigest()
    assert body.hexdigest() == hashlib.sha256(data[body_start:]).hexdigest()
    assert extra.blake3_hex() == blake3.blake3(data).hexdigest()
    assert extra.crc32 == zlib.crc32(data)
    assert window.value() == data[0x100000:0x110000]
    assert digests.hexdigests() == [
        blake3.blake3(data[a:b]).hexdigest() for a, b in spans
    ]
    nonempty = [(a, b) for a, b in spans if a < b]
    assert [kept.value(i) for i in range(len(nonempty))] == [
        data[a:b] for a, b in nonempty
    ]


@pytest.mark.parametrize("threaded", [False, True])
def test_file_shorter_than_its_size_is_a_short_read(
    tmp_path: Path, threaded: bool
) -> None:
    """A file that shrank under the reader stops the read with ShortRead."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 10_000)
    sinks = [[hashing.Sha256Sink()], [hashing.Sha256Sink()]]
    with _fd(path) as fd, pytest.raises(reader.ShortRead, match="shrank"):
        reader.pump(fd, 20_000, sinks, threaded=threaded, buffer_size=SMALL_BUFFER)


class _Boom:
    """A sink that fails on its third buffer."""

    def __init__(self) -> None:
        self.calls = 0

    def feed(self, offset: int, data: memoryview) -> None:
        self.calls += 1
        if self.calls == 3:
            raise ValueError("boom")


@pytest.mark.parametrize("failing", [0, 1])
def test_failing_lane_stops_the_read_and_raises(tmp_path: Path, failing: int) -> None:
    """A lane that raises ends the read (no hang) and its error reaches the caller."""
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(200 * SMALL_BUFFER))
    lanes: list[list[hashing.Sink]] = [[hashing.Sha256Sink()], [hashing.Sha256Sink()]]
    lanes[failing] = [_Boom()]  # lane 0 runs in the reading thread
    with _fd(path) as fd, pytest.raises(ValueError, match="boom"):
        reader.pump(
            fd,
            200 * SMALL_BUFFER,
            lanes,
            threaded=True,
            buffer_size=SMALL_BUFFER,
            buffers=2,
        )


def test_progress_counts_every_byte_once(tmp_path: Path) -> None:
    """Progress is told each buffer once: the counts add up to the file size."""
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(10 * SMALL_BUFFER + 3))
    seen: list[int] = []
    with _fd(path) as fd:
        reader.pump(
            fd,
            10 * SMALL_BUFFER + 3,
            [[hashing.Sha256Sink()], [hashing.Sha256Sink()]],
            threaded=True,
            progress=seen.append,
            buffer_size=SMALL_BUFFER,
        )
    assert sum(seen) == 10 * SMALL_BUFFER + 3


def test_many_empty_spans_hold_no_hashers() -> None:
    """A million empty tensors get the BLAKE3 of nothing without a hasher each."""
    sink = hashing.SpanDigestSink([(0, 0)] * 1_000_000)
    sink.feed(0, memoryview(b"abc"))
    assert not sink._hashers
    assert set(sink.hexdigests()) == {blake3.blake3(b"").hexdigest()}


def test_civitai_crc32_vector() -> None:
    """Civitai prints zlib's CRC-32 of 'hello world' byte-reversed: 85114A0D."""
    crc = zlib.crc32(b"hello world")
    assert crc == 0x0D4A1185
    assert civitai_crc32(crc) == "85114A0D"
    assert crc32_from_civitai("85114a0d") == crc


def test_autov1_of_small_file_is_empty_hash() -> None:
    """A1111 gives e3b0c442 (SHA-256 of nothing) for files under 1 MiB."""
    assert hashing.EMPTY_SHA256[:8] == "e3b0c442"
