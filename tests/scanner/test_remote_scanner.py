"""The remote scanner without a network: subset rule, windows, reader-driven parsers.

``MemoryRemote`` is a small real RemoteReader over a file's bytes that counts
reads the way the HTTP reader counts requests; the parsers' remote options must
give the same Layout as a local read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelscan.errors import FormatError
from modelscan.scanner import identity
from modelscan.scanner import remote as sr
from modelscan.scanner.fingerprint import fingerprint, open_reader, read_layout
from modelscan.scanner.formats import gguf, torch_legacy, torch_zip
from modelscan.scanner.layout import BytesReader, TensorSpan, coalesce


class MemoryRemote(BytesReader):
    """A RemoteReader over bytes: counts fetches, caches like the HTTP reader."""

    def __init__(self, data: bytes, name: str = "mem") -> None:
        super().__init__(data, name)
        self.requests = 0
        self.bytes_received = 0
        self._have: list[tuple[int, int]] = []
        self.fetches: list[tuple[int, int]] = []

    def _fetch(self, start: int, end: int) -> None:
        self.requests += 1
        self.bytes_received += end - start
        self.fetches.append((start, end))
        self._have = coalesce([*self._have, (start, end)], 0)

    def read_at(self, offset: int, n: int) -> bytes:
        gaps = self.missing(offset, min(offset + n, self.size))
        if gaps:
            self._fetch(
                gaps[0][0], min(self.size, max(gaps[-1][1], gaps[0][0] + 65536))
            )
        return super().read_at(offset, n)

    def read_ahead(self, offset: int, need: int, want: int) -> bytes:
        gaps = self.missing(offset, offset + need)
        if gaps:
            self._fetch(
                gaps[0][0], min(self.size, offset + max(need, min(want, 1 << 18)))
            )
        end = next(e for s, e in self._have if s <= offset < e)
        return self.data[offset : min(end, offset + want)]

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        for start, end in ranges:
            gaps = self.missing(start, end)
            if gaps:
                self._fetch(gaps[0][0], gaps[-1][1])

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        out, pos = [], start
        for s, e in self._have:
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:
                out.append((pos, s))
            pos = max(pos, e)
        if pos < end:
            out.append((pos, end))
        return out


def _span(name: str, shape: tuple[int, ...], dtype: str = "F32") -> TensorSpan:
    return TensorSpan(name, dtype, shape, offset=0, nbytes=0)


def test_spread_order_visits_every_index_once_widest_gaps_first() -> None:
    """First, last, then midpoints: any prefix is spread over the range."""
    for n in range(0, 70):
        order = sr.spread_order(n)
        assert sorted(order) == list(range(n))
    assert sr.spread_order(9)[:5] == [0, 8, 4, 2, 6]


def test_subset_rule_natural_order_and_even_spacing() -> None:
    """Candidates sort layer.2 < layer.10; 32 evenly spaced of more; no 1-D or ints."""
    spans = [_span(f"layer.{i}.w", (64, 64)) for i in range(100)]
    spans += [_span("norm", (4096,)), _span("ids", (64, 64), "I64")]
    spans += [_span("tiny", (8, 8))]
    chosen = sr.sketch_subset(reversed(spans))
    names = {t.name for t in chosen}
    assert len(chosen) == 32
    assert {"layer.0.w", "layer.99.w"} <= names
    assert not names & {"norm", "ids", "tiny"}
    indices = sorted(int(n.split(".")[1]) for n in names)
    assert indices == [round(i * 99 / 31) for i in range(32)]
    assert chosen[0].name == "layer.0.w"
    assert chosen[1].name == "layer.99.w"


def test_subset_depends_on_structure_only() -> None:
    """Same names, dtypes and shapes at other offsets and order: same tensors."""
    a = [
        TensorSpan(f"b.{i}", "F16", (32, 64), offset=i * 4096, nbytes=4096)
        for i in range(50)
    ]
    b = [
        TensorSpan(t.name, t.dtype, t.shape, offset=999 + 7 * i, nbytes=4096)
        for i, t in enumerate(reversed(a))
    ]
    assert [t.name for t in sr.sketch_subset(a)] == [
        t.name for t in sr.sketch_subset(b)
    ]


@pytest.mark.parametrize("key", ["minilm", "smollm_gguf", "whisperx_bin", "rxn_bin"])
def test_sketch_range_covers_what_read_sketch_reads(
    model_files: dict[str, Path], key: str
) -> None:
    """After prefetching a tensor's window, read_sketch needs no other fetch."""
    data = model_files[key].read_bytes()
    with open_reader(model_files[key]) as reader:
        layout = read_layout(reader)
    for span in sr.sketch_subset(layout.tensors)[:8]:
        mem = MemoryRemote(data)
        window = sr.sketch_range(span)
        assert window is not None
        mem.prefetch([window])
        assert identity.read_sketch(mem, span) is not None
        assert mem.requests == 1


