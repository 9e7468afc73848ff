r"""Detect a model file's format from its first bytes, never from its name.

Example:
    >>> detect_format(b"GGUF\\x03\\x00\\x00\\x00", 1000)
    <Format.GGUF: 'gguf'>
"""

from __future__ import annotations

import enum
import struct
import zlib

HEAD_BYTES = 64 * 1024  # what sniffing and most header parsers read first

# The first object torch's legacy (non-zip) serializer pickles: a magic integer.
TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PREFIX = b"\x80\x02\x8a\x0a" + TORCH_LEGACY_MAGIC.to_bytes(10, "little")

# Legacy GGML family magics, as the little-endian u32 appears on disk.
_GGML_MAGICS = {
    b"lmgg": "ggml",
    b"fmgg": "ggmf",
    b"tjgg": "ggjt",
    b"algg": "ggla",
    b"nsgg": "ggsn",
}

_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
NPY_MAGIC = b"\x93NUMPY"
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
_COMPRESSION_MAGICS = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
)


class Format(enum.StrEnum):
    """Container formats modelscan knows."""

    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    GGML = "ggml"  # legacy llama.cpp/whisper.cpp files: file-level hashes only
    ZIP = "zip"  # a zip; torch_zip decides whether it is a torch checkpoint
    TORCH_LEGACY = (
        "torch-legacy"  # torch.save(..., _use_new_zipfile_serialization=False)
    )
    PICKLE = "pickle"  # any head that reads as a pickle opcode stream, joblib too
    NPY = "npy"  # numpy .npy: an object array's data is a pickle
    TAR = "tar"
    SEVEN_ZIP = "7z"
    COMPRESSED = "compressed"  # gzip, bz2, xz, lzma or zlib: joblib's compressors
    UNKNOWN = "unknown"


def detect_format(head: bytes, size: int) -> Format:
    """Return the format that ``head`` (the file's first bytes) announces.

    Args:
        head: the first bytes of the file, ideally ``HEAD_BYTES`` of them.
        size: the file's full size, to sanity-check a safetensors length prefix.

    Returns:
        A :class:`Format`; ``Format.UNKNOWN`` when nothing matches (see
        :func:`why_unknown` for a reason a user can act on).
    """
    if head[:4] == b"GGUF":
        return Format.GGUF
    if head[:4] in _GGML_MAGICS:
        return Format.GGML
    if head[:4] == b"PK\x03\x04" or (head[:4] == b"PK\x05\x06" and size >= 22):
        return Format.ZIP
    if head.startswith(_TORCH_LEGACY_PREFIX):
        return Format.TORCH_LEGACY
    if _is_safetensors(head, size):
        return Format.SAFETENSORS
    if head.startswith(NPY_MAGIC):
        return Format.NPY
    if head.startswith(SEVEN_ZIP_MAGIC):
        return Format.SEVEN_ZIP
    if head[257:262] == b"ustar":
        return Format.TAR
    if compression_of(head) is not None:
        return Format.COMPRESSED
    from modelscan.scanner.formats.pickle_walk import sniff_pickle

    if sniff_pickle(head, size):
        return Format.PICKLE
    return Format.UNKNOWN


def compression_of(head: bytes) -> str | None:
    """The compressor whose stream ``head`` starts, as joblib writes them, or None.

    zlib has no magic, only a checked 2-byte header: it counts only when a
    first block inflates.
    """
    for magic, name in _COMPRESSION_MAGICS:
        if head.startswith(magic):
            return name
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        try:
            zlib.decompressobj().decompress(head[:4096], 64)
        except zlib.error:
            return None
        return "zlib"
    return None


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack_from("<Q", head)
    # The header is JSON starting with '{'; the parser checks everything else.
    return head[8:9] == b"{" and n >= 2 and n <= size - 8


def why_unknown(head: bytes, size: int) -> str:
    """Explain, for a user, why a file is not a model file."""
    if size == 0:
        return "empty file"
    if head.startswith(_LFS_POINTER):
        return "a Git LFS pointer, not the weights: fetch the real file (git lfs pull)"
    stripped = head[:512].lstrip().lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "looks like HTML (an error or login page saved in place of the file?)"
    if stripped.startswith((b"{", b"[")):
        return "looks like JSON text, not weights"
    if head[:4] == b"\x89HDF":
        return "an HDF5 file (Keras .h5): not supported yet"
    try:
        head[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return f"unrecognised magic bytes {head[:8].hex()}"
    return "looks like text, not weights"
