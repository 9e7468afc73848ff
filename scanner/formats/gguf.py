"""Parse and validate a GGUF (v2, v3) header into a :class:`Layout`.

The layout is read as llama.cpp's ``gguf.cpp`` reads it: magic ``GGUF``, u32
version, u64 tensor count, u64 key-value count, the key-values (u64-length
strings, u32 value types, arrays with a u32 item type and u64 length), the tensor
infos (name, u32 n_dims <= 4, u64 ne[], u32 ggml type, u64 offset), then padding
to ``general.alignment`` (default 32) and the data section. Every count and length
is bounded by the bytes left in the file and by :data:`MAX_HEADER_BYTES` before
anything is read or allocated, so a hostile header cannot exhaust memory.

Headers of real models reach many MB (150k-token vocabularies), so
:func:`read_layout` reads through the :class:`RangeReader` in 1 MiB windows.

Example:
    >>> import struct
    >>> head = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    >>> parse_header(head, path="m.gguf", file_size=len(head)).metadata
    {'gguf.version': 3}
"""

from __future__ import annotations

import collections
import math
import struct
from collections.abc import Callable
from typing import Any

from modelscan.errors import HeaderTooLarge, InvalidHeader, TruncatedFile, UnknownFormat
from modelscan.scanner.ggml_types import GGML_TYPES
from modelscan.scanner.layout import (
    DTYPE_SIZES,
    MAX_NAME_BYTES,
    MAX_TENSORS,
    Layout,
    RangeReader,
    TensorSpan,
    too_many_tensors,
)

MAX_HEADER_BYTES = 256 << 20  # far above any published header (~10 MiB with vocab)
MAX_KV = 1_000_000
MAX_ARRAY_LEN = 1 << 30  # gguf.cpp GGUF_MAX_ARRAY_ELEMENTS
MAX_ARRAY_DEPTH = 8  # gguf.cpp refuses nested arrays; gguf-py writes them
MAX_DIMS = 4  # GGML_MAX_DIMS
KEEP_ARRAY_ITEMS = 64  # longer arrays are summarised in the metadata
DEFAULT_ALIGNMENT = 32
SUPPORTED_VERSIONS = (2, 3)
_CHUNK = 1 << 20
_I64_MAX = 2**63 - 1

# GGUF value type id -> (name, struct code); STRING and ARRAY have no fixed size.
_STRING, _ARRAY = 8, 9
_SCALARS: dict[int, tuple[str, str]] = {
    0: ("uint8", "B"),
    1: ("int8", "b"),
    2: ("uint16", "H"),
    3: ("int16", "h"),
    4: ("uint32", "I"),
    5: ("int32", "i"),
    6: ("float32", "f"),
    7: ("bool", "b"),
    10: ("uint64", "Q"),
    11: ("int64", "q"),
    12: ("float64", "d"),
}
_TYPE_NAMES = {k: v[0] for k, v in _SCALARS.items()} | {8: "string", 9: "array"}
_MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, a 1-byte key, value type, a u8 value
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # empty name, n_dims, type, offset
# First guesses of an item's size before any was read (a vocabulary token with
# its length, a tensor info with a short name and two dims); then the mean so far.
_STRING_GUESS = 8 + 8
_TENSOR_INFO_GUESS = 8 + 24 + 4 + 16 + 4 + 8


def read_layout(
    reader: RangeReader, *, window: tuple[int, int] = (_CHUNK, _CHUNK)
) -> Layout:
    """Read and validate a GGUF header through ``reader`` (tensor data is not read).

    Args:
        reader: random access to the file.
        window: (smallest, largest) read. Between the two the size of each read
            follows the parser's estimate of the bytes it needs next (a
            vocabulary array's remaining strings, the tensor infos), so a remote
            read of the header neither pays a request per 64 KiB nor reads far
            past the header's end. The default reads in fixed 1 MiB windows.

    Returns:
        The file's :class:`Layout`: tensors in header order with absolute offsets,
        shapes outermost first, and the key-values as metadata.

    Raises:
        UnknownFormat: the file does not start with ``GGUF``.
        TruncatedFile: the file ends inside the header or a tensor's data.
        HeaderTooLarge: a count or the header itself is above the sanity caps.
        InvalidHeader: the header breaks a GGUF rule.
    """
    cursor = _Cursor(
        reader.read_at, path=reader.name, file_size=reader.size, window=window
    )
    return _parse(cursor)


def parse_header(buf: bytes, *, path: str, file_size: int) -> Layout:
    """Parse a GGUF header from the file's first bytes.

    Args:
        buf: a prefix of the file holding at least the whole header.
        path: the file's path or URL, for error messages.
        file_size: the full size of the file in bytes.

    Returns:
        The file's :class:`Layout`, as :func:`read_layout` gives it.

    Raises:
        UnknownFormat: the file does not start with ``GGUF``.
        TruncatedFile: the header runs past ``buf`` or the file.
        HeaderTooLarge: a count or the header itself is above the sanity caps.
        InvalidHeader: the header breaks a GGUF rule.
    """
    return _parse(
        _Cursor(lambda off, n: buf[off : off + n], path=path, file_size=file_size)
    )


