r"""Recognise legacy GGML-family files (before GGUF): file-level hashes only.

Old llama.cpp, whisper.cpp and their forks wrote a little-endian u32 magic and,
for most variants, a u32 version, then hyper-parameters and tensors in a layout
that differs per program. modelscan does not locate tensors in them: the
:class:`Layout` names the variant (and version) and has no tensors, so the file
is fingerprinted by its whole-file hashes.

Example:
    >>> parse_header(b"tjgg\x03\x00\x00\x00", path="m.bin", file_size=8).metadata
    {'ggml.variant': 'ggjt', 'ggml.version': 3}
"""

from __future__ import annotations

import struct

from modelscan.errors import InvalidHeader, TruncatedFile, UnknownFormat
from modelscan.scanner.layout import Layout, RangeReader

# On-disk bytes of each magic -> (variant name, whether a u32 version follows).
VARIANTS: dict[bytes, tuple[str, bool]] = {
    b"lmgg": ("ggml", False),  # unversioned: llama.cpp before May 2023, whisper.cpp
    b"fmgg": ("ggmf", True),  # llama.cpp, versioned
    b"tjgg": ("ggjt", True),  # llama.cpp, mmap-able (versions 1-3)
    b"algg": ("ggla", True),  # llama.cpp LoRA adapter
    b"nsgg": ("ggsn", True),  # llama.cpp saved session state
}
MAX_VERSION = 0xFFFF  # real versions are single digits; above this is not a version


def read_layout(reader: RangeReader) -> Layout:
    """Identify a legacy GGML file from its first 8 bytes.

    Args:
        reader: random access to the file.

    Returns:
        ``Layout(format="ggml")`` with ``ggml.variant`` (and ``ggml.version``
        when the variant has one) in its metadata, and no tensors.

    Raises:
        TruncatedFile: the file ends inside the magic or the version.
        UnknownFormat: the magic is not a GGML-family magic.
        InvalidHeader: the version field cannot be a version.
    """
    head = reader.read_at(0, min(8, reader.size))
    return parse_header(head, path=reader.name, file_size=reader.size)


def parse_header(buf: bytes, *, path: str, file_size: int) -> Layout:
    """Identify a legacy GGML file from its first bytes (8 are enough).

    Args:
        buf: the start of the file.
        path: the file's path or URL, for error messages.
        file_size: the full size of the file in bytes.

    Returns:
        The file's :class:`Layout`, as :func:`read_layout` describes it.

    Raises:
        TruncatedFile: the file ends inside the magic or the version.
        UnknownFormat: the magic is not a GGML-family magic.
        InvalidHeader: the version field cannot be a version.
    """
    have = min(len(buf), file_size)
    if have < 4:
        raise TruncatedFile(path, f"{have} bytes is too short for a GGML magic")
    magic = bytes(buf[:4])
    if magic not in VARIANTS:
        raise UnknownFormat(path, f"magic {magic.hex()} is not a GGML-family magic")
    variant, versioned = VARIANTS[magic]
    metadata: dict[str, str | int] = {"ggml.variant": variant}
    if versioned:
        if have < 8:
            raise TruncatedFile(path, f"{variant} file ends before its version field")
        (version,) = struct.unpack_from("<I", buf, 4)
        if not 1 <= version <= MAX_VERSION:
            raise InvalidHeader(path, f"{variant} version {version} is not plausible")
        metadata["ggml.version"] = version
    return Layout("ggml", (), dict(metadata))
