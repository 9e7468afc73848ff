"""safetensors header parser: published files, library-written files, hostile bytes."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file as np_save_file
from safetensors.torch import save_file as torch_save_file

from modelscan.errors import FormatError, HeaderTooLarge, InvalidHeader, TruncatedFile
from modelscan.scanner.formats.safetensors import (
    MAX_HEADER_BYTES,
    parse_header,
    read_layout,
)
from modelscan.scanner.layout import BytesReader, Layout

# safetensors' own dtype names for numpy / torch dtypes (what safe_open reports)
_NP_NAMES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}


def _reader(path: Path) -> BytesReader:
    return BytesReader(path.read_bytes(), str(path))


def _check_against_library(path: Path, layout: Layout) -> None:
    """Names, dtypes, shapes, metadata and the bytes at each span match safe_open."""
    data = path.read_bytes()
    with safe_open(str(path), framework="np") as f:
        assert sorted(t.name for t in layout.tensors) == sorted(f.keys())
        assert layout.metadata == (f.metadata() or {})
        for span in layout.tensors:
            arr = f.get_tensor(span.name)
            assert span.shape == tuple(arr.shape)
            assert span.dtype == _NP_NAMES[str(arr.dtype)]
            blob = data[span.offset : span.offset + span.nbytes]
            assert (
                blob
                == np.ascontiguousarray(arr)
                .astype(arr.dtype.newbyteorder("<"))
                .tobytes()
            )


def test_minilm_matches_safetensors_library(model_files: dict[str, Path]) -> None:
    """The published all-MiniLM-L6-v2 file parses to exactly what safetensors loads."""
    path = model_files["minilm"]
    reader = _reader(path)
    layout = read_layout(reader)
    assert layout.format == "safetensors"
    assert len(layout.tensors) == 104
    assert {t.dtype for t in layout.tensors} == {"F32", "I64"}
    assert layout.metadata == {"format": "pt"}
    _check_against_library(path, layout)


def test_silero_has_no_metadata(model_files: dict[str, Path]) -> None:
    """The published silero-vad file has 15 tensors and no __metadata__ block."""
    path = model_files["silero_safetensors"]
    layout = read_layout(_reader(path))
    assert len(layout.tensors) == 15
    assert layout.metadata == {}
    _check_against_library(path, layout)


def test_reads_only_the_header(model_files: dict[str, Path]) -> None:
    """read_layout never touches tensor data: its reads stop at body_offset."""
    reader = _reader(model_files["minilm"])
    layout = read_layout(reader)
    (n,) = struct.unpack_from("<Q", reader.data)
    assert layout.body_offset == 8 + n
    assert reader.max_end == layout.body_offset


def test_spans_tile_the_data_section_in_file_order(
    model_files: dict[str, Path],
) -> None:
    """Spans are in file order, back to back, and end exactly at end of file."""
    reader = _reader(model_files["minilm"])
    layout = read_layout(reader)
    pos = layout.body_offset
    for span in layout.tensors:
        assert span.offset == pos
        pos += span.nbytes
    assert pos == reader.size


def test_pure_parser_needs_only_the_header_prefix(model_files: dict[str, Path]) -> None:
    """parse_header on the first 8+N bytes (a remote Range read) gives the same."""
    data = model_files["minilm"].read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    layout = parse_header(data[: 8 + n], path="remote", file_size=len(data))
    assert layout == read_layout(BytesReader(data, "remote"))
    with pytest.raises(TruncatedFile, match=f"header needs {8 + n} bytes"):
        parse_header(data[: 8 + n - 1], path="remote", file_size=len(data))


def test_numpy_written_dtypes_zero_size_and_scalars(tmp_path: Path) -> None:
    """safetensors.numpy files with many dtypes, empty and 0-d tensors parse right."""
    rng = np.random.default_rng(0)
    tensors = {
        "f64": rng.standard_normal((3, 2)),
        "f32": rng.standard_normal((4, 5)).astype(np.float32),
        "f16": rng.standard_normal((7,)).astype(np.float16),
        "i8": np.arange(-5, 5, dtype=np.int8),
        "u8": np.arange(9, dtype=np.uint8).reshape(3, 3),
        "i16": np.arange(6, dtype=np.int16),
        "i32": np.arange(6, dtype=np.int32).reshape(1, 2, 3),
        "flag": np.array([True, False, True]),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(3.5, dtype=np.float32),
    }
    path = tmp_path / "mixed.safetensors"
    np_save_file(tensors, str(path), metadata={"note": "made by the test"})
    layout = read_layout(_reader(path))
    _check_against_library(path, layout)
    by_name = {t.name: t for t in layout.tensors}
    assert (by_name["empty"].shape, by_name["empty"].nbytes) == ((0, 3), 0)
    assert (by_name["scalar"].shape, by_name["scalar"].nbytes) == ((), 4)
    assert layout.metadata == {"note": "made by the test"}


def test_torch_written_bf16(tmp_path: Path) -> None:
    """A BF16 tensor written by safetensors.torch keeps dtype BF16 and its raw bytes."""
    weight = torch.randn(3, 8, generator=torch.Generator().manual_seed(1))
    weight = weight.to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    torch_save_file({"w": weight, "b": torch.zeros(8)}, str(path))
    layout = read_layout(_reader(path))
    span = {t.name: t for t in layout.tensors}["w"]
    assert (span.dtype, span.shape, span.nbytes) == ("BF16", (3, 8), 48)
    data = path.read_bytes()
    expected = weight.view(torch.int16).numpy().astype("<i2").tobytes()
    assert data[span.offset : span.offset + span.nbytes] == expected


def _header_file(header: Any, data: bytes = b"", *, length: int | None = None) -> bytes:
    """Build a safetensors file byte by byte: u64 length, header, data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(raw) if length is None else length
    return struct.pack("<Q", n) + raw + data