class _Cursor:
    """Sequential reads over a random-access source, through a window of bytes."""

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        *,
        path: str,
        file_size: int,
        window: tuple[int, int] = (_CHUNK, _CHUNK),
    ) -> None:
        self.fetch = fetch
        self.path = path
        self.size = file_size
        self.pos = 0
        self.hint = 0  # bytes the parser expects to read next (0: no estimate)
        self._window = window
        self._buf = b""
        self._base = 0

    def prime(self) -> None:
        """Fetch the first window from offset 0 (the magic and what follows)."""
        self._buf = self.fetch(0, min(self._window[0], self.size))
        self._base = 0

    def require(self, n: int, what: str) -> None:
        """Fail unless ``n`` more bytes fit in the file and under the header cap."""
        end = self.pos + n
        if end > MAX_HEADER_BYTES:
            raise HeaderTooLarge(
                self.path, f"{what} ends past the {MAX_HEADER_BYTES}-byte header cap"
            )
        if end > self.size:
            raise TruncatedFile(
                self.path,
                f"{what} needs bytes up to {end} but the file ends at {self.size}",
            )

    def take(self, n: int, what: str) -> int:
        """Advance by ``n`` bytes; return their offset in ``self._buf``."""
        self.require(n, what)
        if self.pos + n > self._base + len(self._buf):
            lo, hi = self._window
            want = min(max(n, min(max(lo, self.hint), hi)), self.size - self.pos)
            self._buf = self.fetch(self.pos, want)
            self._base = self.pos
            if len(self._buf) < n:
                raise TruncatedFile(
                    self.path,
                    f"{what} lies past the {self.pos + len(self._buf)} bytes given",
                )
        at = self.pos - self._base
        self.pos += n
        return at

    def skip(self, n: int, what: str) -> None:
        """Advance by ``n`` bytes without fetching them."""
        self.require(n, what)
        self.pos += n

    def unpack(self, code: str, what: str) -> Any:
        """Read one little-endian value of struct ``code``."""
        at = self.take(struct.calcsize(code), what)
        return struct.unpack_from("<" + code, self._buf, at)[0]

    def raw(self, n: int, what: str) -> bytes:
        """Read ``n`` bytes."""
        if n > _CHUNK:  # one-off fetch; keeps the window small
            self.require(n, what)
            data = self.fetch(self.pos, n)
            if len(data) < n:
                raise TruncatedFile(self.path, f"{what} lies past the bytes given")
            self.pos += n
            return data
        at = self.take(n, what)
        return self._buf[at : at + n]

    def string_bytes(self, what: str) -> bytes:
        """Read a u64-length-prefixed string."""
        return self.raw(self.length(what), what)

    def length(self, what: str) -> int:
        """Read a u64 string length and check the bytes exist."""
        n = int(self.unpack("Q", f"length of {what}"))
        self.require(n, f"{what} ({n} bytes)")
        return n


def _parse(c: _Cursor) -> Layout:
    c.prime()
    magic = c.raw(min(4, c.size), "magic")
    if magic != b"GGUF":
        found = magic.hex() or "nothing (empty file)"
        raise UnknownFormat(c.path, f"starts with {found}, not the GGUF magic")
    c.pos = 4
    version = _check_version(c.unpack("I", "version"), c.path)
    n_tensors = _count(c, "tensor count", MAX_TENSORS, _MIN_TENSOR_BYTES)
    n_kv = _count(c, "metadata count", MAX_KV, _MIN_KV_BYTES)
    kvs = _read_kvs(c, n_kv)
    alignment = _alignment(kvs, c.path)
    infos = []
    start = c.pos
    for i in range(n_tensors):
        c.hint = _estimate(c.pos - start, i, n_tensors, _TENSOR_INFO_GUESS)
        infos.append(_read_tensor_info(c, i))
    c.hint = 0
    names = collections.Counter(name for name, *_ in infos)
    for name, seen in names.items():
        if seen > 1:
            raise InvalidHeader(c.path, f"tensor name {name[:200]!r} appears twice")
    data_start = _align(c.pos, alignment) if infos else c.pos
    tensors = _place_tensors(infos, data_start, alignment, c)
    metadata: dict[str, Any] = {key: value for key, (_t, value) in kvs.items()}
    metadata["gguf.version"] = version
    return Layout("gguf", tensors, metadata)


