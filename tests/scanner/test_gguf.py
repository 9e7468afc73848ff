"""GGUF header parser: the published SmolLM2 file, gguf-written files, hostile bytes."""

from __future__ import annotations

import collections
import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file as st_save_file

from modelscan.errors import (
    FormatError,
    HeaderTooLarge,
    InvalidHeader,
    TruncatedFile,
    UnknownFormat,
)
from modelscan.scanner.formats import gguf as gguf_fmt
from modelscan.scanner.formats import safetensors as st_fmt
from modelscan.scanner.layout import BytesReader, Layout


class FileReader(BytesReader):
    """The same over a file on disk (pread), for the 98 MB published model."""

    def __init__(self, path: Path) -> None:
        super().__init__(b"", str(path))
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        assert offset >= 0
        assert offset + n <= self._size
        self.max_end = max(self.max_end, offset + n)
        return os.pread(self._fd, n, offset)

    def close(self) -> None:
        os.close(self._fd)


def _compare_with_gguf_reader(layout: Layout, path: Path) -> gguf.GGUFReader:
    """Names, types, shapes, offsets, sizes and metadata match gguf's own reader."""
    ref = gguf.GGUFReader(path)
    assert [t.name for t in layout.tensors] == [t.name for t in ref.tensors]
    for span, t in zip(layout.tensors, ref.tensors, strict=True):
        assert span.dtype == t.tensor_type.name
        assert span.shape == tuple(reversed(t.shape.tolist()))
        assert span.offset == t.data_offset
        assert span.nbytes == t.n_bytes
        plain = span.dtype in ("F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64")
        assert span.ggml_type == (None if plain else int(t.tensor_type))
    for key, field in ref.fields.items():
        if key.startswith("GGUF."):
            continue
        ours = layout.metadata[key]
        if isinstance(ours, dict):
            assert ours["len"] == len(field.data) > gguf_fmt.KEEP_ARRAY_ITEMS
        else:  # gguf-py flattens nested arrays in contents()
            assert _flat(_plain(ours)) == _flat(_plain(field.contents()))
    assert layout.metadata["gguf.version"] == int(ref.fields["GGUF.version"].contents())
    return ref


