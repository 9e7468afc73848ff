"""File-level hashes against independent implementations over the same bytes."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

import blake3
import pytest

from modelscan.records import civitai_crc32, crc32_from_civitai
from modelscan.scanner import hashing


def _run(path: Path, spans: list[tuple[int, int]], *, threaded: bool):
    whole = hashing.Sha256Sink()
    window = hashing.WindowSink(hashing.AUTOV1_OFFSET, hashing.AUTOV1_LENGTH)
    digests = hashing.SpanDigestSink(spans)
    extra = hashing.Blake3Crc32Sink()
    size = path.stat().st_size
    hashing.run_streams(
        path,
        [(0, size, [whole, window]), (0, size, [digests, extra])],
        threaded=threaded,
    )
    return whole, window, digests, extra


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("size", [0, 1, 1 << 20, (1 << 20) + 100, 3 * (1 << 20) + 7])
def test_streams_match_hashlib_blake3_zlib(
    tmp_path: Path, size: int, threaded: bool
) -> None:
    """Every stream digest equals hashlib/blake3/zlib over the same bytes, any size."""
    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    spans = [(0, size // 3), (size // 3, size), (size // 4, size // 2), (size, size)]
    whole, window, digests, extra = _run(path, spans, threaded=threaded)
    assert whole.hexdigest() == hashlib.sha256(data).hexdigest()
    assert extra.blake3_hex() == blake3.blake3(data).hexdigest()
    assert extra.crc32 == zlib.crc32(data)
    assert window.value() == data[0x100000:0x110000]
    assert digests.hexdigests() == [
        blake3.blake3(data[a:b]).hexdigest() for a, b in spans
    ]


def test_civitai_crc32_vector() -> None:
    """Civitai prints zlib's CRC-32 of 'hello world' byte-reversed: 85114A0D."""
    crc = zlib.crc32(b"hello world")
    assert crc == 0x0D4A1185
    assert civitai_crc32(crc) == "85114A0D"
    assert crc32_from_civitai("85114a0d") == crc


def test_autov1_of_small_file_is_empty_hash() -> None:
    """A1111 gives e3b0c442 (SHA-256 of nothing) for files under 1 MiB."""
    assert hashing.EMPTY_SHA256[:8] == "e3b0c442"