def _check_version(version: int, path: str) -> int:
    if version & 0xFFFF == 0 and version:
        raise InvalidHeader(
            path,
            f"version field {version:#x} looks byte-swapped: big-endian GGUF "
            "is not supported",
        )
    if version == 1:
        raise InvalidHeader(
            path,
            "GGUF v1 is obsolete and not supported; convert it again with a "
            "current llama.cpp",
        )
    if version not in SUPPORTED_VERSIONS:
        raise InvalidHeader(path, f"unsupported GGUF version {version} (know 2 and 3)")
    return version


def _count(c: _Cursor, what: str, cap: int, min_bytes: int) -> int:
    """Read a u64 count; bound it by the bytes left in the file, then by a cap.

    A count the file cannot hold is a truncated file, whatever its size; one it
    could hold but above the cap is refused by the cap.
    """
    n = int(c.unpack("Q", what))
    if c.pos + n * min_bytes > c.size:
        raise TruncatedFile(
            c.path,
            f"{what} {n} needs at least {n * min_bytes} more bytes; "
            f"the file has {c.size - c.pos} left",
        )
    if n > cap and cap == MAX_TENSORS:
        raise HeaderTooLarge(c.path, f"{what}: the header {too_many_tensors(n)}")
    if n > cap:
        raise HeaderTooLarge(c.path, f"{what} {n} is above the {cap} cap")
    return n


def _read_kvs(c: _Cursor, n_kv: int) -> dict[str, tuple[int, Any]]:
    kvs: dict[str, tuple[int, Any]] = {}
    for i in range(n_kv):
        key = _utf8(c.string_bytes(f"key of metadata entry {i}"), "metadata key", c)
        if not key:
            raise InvalidHeader(c.path, f"metadata entry {i} has an empty key")
        if key in kvs:
            raise InvalidHeader(c.path, f"metadata key {key[:200]!r} appears twice")
        vtype = c.unpack("I", f"type of {key[:200]!r}")
        kvs[key] = (vtype, _read_value(c, vtype, f"metadata {key[:200]!r}", 0))
    return kvs


def _read_value(c: _Cursor, vtype: int, what: str, depth: int) -> Any:
    if vtype in _SCALARS:
        code = _SCALARS[vtype][1]
        value = c.unpack(code, what)
        return bool(value) if vtype == 7 else value
    if vtype == _STRING:
        return c.string_bytes(what).decode("utf-8", "replace")
    if vtype == _ARRAY:
        item_type = c.unpack("I", f"item type of {what}")
        n = int(c.unpack("Q", f"length of {what}"))
        return _read_array(c, item_type, n, what, depth + 1)
    raise InvalidHeader(c.path, f"{what} has unknown value type {vtype}")


def _read_array(c: _Cursor, item_type: int, n: int, what: str, depth: int) -> Any:
    """Read an array's values, or skip it and return a summary when it is long."""
    _check_array(c, item_type, n, what, depth)
    summary = {"type": "array", "item_type": _TYPE_NAMES[item_type], "len": n}
    if n > KEEP_ARRAY_ITEMS:
        _skip_items(c, item_type, n, what, depth)
        return summary
    if item_type in _SCALARS:
        code = _SCALARS[item_type][1]
        values = list(
            struct.unpack_from(f"<{n}{code}", c.raw(n * struct.calcsize(code), what))
        )
        return [bool(v) for v in values] if item_type == 7 else values
    items = [_read_value(c, item_type, what, depth) for _ in range(n)]
    if item_type == _ARRAY and sum(_leaves(item) for item in items) > KEEP_ARRAY_ITEMS:
        return summary
    return items


def _check_array(c: _Cursor, item_type: int, n: int, what: str, depth: int) -> None:
    """Bound an array's nesting, type and length before reading any item."""
    if depth > MAX_ARRAY_DEPTH:
        raise InvalidHeader(
            c.path, f"{what} nests arrays deeper than {MAX_ARRAY_DEPTH}"
        )
    if item_type not in _TYPE_NAMES:
        raise InvalidHeader(c.path, f"{what} has unknown item type {item_type}")
    if n > MAX_ARRAY_LEN:
        raise HeaderTooLarge(
            c.path, f"{what} has {n} items, above the {MAX_ARRAY_LEN} cap"
        )
    c.require(n * _min_item_bytes(item_type), f"{what} ({n} items)")


def _leaves(value: Any) -> int:
    """How many values a kept nested array holds (summaries count as too many)."""
    if isinstance(value, dict):
        return KEEP_ARRAY_ITEMS + 1
    if isinstance(value, list):
        return sum(_leaves(v) for v in value)
    return 1


def _min_item_bytes(item_type: int) -> int:
    if item_type in _SCALARS:
        return struct.calcsize(_SCALARS[item_type][1])
    return 8 if item_type == _STRING else 4 + 8


