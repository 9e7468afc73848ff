"""Parse and validate a safetensors header into a :class:`Layout`.

The checks follow the ``safetensors`` Rust crate (``read_metadata`` and
``Metadata::validate``): an 8-byte little-endian header length N (at most
100 MB and inside the file), N bytes of UTF-8 JSON, then a data section that
the tensors' ``data_offsets`` cover exactly, in order, without gaps or overlap.

Example:
    >>> import json, struct
    >>> hdr = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})
    >>> raw = hdr.encode()
    >>> buf = struct.pack("<Q", len(raw)) + raw + bytes(8)
    >>> layout = parse_header(buf, path="m.safetensors", file_size=len(buf))
    >>> layout.tensors[0].offset == 8 + len(raw), layout.tensors[0].nbytes
    (True, 8)
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
import struct
from typing import Any

from modelscan.errors import HeaderTooLarge, InvalidHeader, TruncatedFile
from modelscan.scanner.layout import (
    DTYPE_SIZES,
    MAX_NAME_BYTES,
    MAX_RANK,
    MAX_TENSORS,
    Layout,
    RangeReader,
    TensorSpan,
    gc_paused,
    too_many_tensors,
)

MAX_HEADER_BYTES = 100_000_000  # the safetensors crate's MAX_HEADER_SIZE
MAX_JSON_DEPTH = 64  # a valid header nests 3 deep; json.loads recurses per level
_U64_MAX = 2**64 - 1
_METADATA_KEY = "__metadata__"
# A JSON string literal (escapes included), so brackets inside strings are skipped.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# A "data_offsets" key (a string token followed by a colon cannot sit inside a
# string literal, whose quotes are escaped): one per tensor entry.
_TENSOR_KEY = re.compile(rb'"data_offsets"\s*:')
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
# After deleting every other byte: an opening bracket counts 2, a closing one 0,
# so the prefix sum minus the bytes seen is the nesting depth (see _max_depth).
_STEPS = bytes.maketrans(b"[{]}", bytes([2, 2, 0, 0]))


class _DuplicateKey(ValueError):
    """Raised from the JSON object hook when a key repeats."""


def read_layout(reader: RangeReader) -> Layout:
    """Read and validate the header of a safetensors file through ``reader``.

    Only the length prefix and the JSON header are read, never tensor data.

    Args:
        reader: random access to the file.

    Returns:
        The file's :class:`Layout` (tensors in data order, absolute offsets).

    Raises:
        TruncatedFile: the file ends before its header or its tensors.
        HeaderTooLarge: the declared header length is above 100 MB.
        InvalidHeader: the header breaks a safetensors rule.
    """
    path, size = reader.name, reader.size
    if size < 8:
        raise TruncatedFile(path, _too_small(size))
    n = header_length(reader.read_at(0, 8), path=path, file_size=size)
    return parse_json_header(reader.read_at(8, n), path=path, file_size=size)


def parse_header(buf: bytes, *, path: str, file_size: int) -> Layout:
    """Parse a safetensors header from the file's first bytes.

    Args:
        buf: the start of the file, at least ``8 + N`` bytes (N from the prefix).
        path: the file's path or URL, for error messages.
        file_size: the full size of the file in bytes.

    Returns:
        The file's :class:`Layout`.

    Raises:
        TruncatedFile: ``buf`` or the file ends before the header or tensors.
        HeaderTooLarge: the declared header length is above 100 MB.
        InvalidHeader: the header breaks a safetensors rule.
    """
    if len(buf) < 8:
        raise TruncatedFile(path, _too_small(len(buf)))
    n = header_length(buf[:8], path=path, file_size=file_size)
    if len(buf) < 8 + n:
        raise TruncatedFile(
            path, f"header needs {8 + n} bytes but only {len(buf)} were given"
        )
    return parse_json_header(buf[8 : 8 + n], path=path, file_size=file_size)


def header_length(prefix: bytes, *, path: str, file_size: int) -> int:
    """Return N, the JSON header length in the 8-byte prefix, after bounding it.

    Raises:
        TruncatedFile: fewer than 8 bytes, or N runs past the end of the file.
        HeaderTooLarge: N is above :data:`MAX_HEADER_BYTES`.
    """
    if len(prefix) < 8:
        raise TruncatedFile(path, _too_small(len(prefix)))
    (n,) = struct.unpack_from("<Q", prefix)
    if n > MAX_HEADER_BYTES:
        raise HeaderTooLarge(
            path, f"header length {n} is above the {MAX_HEADER_BYTES}-byte limit"
        )
    if n > file_size - 8:
        raise TruncatedFile(
            path, f"header length {n} runs past the end of a {file_size}-byte file"
        )
    return int(n)


def parse_json_header(raw: bytes, *, path: str, file_size: int) -> Layout:
    """Validate the N JSON header bytes and locate every tensor in the file.

    Args:
        raw: the header bytes that follow the 8-byte length prefix.
        path: the file's path or URL, for error messages.
        file_size: the full size of the file, to check the data section.

    Returns:
        The file's :class:`Layout`.

    Raises:
        TruncatedFile: the tensors need more data than the file holds.
        InvalidHeader: the header breaks a safetensors rule.
    """
    listed = len(_TENSOR_KEY.findall(raw))  # objects with data_offsets: >= tensors
    if listed > MAX_TENSORS + 1:  # refused before json builds a million objects
        raise InvalidHeader(path, "header " + too_many_tensors(f"about {listed}"))
    doc = _load_json(raw, path)
    metadata = _parse_metadata(doc.pop(_METADATA_KEY, None), path)
    if len(doc) > MAX_TENSORS:
        raise InvalidHeader(path, "header " + too_many_tensors(len(doc)))
    entries = [_parse_entry(name, info, path) for name, info in doc.items()]
    entries.sort(key=lambda e: (e[3], e[4]))  # stable: JSON order breaks ties
    body = 8 + len(raw)
    end = _check_offsets(entries, path)
    data_size = file_size - body
    if end > data_size:
        raise TruncatedFile(
            path, f"tensors need {end} data bytes but the file holds {data_size}"
        )
    if end < data_size:
        raise InvalidHeader(
            path, f"{data_size - end} bytes after the last tensor belong to no tensor"
        )
    tensors = tuple(
        TensorSpan(name, dtype, shape, offset=body + begin, nbytes=stop - begin)
        for name, dtype, shape, begin, stop in entries
    )
    return Layout("safetensors", tensors, metadata, body_offset=body)


_Entry = tuple[str, str, tuple[int, ...], int, int]


def _too_small(size: int) -> str:
    return f"{size} bytes is too short for a safetensors 8-byte header length"


def _load_json(raw: bytes, path: str) -> dict[str, Any]:
    """Decode the header as UTF-8 JSON, bounding nesting before json recurses."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidHeader(
            path, f"header is not valid UTF-8 (bad byte at offset {8 + exc.start})"
        ) from exc
    if _max_depth(raw) > MAX_JSON_DEPTH:
        raise InvalidHeader(path, f"header JSON nests deeper than {MAX_JSON_DEPTH}")
    try:
        with gc_paused():  # many small objects: collections would double the time
            doc = json.loads(
                text, object_pairs_hook=_unique_keys, parse_constant=_reject_constant
            )
    except _DuplicateKey as exc:
        raise InvalidHeader(path, f"header repeats the key {exc}") from exc
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidHeader(path, f"header is not valid JSON: {reason}") from exc
    if not isinstance(doc, dict):
        raise InvalidHeader(
            path, f"header must be a JSON object, got {type(doc).__name__}"
        )
    return doc