def _entry(dtype: str, shape: list[Any], begin: Any, end: Any) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_space_padded_header_is_accepted() -> None:
    """Trailing spaces after the JSON (safetensors pads to 8 bytes) are allowed."""
    raw = json.dumps({"a": _entry("U8", [3], 0, 3)}).encode() + b"       "
    layout = read_layout(BytesReader(_header_file(raw, b"xyz")))
    assert layout.tensors[0].offset == 8 + len(raw)


_DEEP = b"[" * 100_000 + b"]" * 100_000
_BAD_CASES: list[tuple[str, bytes, type[FormatError], str]] = [
    ("shorter than prefix", b"\x05\x00\x00", TruncatedFile, "too short"),
    (
        "length past file",
        _header_file(b"{}", length=50),
        TruncatedFile,
        "runs past the end",
    ),
    (
        "length above cap",
        _header_file(b"{}", length=MAX_HEADER_BYTES + 1),
        HeaderTooLarge,
        "above the 100000000-byte limit",
    ),
    (
        "length 2**63",
        _header_file(b"{}", length=2**63),
        HeaderTooLarge,
        "header length",
    ),
    ("not utf-8", _header_file(b'{"\xff\xfe": 1}'), InvalidHeader, "not valid UTF-8"),
    ("bad json", _header_file(b'{"a": '), InvalidHeader, "not valid JSON"),
    (
        "json array",
        _header_file(b"[1, 2]"),
        InvalidHeader,
        "must be a JSON object, got list",
    ),
    ("deep nesting", _header_file(_DEEP), InvalidHeader, "nests deeper than 64"),
    (
        "deep nesting in object",
        _header_file(b'{"a": ' + b"{" * 100_000),
        InvalidHeader,
        "nests deeper",
    ),
    ("NaN", _header_file(b'{"__metadata__": {"a": NaN}}'), InvalidHeader, "NaN"),
    (
        "duplicate key",
        _header_file(b'{"__metadata__": {}, "__metadata__": {}}'),
        InvalidHeader,
        "repeats the key '__metadata__'",
    ),
    (
        "unknown dtype",
        _header_file({"t": _entry("F33", [1], 0, 4)}, bytes(4)),
        InvalidHeader,
        "tensor 't' has unknown dtype 'F33'",
    ),
    (
        "negative dim",
        _header_file({"t": _entry("F32", [-1], 0, 4)}, bytes(4)),
        InvalidHeader,
        "shape holds -1",
    ),
    (
        "float dim",
        _header_file({"t": _entry("F32", [1.0], 0, 4)}, bytes(4)),
        InvalidHeader,
        "shape holds 1.0",
    ),
    (
        "bool dim",
        _header_file({"t": _entry("F32", [True], 0, 4)}, bytes(4)),
        InvalidHeader,
        "shape holds True",
    ),
    (
        "rank 17",
        _header_file({"t": _entry("U8", [1] * 17, 0, 1)}, bytes(1)),
        InvalidHeader,
        "short list",
    ),
    (
        "huge int",
        _header_file(b'{"t": {"dtype": "U8", "shape": [' + b"9" * 5000 + b"]}}"),
        InvalidHeader,
        "not valid JSON",
    ),
    (
        "missing shape",
        _header_file({"t": {"dtype": "U8", "data_offsets": [0, 1]}}, bytes(1)),
        InvalidHeader,
        "has no 'shape'",
    ),
    (
        "begin after end",
        _header_file({"t": _entry("U8", [0], 4, 0)}, bytes(4)),
        InvalidHeader,
        "begin <= end",
    ),
    (
        "size mismatch",
        _header_file({"t": _entry("F32", [2, 3], 0, 20)}, bytes(20)),
        InvalidHeader,
        "shape [2, 3] of F32 is 24 bytes but data_offsets span 20",
    ),
    (
        "absurd shape",
        _header_file({"t": _entry("F64", [2**64 - 1] * 4, 0, 8)}, bytes(8)),
        InvalidHeader,
        "data_offsets span 8",
    ),
    (
        "trailing bytes",
        _header_file({"t": _entry("U8", [4], 0, 4)}, bytes(6)),
        InvalidHeader,
        "2 bytes after the last tensor",
    ),
    (
        "missing bytes",
        _header_file({"t": _entry("U8", [4], 0, 4)}, bytes(3)),
        TruncatedFile,
        "tensors need 4 data bytes but the file holds 3",
    ),
    (
        "gap",
        _header_file(
            {"a": _entry("U8", [2], 0, 2), "b": _entry("U8", [2], 3, 5)}, bytes(5)
        ),
        InvalidHeader,
        "tensor 'b' starts at data offset 3, expected 2: leaves a gap",
    ),
    (
        "first tensor not at 0",
        _header_file({"a": _entry("U8", [2], 1, 3)}, bytes(3)),
        InvalidHeader,
        "expected 0: leaves a gap",
    ),
    (
        "overlap",
        _header_file(
            {"a": _entry("U8", [4], 0, 4), "b": _entry("U8", [2], 2, 4)}, bytes(4)
        ),
        InvalidHeader,
        "overlaps the previous tensor",
    ),
    (
        "metadata int value",
        _header_file({"__metadata__": {"epoch": 3}}),
        InvalidHeader,
        "__metadata__['epoch'] must be a string, got int",
    ),
    (
        "metadata list",
        _header_file({"__metadata__": ["a"]}),
        InvalidHeader,
        "__metadata__ must be an object, got list",
    ),
    (
        "lone surrogate name",
        _header_file(
            b'{"\\ud800": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
        ),
        InvalidHeader,
        "unpaired UTF-16 surrogate",
    ),
]


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [case[1:] for case in _BAD_CASES],
    ids=[case[0] for case in _BAD_CASES],
)
def test_hostile_header_rejected(
    data: bytes, error: type[FormatError], message: str
) -> None:
    """Each malformed file raises the named FormatError, naming the file and fault."""
    with pytest.raises(error) as caught:
        read_layout(BytesReader(data, "bad.safetensors"))
    assert type(caught.value) is error
    assert message in str(caught.value)
    assert str(caught.value).startswith("bad.safetensors: ")
    assert "\n" not in str(caught.value)
    with pytest.raises(error, match="bad.safetensors"):
        parse_header(data, path="bad.safetensors", file_size=len(data))


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    """A metadata string full of brackets (kohya stores JSON in strings) is accepted."""
    value = "[" * 5000 + "{" * 5000 + '\\"'
    layout = read_layout(BytesReader(_header_file({"__metadata__": {"tags": value}})))
    assert layout.metadata == {"tags": value}
    assert layout.tensors == ()