def _flat(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    return [x for v in value for x in (_flat(v) if isinstance(v, list) else [v])]


def _plain(value: Any) -> Any:
    """Floats rounded to float32 precision so both readers compare equal."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return float(np.float32(value))
    return value


@pytest.fixture(scope="module")
def smollm(model_files: dict[str, Path]) -> Iterator[tuple[Path, Layout, FileReader]]:
    path = model_files["smollm_gguf"]
    reader = FileReader(path)
    yield path, gguf_fmt.read_layout(reader), reader
    reader.close()


def test_smollm_matches_gguf_reader(smollm: tuple[Path, Layout, FileReader]) -> None:
    """The published SmolLM2 Q4_1 file parses to what gguf.GGUFReader reports."""
    path, layout, _ = smollm
    assert layout.format == "gguf"
    counts = collections.Counter(t.dtype for t in layout.tensors)
    assert counts == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    _compare_with_gguf_reader(layout, path)


def test_smollm_metadata_keeps_general_and_summarises_vocab(
    smollm: tuple[Path, Layout, FileReader],
) -> None:
    """general.* keys stay readable; 49k-entry token arrays become short summaries."""
    _, layout, _ = smollm
    meta = layout.metadata
    assert meta["general.architecture"] == "llama"
    assert meta["general.organization"] == "HuggingFaceTB"
    assert meta["general.languages"] == ["en"]
    assert meta["gguf.version"] == 3
    tokens = {"type": "array", "item_type": "string", "len": 49152}
    assert meta["tokenizer.ggml.tokens"] == tokens
    assert meta["tokenizer.ggml.token_type"]["item_type"] == "int32"


def test_smollm_reads_header_only(smollm: tuple[Path, Layout, FileReader]) -> None:
    """Parsing reads about the header, never the 96 MB of weights after it."""
    _, layout, reader = smollm
    first = min(t.offset for t in layout.tensors)
    assert reader.max_end <= first + (1 << 20)
    assert reader.max_end < reader.size // 10


def test_pure_parser_on_a_prefix(smollm: tuple[Path, Layout, FileReader]) -> None:
    """parse_header on the bytes up to the data section gives the same Layout."""
    path, layout, _ = smollm
    first = min(t.offset for t in layout.tensors)
    with path.open("rb") as f:
        head = f.read(first)
    size = path.stat().st_size
    assert gguf_fmt.parse_header(head, path="remote", file_size=size) == layout
    with pytest.raises(TruncatedFile, match="bytes given"):
        gguf_fmt.parse_header(head[:500_000], path="remote", file_size=size)


def _write_gguf(
    path: Path, tensors: dict[str, tuple[np.ndarray, QT | None]], **kw: Any
) -> None:
    w = gguf.GGUFWriter(path, arch="llama")
    if "alignment" in kw:
        w.add_custom_alignment(kw["alignment"])
    w.add_string("general.name", "test model")
    w.add_string("general.base_model.0.repo_url", "https://huggingface.co/org/base")
    w.add_uint32("general.base_model.count", 1)
    w.add_float64("test.f64", 0.1)
    w.add_bool("test.flag", True)
    w.add_int8("test.neg", -3)
    w.add_array("test.short", [1, 2, 3])
    w.add_array("test.long", list(range(100)))
    w.add_array("test.words", ["a", "b", "ünïcode"])
    w.add_array("test.nested", [[1, 2], [3, 4, 5]])
    for name, (arr, raw) in tensors.items():
        w.add_tensor(name, arr, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _sample_tensors() -> dict[str, tuple[np.ndarray, QT | None]]:
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((4, 64)).astype(np.float32)
    return {
        "f32": (rng.standard_normal((3, 5)).astype(np.float32), None),
        "f16": (rng.standard_normal((2, 3, 4)).astype(np.float16), None),
        "i64": (np.arange(7, dtype=np.int64), None),
        "q8": (gguf.quants.quantize(weights, QT.Q8_0), QT.Q8_0),
    }


@pytest.mark.parametrize("alignment", [32, 64, 256])
def test_written_files_match_gguf_reader(tmp_path: Path, alignment: int) -> None:
    """GGUFWriter files (F32, F16, I64, Q8_0, any alignment) parse as gguf reads."""
    path = tmp_path / "w.gguf"
    tensors = _sample_tensors()
    _write_gguf(path, tensors, alignment=alignment)
    data = path.read_bytes()
    layout = gguf_fmt.read_layout(BytesReader(data))
    _compare_with_gguf_reader(layout, path)
    assert all(t.offset % alignment == 0 for t in layout.tensors)
    by_name = {t.name: t for t in layout.tensors}
    for name, (arr, _raw) in tensors.items():
        span = by_name[name]
        assert data[span.offset : span.offset + span.nbytes] == arr.tobytes()
    assert by_name["q8"].shape == (4, 64)
    assert by_name["q8"].ggml_type == int(QT.Q8_0)
    meta = layout.metadata
    assert meta["general.base_model.0.repo_url"] == "https://huggingface.co/org/base"
    assert meta["test.nested"] == [[1, 2], [3, 4, 5]]
    assert meta["test.long"] == {"type": "array", "item_type": "int32", "len": 100}
    assert meta["test.words"] == ["a", "b", "ünïcode"]
    assert (meta["test.flag"], meta["test.neg"]) == (True, -3)


def test_version_2_file_is_read(tmp_path: Path) -> None:
    """A v2 file (same layout as v3) is accepted and reports gguf.version 2."""
    path = tmp_path / "v3.gguf"
    _write_gguf(path, _sample_tensors())
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 4, 2)
    layout = gguf_fmt.read_layout(BytesReader(bytes(data)))
    assert layout.metadata["gguf.version"] == 2
    assert len(layout.tensors) == 4


def test_same_tensor_same_shape_as_safetensors(tmp_path: Path) -> None:
    """An F32 matrix in GGUF and in safetensors gets the same shape and bytes."""
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    _write_gguf(tmp_path / "m.gguf", {"w": (arr, None)})
    st_save_file({"w": arr}, str(tmp_path / "m.safetensors"))
    g_data = (tmp_path / "m.gguf").read_bytes()
    s_data = (tmp_path / "m.safetensors").read_bytes()
    g = gguf_fmt.read_layout(BytesReader(g_data)).tensors[0]
    s = st_fmt.parse_header(s_data, path="m", file_size=len(s_data)).tensors[0]
    assert (g.shape, g.dtype, g.nbytes) == (s.shape, s.dtype, s.nbytes)
    assert (
        g_data[g.offset : g.offset + g.nbytes] == s_data[s.offset : s.offset + s.nbytes]
    )


# --- hostile files, built byte by byte ---------------------------------------------


def _s(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def _kv(key: bytes, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def _u32kv(key: bytes, value: int) -> bytes:
    return _kv(key, 4, struct.pack("<I", value))


def _ti(name: bytes, ne: list[int], gtype: int, offset: int) -> bytes:
    dims = struct.pack(f"<I{len(ne)}Q", len(ne), *ne)
    return _s(name) + dims + struct.pack("<IQ", gtype, offset)


def _gguf(
    kvs: list[bytes] = (),  # type: ignore[assignment]
    infos: list[bytes] = (),  # type: ignore[assignment]
    data: bytes = b"",
    *,
    version: int = 3,
    n_tensors: int | None = None,
    n_kv: int | None = None,
    align: int = 32,
    slack: int = 0,
) -> bytes:
    nt = len(infos) if n_tensors is None else n_tensors
    nk = len(kvs) if n_kv is None else n_kv
    head = (
        b"GGUF" + struct.pack("<IQQ", version, nt, nk) + b"".join(kvs) + b"".join(infos)
    )
    pad = (-len(head) % align) if infos else 0
    return head + bytes(pad) + data + bytes(slack)


def _nested(depth: int) -> bytes:
    """An array of arrays ``depth`` levels deep, ending in one u8."""
    return struct.pack("<IQ", 9, 1) * (depth - 1) + struct.pack("<IQ", 0, 1) + b"\x07"


_F32 = _ti(b"w", [8], 0, 0)
_BAD: list[tuple[str, bytes, type[FormatError], str]] = [
    (
        "not gguf",
        b"GGUX" + bytes(20),
        UnknownFormat,
        "starts with 47475558, not the GGUF",
    ),
    ("tiny", b"GG", UnknownFormat, "starts with 4747"),
    ("version 1", _gguf(version=1), InvalidHeader, "GGUF v1 is obsolete"),
    ("version 0", _gguf(version=0), InvalidHeader, "unsupported GGUF version 0"),
    ("version 4", _gguf(version=4), InvalidHeader, "unsupported GGUF version 4"),
    ("big endian", _gguf(version=3 << 24), InvalidHeader, "big-endian"),
    ("header cut", b"GGUF\x03\x00\x00\x00\x00", TruncatedFile, "tensor count"),
    ("tensor count 2**63", _gguf(n_tensors=2**63), TruncatedFile, "tensor count"),
    ("tensor count > file", _gguf(n_tensors=1000), TruncatedFile, "tensor count 1000"),
    ("kv count huge", _gguf(n_kv=2**40), TruncatedFile, "metadata count"),
    ("kv count > file", _gguf(n_kv=50), TruncatedFile, "metadata count 50"),
    (
        "string length 2**63",
        _gguf([struct.pack("<Q", 2**63) + b"k"], slack=16),
        HeaderTooLarge,
        "key of metadata entry 0",
    ),
    (
        "string length > file",
        _gguf([struct.pack("<Q", 5000) + b"k" * 20]),
        TruncatedFile,
        "the file ends at",
    ),
    (
        "array length huge",
        _gguf([_kv(b"a", 9, struct.pack("<IQ", 4, 2**40))]),
        HeaderTooLarge,
        "above the 1073741824 cap",
    ),
    (
        "array length > file",
        _gguf([_kv(b"a", 9, struct.pack("<IQ", 8, 10**6))]),
        TruncatedFile,
        "1000000 items",
    ),
    (
        "nested array bomb",
        _gguf([_kv(b"deep", 9, _nested(100_000))]),
        InvalidHeader,
        "nests arrays deeper than 8",
    ),
    (
        "unknown value type",
        _gguf([_kv(b"k", 13, b"")], slack=8),
        InvalidHeader,
        "value type 13",
    ),
    (
        "unknown array item type",
        _gguf([_kv(b"k", 9, struct.pack("<IQ", 99, 1))]),
        InvalidHeader,
        "unknown item type 99",
    ),
    ("empty key", _gguf([_kv(b"", 0, b"\x01")], slack=8), InvalidHeader, "empty key"),
    (
        "duplicate key",
        _gguf([_kv(b"k", 0, b"\x01"), _kv(b"k", 0, b"\x02")]),
        InvalidHeader,
        "'k' appears twice",
    ),
    (
        "non-utf8 key",
        _gguf([_kv(b"\xff", 0, b"\x01")]),
        InvalidHeader,
        "not valid UTF-8",
    ),
    (
        "alignment 0",
        _gguf([_u32kv(b"general.alignment", 0)]),
        InvalidHeader,
        "alignment 0 is not a power of two",
    ),
    (
        "alignment 3",
        _gguf([_u32kv(b"general.alignment", 3)]),
        InvalidHeader,
        "alignment 3 is not a power of two",
    ),
    (
        "alignment as string",
        _gguf([_kv(b"general.alignment", 8, _s(b"32"))]),
        InvalidHeader,
        "must be uint32, not string",
    ),
    (
        "n_dims 5",
        _gguf([], [_ti(b"w", [1, 1, 1, 1, 8], 0, 0)], bytes(32)),
        InvalidHeader,
        "5 dimensions (max 4)",
    ),
    (
        "removed type Q4_2",
        _gguf([], [_ti(b"w", [32], 4, 0)], bytes(64)),
        InvalidHeader,
        "unknown ggml type 4",
    ),
    (
        "unknown type",
        _gguf([], [_ti(b"w", [8], 1000, 0)], bytes(32)),
        InvalidHeader,
        "unknown ggml type 1000",
    ),
    (
        "dimension 2**63",
        _gguf([], [_ti(b"w", [2**63], 0, 0)], bytes(32)),
        InvalidHeader,
        "impossible shape",
    ),
    (
        "numel overflow",
        _gguf([], [_ti(b"w", [2**32, 2**32], 0, 0)], bytes(32)),
        InvalidHeader,
        "impossible shape",
    ),
    (
        "row not a block multiple",
        _gguf([], [_ti(b"w", [20, 2], int(QT.Q8_0), 0)], bytes(64)),
        InvalidHeader,
        "rows of 20 elements, not a multiple of its block size 32",
    ),
    (
        "offset beyond file",
        _gguf([], [_ti(b"w", [8], 0, 4096)], bytes(32)),
        TruncatedFile,
        "tensor 'w' needs bytes up to",
    ),
    ("data cut short", _gguf([], [_F32], bytes(31)), TruncatedFile, "tensor 'w'"),
    (
        "misaligned offset",
        _gguf([], [_ti(b"w", [8], 0, 4)], bytes(64)),
        InvalidHeader,
        "data offset 4 is not a multiple of 32",
    ),
    (
        "overlapping tensors",
        _gguf([], [_ti(b"a", [16], 0, 0), _ti(b"b", [8], 0, 32)], bytes(64)),
        InvalidHeader,
        "tensor 'b' overlaps tensor 'a'",
    ),
    (
        "duplicate tensor",
        _gguf([], [_F32, _ti(b"w", [8], 0, 32)], bytes(64)),
        InvalidHeader,
        "tensor name 'w' appears twice",
    ),
    (
        "non-utf8 tensor name",
        _gguf([], [_ti(b"\xc3", [8], 0, 0)], bytes(32)),
        InvalidHeader,
        "tensor name is not valid UTF-8",
    ),
]


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [case[1:] for case in _BAD],
    ids=[case[0] for case in _BAD],
)
def test_hostile_header_rejected(
    data: bytes, error: type[FormatError], message: str
) -> None:
    """Each malformed GGUF raises the named FormatError, naming file and fault."""
    with pytest.raises(error) as caught:
        gguf_fmt.read_layout(BytesReader(data, "bad.gguf"))
    assert type(caught.value) is error
    assert message in str(caught.value)
    assert str(caught.value).startswith("bad.gguf: ")
    with pytest.raises(error, match="bad.gguf"):
        gguf_fmt.parse_header(data, path="bad.gguf", file_size=len(data))


def test_byte_built_file_is_valid() -> None:
    """The byte builder's valid file parses, so each hostile case has one fault."""
    kvs = [_u32kv(b"general.alignment", 64), _kv(b"deep", 9, _nested(8))]
    data = _gguf(kvs, [_F32, _ti(b"v", [8], 0, 64)], bytes(96), align=64)
    layout = gguf_fmt.read_layout(BytesReader(data))
    assert [(t.name, t.shape, t.nbytes) for t in layout.tensors] == [
        ("w", (8,), 32),
        ("v", (8,), 32),
    ]
    assert layout.tensors[1].offset - layout.tensors[0].offset == 64
    assert layout.metadata["deep"] == [[[[[[[[7]]]]]]]]


def _small_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("g") / "small.gguf"
    arr = np.arange(8, dtype=np.float32)  # 32 bytes: no padding after the last tensor
    _write_gguf(path, {"w": (arr, None)})
    return path.read_bytes()


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _small_gguf(tmp_path_factory)


def test_truncated_at_every_offset(small_gguf: bytes) -> None:
    """Cutting a valid file at any byte gives TruncatedFile (UnknownFormat under 4)."""
    gguf_fmt.read_layout(BytesReader(small_gguf))
    for cut in range(len(small_gguf)):
        expected = UnknownFormat if cut < 4 else TruncatedFile
        with pytest.raises(expected, match="cut.gguf"):
            gguf_fmt.read_layout(BytesReader(small_gguf[:cut], "cut.gguf"))


_SEED = _gguf([_u32kv(b"general.alignment", 32)], [_F32], bytes(32))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_after_magic_only_raise_format_error(tail: bytes) -> None:
    """Random bytes after a GGUF v3 magic either parse or raise FormatError."""
    with contextlib.suppress(FormatError):
        gguf_fmt.read_layout(BytesReader(b"GGUF\x03\x00\x00\x00" + tail))


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, len(_SEED)),
)
def test_mutated_file_only_raises_format_error(
    edits: list[tuple[int, int]], cut: int
) -> None:
    """A valid file with random bytes changed and cut short never crashes the parser."""
    data = bytearray(_SEED)
    for pos, value in edits:
        data[pos] = value
    data = data[:cut]
    try:
        layout = gguf_fmt.read_layout(BytesReader(bytes(data)))
    except FormatError:
        return
    assert all(t.offset + t.nbytes <= len(data) for t in layout.tensors)


def test_tensor_count_above_the_cap_is_refused_in_one_line() -> None:
    """A GGUF whose bytes could hold its tensor count, past MAX_TENSORS: refused."""
    from modelscan.scanner.layout import MAX_TENSORS

    n = MAX_TENSORS + 1
    data = _gguf(n_tensors=n, slack=n * 24)  # room for n minimal tensor infos
    with pytest.raises(HeaderTooLarge) as caught:
        gguf_fmt.read_layout(BytesReader(data, "many.gguf"))
    message = str(caught.value)
    assert message.startswith("many.gguf: ")
    assert f"lists {n} tensors, above modelscan's cap of {MAX_TENSORS}" in message
    assert "\n" not in message


def test_ggml_type_table_matches_the_gguf_package() -> None:
    """The GGML types parsed without gguf are gguf's names and block sizes."""
    from modelscan.scanner.ggml_types import GGML_TYPES

    want = {
        int(t): (t.name, *gguf.GGML_QUANT_SIZES[t])
        for t in QT
        if t in gguf.GGML_QUANT_SIZES
    }
    assert want == GGML_TYPES