@pytest.mark.parametrize(
    ("key", "module", "options"),
    [
        ("smollm_gguf", gguf, {"window": sr.GGUF_WINDOW}),
        ("whisperx_bin", torch_zip, {"remote": True}),
        ("silero_jit", torch_zip, {"remote": True}),
        ("rxn_bin", torch_legacy, {"sizes_from_pickle": True}),
        ("lpips_alex", torch_legacy, {"sizes_from_pickle": True}),
    ],
)
def test_reader_driven_parsers_give_the_local_layout_in_few_reads(
    model_files: dict[str, Path], key: str, module: object, options: dict[str, object]
) -> None:
    """The remote options change how bytes are fetched, never the Layout."""
    path = model_files[key]
    with open_reader(path) as reader:
        local = read_layout(reader)
    mem = MemoryRemote(path.read_bytes())
    remote = module.read_layout(mem, **options)  # type: ignore[attr-defined]
    assert remote == local
    assert mem.requests <= 6


def test_remote_fingerprint_over_memory_equals_local(
    model_files: dict[str, Path],
) -> None:
    """The whole pipeline over an in-memory reader: local ids, a subset of sketches."""
    path = model_files["minilm"]
    mem = MemoryRemote(path.read_bytes(), "mem://minilm")
    fp = sr.remote_fingerprint(mem, url="mem://minilm", sha256="ab" * 32)
    local = fingerprint(path)
    assert fp.structure_id == local.structure_id
    assert fp.autov1 == local.autov1
    assert fp.sha256 == "ab" * 32
    assert fp.autov2 == "ab" * 5
    read = [
        (t, loc) for t, loc in zip(fp.tensors, local.tensors, strict=True) if t.sketch
    ]
    assert len(read) == 32
    assert all(t.sketch == loc.sketch for t, loc in read)
    assert fp.remote is not None
    assert fp.remote.requests == mem.requests <= sr.MAX_REQUESTS


def test_gguf_header_estimate_bounds_the_overshoot(tmp_path: Path) -> None:
    """A GGUF header of 20k strings is read in a few requests, little past its end."""
    import gguf as gguf_py

    path = tmp_path / "vocab.gguf"
    writer = gguf_py.GGUFWriter(str(path), "llama")
    writer.add_token_list([f"tok{i:05d}-{'x' * (i % 13)}" for i in range(20000)])
    writer.add_tensor("blk.0.w", np.ones((64, 64), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    data = path.read_bytes()
    with open_reader(path) as reader:
        local = read_layout(reader)
    mem = MemoryRemote(data)
    assert gguf.read_layout(mem, window=sr.GGUF_WINDOW) == local
    header_end = local.tensors[0].offset
    assert mem.requests <= 4
    assert mem.bytes_received <= header_end + 128 * 1024


def test_truncated_remote_file_is_a_format_error(tmp_path: Path) -> None:
    """A safetensors header that claims more than the file holds: one-line error."""
    path = tmp_path / "m.safetensors"
    save_file({"w": np.zeros((64, 64), dtype=np.float32)}, str(path))
    data = path.read_bytes()[:-100]
    with pytest.raises(FormatError, match="mem: truncated"):
        sr.remote_fingerprint(MemoryRemote(data), url="mem", sha256=None)


def test_hostile_count_is_bounded_before_reading() -> None:
    """A GGUF claiming a million tensors in 84 bytes is refused, nothing fetched."""
    data = b"GGUF" + struct.pack("<IQQ", 3, 10**6, 0) + bytes(64)
    mem = MemoryRemote(data)
    with pytest.raises(FormatError, match="tensor count 1000000 needs at least"):
        sr.remote_fingerprint(mem, url="mem", sha256=None)
    assert mem.requests == 1