def _small_file() -> bytes:
    tensors = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.arange(4, dtype=np.int64),
        "c": np.zeros((0,), dtype=np.float16),
    }
    from safetensors.numpy import save

    return save(tensors, metadata={"k": "v"})


_SMALL = _small_file()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_format_error(data: bytes) -> None:
    """Arbitrary bytes either parse or raise FormatError, never anything else."""
    with contextlib.suppress(FormatError):
        read_layout(BytesReader(data))


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_SMALL) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    st.integers(0, len(_SMALL)),
)
def test_mutated_real_file_only_raises_format_error(
    edits: list[tuple[int, int]], cut: int
) -> None:
    """A library-written file with random bytes changed and cut short never crashes."""
    data = bytearray(_SMALL)
    for pos, value in edits:
        data[pos] = value
    try:
        layout = read_layout(BytesReader(bytes(data[: max(cut, 8)])))
    except FormatError:
        return
    end = max((t.offset + t.nbytes for t in layout.tensors), default=0)
    assert end <= max(cut, 8)


def _zero_size_header(count: int) -> bytes:
    """A valid header listing ``count`` zero-size tensors (no data section)."""
    entry = '"t.%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    raw = ("{" + ",".join(entry % i for i in range(count)) + "}").encode()
    return struct.pack("<Q", len(raw)) + raw


def test_a_million_tensors_is_refused_in_one_line_before_decoding() -> None:
    """Past MAX_TENSORS a valid header is refused by the documented cap."""
    from modelscan.scanner.layout import MAX_TENSORS

    data = _zero_size_header(1_000_000)
    with pytest.raises(InvalidHeader) as caught:
        read_layout(BytesReader(data, "many.safetensors"))
    message = str(caught.value)
    assert message.startswith("many.safetensors: ")
    assert f"cap of {MAX_TENSORS} per file" in message
    assert "README: Limits" in message
    assert "\n" not in message


def test_tensors_up_to_the_cap_are_listed() -> None:
    """A header at exactly MAX_TENSORS zero-size tensors parses, one span each."""
    from modelscan.scanner.layout import MAX_TENSORS

    layout = read_layout(BytesReader(_zero_size_header(MAX_TENSORS)))
    assert len(layout.tensors) == MAX_TENSORS
    assert {t.nbytes for t in layout.tensors} == {0}
    with pytest.raises(InvalidHeader, match="above modelscan's cap"):
        read_layout(BytesReader(_zero_size_header(MAX_TENSORS + 1)))