def _skip_items(c: _Cursor, item_type: int, n: int, what: str, depth: int) -> None:
    """Walk past ``n`` items without keeping them (strings need their lengths)."""
    if item_type in _SCALARS:
        c.skip(n * _min_item_bytes(item_type), what)
        return
    start = c.pos
    for i in range(n):
        c.hint = _estimate(c.pos - start, i, n, _STRING_GUESS)
        if item_type == _STRING:
            c.skip(c.length(f"an item of {what}"), what)
        else:
            inner = c.unpack("I", f"item type in {what}")
            count = int(c.unpack("Q", f"length in {what}"))
            _check_array(c, inner, count, what, depth + 1)
            _skip_items(c, inner, count, what, depth + 1)
    c.hint = 0


def _estimate(used: int, done: int, total: int, guess: int) -> int:
    """Bytes the ``total - done`` items left will take: the mean so far, plus 25%.

    >>> _estimate(160, 10, 100, 8)
    1800
    """
    mean = used // done if done else guess
    return (total - done) * mean * 5 // 4  # a quarter more: items vary in size


def _alignment(kvs: dict[str, tuple[int, Any]], path: str) -> int:
    if "general.alignment" not in kvs:
        return DEFAULT_ALIGNMENT
    vtype, value = kvs["general.alignment"]
    if vtype != 4:
        raise InvalidHeader(
            path, f"general.alignment must be uint32, not {_TYPE_NAMES[vtype]}"
        )
    if value == 0 or value & (value - 1):
        raise InvalidHeader(path, f"general.alignment {value} is not a power of two")
    return int(value)


_Info = tuple[str, tuple[int, ...], int, int]  # name, ne, ggml type id, offset


def _read_tensor_info(c: _Cursor, i: int) -> _Info:
    raw_name = c.string_bytes(f"name of tensor {i}")
    if len(raw_name) > MAX_NAME_BYTES:
        raise InvalidHeader(c.path, f"tensor {i} name is over {MAX_NAME_BYTES} bytes")
    name = _utf8(raw_name, "tensor name", c)
    where = f"tensor {name[:200]!r}"
    n_dims = c.unpack("I", f"n_dims of {where}")
    if n_dims > MAX_DIMS:
        raise InvalidHeader(c.path, f"{where} has {n_dims} dimensions (max {MAX_DIMS})")
    ne = tuple(int(c.unpack("Q", f"shape of {where}")) for _ in range(n_dims))
    if any(dim > _I64_MAX for dim in ne) or math.prod(ne) > _I64_MAX:
        raise InvalidHeader(c.path, f"{where} has an impossible shape {list(ne)}")
    type_id = c.unpack("I", f"type of {where}")
    known = GGML_TYPES.get(type_id)
    if known is None:
        raise InvalidHeader(c.path, f"{where} has unknown ggml type {type_id}")
    type_name, block, _size = known
    row = ne[0] if ne else 1
    if row % block:
        raise InvalidHeader(
            c.path,
            f"{where} of type {type_name} has rows of {row} elements, "
            f"not a multiple of its block size {block}",
        )
    offset = int(c.unpack("Q", f"data offset of {where}"))
    return name, ne, type_id, offset


def _place_tensors(
    infos: list[_Info], data_start: int, alignment: int, c: _Cursor
) -> tuple[TensorSpan, ...]:
    """Turn infos into spans: aligned, inside the file, not overlapping."""
    spans = []
    for name, ne, type_id, offset in infos:
        where = f"tensor {name[:200]!r}"
        if offset % alignment:
            raise InvalidHeader(
                c.path, f"{where} data offset {offset} is not a multiple of {alignment}"
            )
        type_name, block, type_size = GGML_TYPES[type_id]
        nbytes = math.prod(ne) // block * type_size
        start = data_start + offset
        if start + nbytes > c.size:
            raise TruncatedFile(
                c.path,
                f"{where} needs bytes up to {start + nbytes} but the file "
                f"ends at {c.size}",
            )
        plain = type_name in DTYPE_SIZES
        spans.append(
            TensorSpan(
                name,
                type_name,
                tuple(reversed(ne)),
                offset=start,
                nbytes=nbytes,
                ggml_type=None if plain else type_id,
            )
        )
    _check_no_overlap(spans, c.path)
    return tuple(spans)


def _check_no_overlap(spans: list[TensorSpan], path: str) -> None:
    ordered = sorted(spans, key=lambda s: (s.offset, s.nbytes))
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if cur.offset < prev.offset + prev.nbytes:
            raise InvalidHeader(
                path, f"tensor {cur.name[:200]!r} overlaps tensor {prev.name[:200]!r}"
            )


def _utf8(raw: bytes, what: str, c: _Cursor) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidHeader(c.path, f"a {what} is not valid UTF-8") from None


def _align(pos: int, alignment: int) -> int:
    return -(-pos // alignment) * alignment