def _max_depth(raw: bytes) -> int:
    """Deepest bracket nesting outside string literals (exact prefix depth)."""
    brackets = _JSON_STRING.sub(b'""', raw).translate(None, _NOT_BRACKETS)
    steps = brackets.translate(_STEPS)
    # depth after the i-th bracket (from 1) = opens - closes = sum(steps) - i;
    # every step runs in C (no numpy: its import alone costs 0.1 s of start-up).
    depths = map(operator.sub, itertools.accumulate(steps), itertools.count(1))
    return max(depths, default=0)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # rare: find which key repeats
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKey(repr(key))
            seen.add(key)
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _parse_metadata(value: Any, path: str) -> dict[str, str]:
    """``__metadata__`` is optional (null counts as absent) and maps str to str."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidHeader(
            path, f"__metadata__ must be an object, got {type(value).__name__}"
        )
    for key, item in value.items():
        _utf8(key, "an __metadata__ key", path)
        if not isinstance(item, str):
            raise InvalidHeader(
                path,
                f"__metadata__[{key!r}] must be a string, got {type(item).__name__}",
            )
        _utf8(item, f"__metadata__[{key!r}]", path)
    return dict(value)


def _parse_entry(name: str, info: Any, path: str) -> _Entry:
    """Check one tensor entry: dtype, shape, data_offsets and their byte count."""
    where = f"tensor {name[:200]!r}"
    if len(_utf8(name, "a tensor name", path)) > MAX_NAME_BYTES:
        raise InvalidHeader(
            path, f"a tensor name is longer than {MAX_NAME_BYTES} bytes"
        )
    if not isinstance(info, dict):
        raise InvalidHeader(path, f"{where} must be an object")
    for key in ("dtype", "shape", "data_offsets"):
        if key not in info:
            raise InvalidHeader(path, f"{where} has no {key!r}")
    dtype = info["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise InvalidHeader(path, f"{where} has unknown dtype {dtype!r}")
    shape = _int_list(info["shape"], f"{where} shape", path)
    if len(shape) > MAX_RANK:
        raise InvalidHeader(path, f"{where} has rank {len(shape)} > {MAX_RANK}")
    offsets = _int_list(info["data_offsets"], f"{where} data_offsets", path)
    if len(offsets) != 2 or offsets[0] > offsets[1]:
        raise InvalidHeader(
            path, f"{where} data_offsets must be [begin, end], begin <= end"
        )
    need = math.prod(shape) * DTYPE_SIZES[dtype]
    if need != offsets[1] - offsets[0]:
        raise InvalidHeader(
            path,
            f"{where}: shape {list(shape)} of {dtype} is {need} bytes "
            f"but data_offsets span {offsets[1] - offsets[0]}",
        )
    return name, dtype, shape, offsets[0], offsets[1]


def _utf8(text: str, what: str, path: str) -> bytes:
    """Encode ``text``; JSON escapes can carry lone surrogates, which serde rejects."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidHeader(path, f"{what} holds an unpaired UTF-16 surrogate") from exc


def _int_list(value: Any, what: str, path: str) -> tuple[int, ...]:
    """A JSON list of integers in [0, 2**64): what Rust's usize accepts."""
    if not isinstance(value, list) or len(value) > MAX_RANK:
        raise InvalidHeader(path, f"{what} must be a short list of integers")
    for item in value:
        if type(item) is not int or not 0 <= item <= _U64_MAX:
            raise InvalidHeader(path, f"{what} holds {item!r}, not an integer >= 0")
    return tuple(value)


def _check_offsets(entries: list[_Entry], path: str) -> int:
    """Sorted tensors must tile the data section from 0; return where they end."""
    end = 0
    for name, _dtype, _shape, begin, stop in entries:
        if begin != end:
            problem = "overlaps the previous tensor" if begin < end else "leaves a gap"
            raise InvalidHeader(
                path,
                f"tensor {name[:200]!r} starts at data offset {begin}, expected {end}: "
                f"{problem}",
            )
        end = stop
    return end
