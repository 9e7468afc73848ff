"""Legacy GGML magics: the published silero file, each variant, hostile bytes."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelscan.errors import FormatError, InvalidHeader, TruncatedFile, UnknownFormat
from modelscan.scanner.formats.ggml import parse_header, read_layout
from modelscan.scanner.layout import BytesReader
from modelscan.scanner.sniff import Format, detect_format


def test_silero_ggml_is_unversioned_ggml(model_files: dict[str, Path]) -> None:
    """The published whisper.cpp-style silero VAD file is variant ggml, no tensors."""
    data = model_files["silero_ggml"].read_bytes()
    assert detect_format(data[:64], len(data)) is Format.GGML
    reader = BytesReader(data, "ggml-silero.bin")
    layout = read_layout(reader)
    assert layout.format == "ggml"
    assert layout.metadata == {"ggml.variant": "ggml"}
    assert layout.tensors == ()
    assert reader.max_end <= 8


@pytest.mark.parametrize(
    ("magic", "variant", "version"),
    [
        (b"fmgg", "ggmf", 1),
        (b"tjgg", "ggjt", 3),
        (b"algg", "ggla", 1),
        (b"nsgg", "ggsn", 9),
    ],
)
def test_versioned_variants_report_version(
    magic: bytes, variant: str, version: int
) -> None:
    """Each versioned magic reports its variant and the u32 version after it."""
    data = magic + struct.pack("<I", version) + bytes(100)
    assert detect_format(data, len(data)) is Format.GGML
    layout = read_layout(BytesReader(data))
    assert layout.metadata == {"ggml.variant": variant, "ggml.version": version}


_BAD: list[tuple[str, bytes, type[FormatError], str]] = [
    ("empty", b"", TruncatedFile, "0 bytes is too short"),
    ("cut magic", b"tjg", TruncatedFile, "3 bytes is too short"),
    (
        "versioned cut",
        b"tjgg\x03\x00",
        TruncatedFile,
        "ggjt file ends before its version",
    ),
    ("gguf magic", b"GGUF\x03\x00\x00\x00", UnknownFormat, "magic 47475546"),
    ("version 0", b"fmgg" + bytes(8), InvalidHeader, "ggmf version 0 is not plausible"),
    (
        "version huge",
        b"tjgg\xff\xff\xff\xff",
        InvalidHeader,
        "4294967295 is not plausible",
    ),
]


@pytest.mark.parametrize(
    ("data", "error", "message"), [c[1:] for c in _BAD], ids=[c[0] for c in _BAD]
)
def test_hostile_or_short_rejected(
    data: bytes, error: type[FormatError], message: str
) -> None:
    """Short or wrong files raise the named FormatError, naming the file and fault."""
    with pytest.raises(error) as caught:
        read_layout(BytesReader(data, "old.bin"))
    assert type(caught.value) is error
    assert str(caught.value).startswith("old.bin: ")
    assert message in str(caught.value)
    with pytest.raises(error, match=message):
        parse_header(data, path="old.bin", file_size=len(data))


def test_truncated_real_file(model_files: dict[str, Path]) -> None:
    """The real file cut to 3 bytes is reported as truncated, not as another format."""
    data = model_files["silero_ggml"].read_bytes()[:3]
    with pytest.raises(TruncatedFile, match="too short for a GGML magic"):
        read_layout(BytesReader(data, "cut.bin"))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([b"lmgg", b"fmgg", b"tjgg", b"algg", b"nsgg", b""]),
    st.binary(max_size=12),
)
def test_random_bytes_only_raise_format_error(magic: bytes, tail: bytes) -> None:
    """Any bytes, with or without a GGML magic, parse or raise FormatError only."""
    with contextlib.suppress(FormatError):
        read_layout(BytesReader(magic + tail))
