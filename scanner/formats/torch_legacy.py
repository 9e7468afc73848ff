"""Legacy (non-zip) torch files; tensors are found by :mod:`.torch_pickle`.

``torch.save(obj, f, _use_new_zipfile_serialization=False)`` (and every torch
before 1.6) writes five pickles in a row: torch's magic number, the protocol
version 1001, a ``sys_info`` dict (byte order, type sizes), the object itself
(tensors are rebuild calls whose persistent ids are ``('storage', type,
root_key, location, numel, view_metadata)``), and the list of storage keys.
Then, for each key in that list's order, a little-endian u64 element count
and the storage's raw bytes. Offsets are found by walking those headers.

Example:
    >>> layout = read_layout(reader)  # doctest: +SKIP
    >>> layout.format, layout.tensors[0].name
    ('torch-legacy', 'lin0.model.1.weight')
"""

from __future__ import annotations

import struct
from typing import Any

from modelscan.errors import InvalidHeader, TruncatedFile
from modelscan.scanner.formats import pickle_safe
from modelscan.scanner.formats.torch_pickle import (
    StorageRef,
    find_tensors,
    named_tensors,
    tensor_span,
    top_level_metadata,
)
from modelscan.scanner.layout import DTYPE_SIZES, MAX_TENSORS, Layout, RangeReader

__all__ = ["MAGIC_NUMBER", "PROTOCOL_VERSION", "find_tensors", "read_layout"]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


# --- the legacy file ------------------------------------------------------------------


def _storage_keys(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TENSORS:
        raise InvalidHeader(where, "the storage key list is not a list of strings")
    keys = [k.decode("latin-1") if isinstance(k, bytes) else k for k in value]
    if not all(isinstance(k, str) for k in keys):
        raise InvalidHeader(where, "the storage key list is not a list of strings")
    return keys


def _storage_offsets(
    reader: RangeReader, keys: list[str], refs: dict[str, StorageRef], start: int
) -> tuple[dict[str, tuple[int, int]], int]:
    """Walk the u64 count + bytes records: key -> (data offset, nbytes), and the end."""
    where, pos = reader.name, start
    out: dict[str, tuple[int, int]] = {}
    for key in keys:
        ref = refs.get(key)
        if ref is None or ref.dtype is None:
            what = (
                "no persistent id names it"
                if ref is None
                else "its type is unsupported"
            )
            raise InvalidHeader(
                where, f"storage {key!r}: {what}, so its size is unknown"
            )
        if pos + 8 > reader.size:
            raise TruncatedFile(
                where, f"storage {key!r} header at {pos} is past the end"
            )
        (numel,) = struct.unpack("<Q", reader.read_at(pos, 8))
        nbytes = numel * DTYPE_SIZES[ref.dtype]
        if pos + 8 + nbytes > reader.size:
            raise TruncatedFile(
                where,
                f"storage {key!r} claims {nbytes} bytes at {pos + 8}, past the end",
            )
        out[key] = (pos + 8, nbytes)
        pos += 8 + nbytes
    return out, pos


def _offsets_from_pickle(
    reader: RangeReader, keys: list[str], refs: dict[str, StorageRef], start: int
) -> tuple[dict[str, tuple[int, int]], int] | None:
    """Storage offsets from the element counts the persistent ids state.

    Saves one read per storage (a remote reader pays a request for each count
    field). The first and last count fields are read to confirm the chain; any
    disagreement returns None and the caller walks every count field.
    """
    pos = start
    out: dict[str, tuple[int, int]] = {}
    for key in keys:
        ref = refs.get(key)
        if ref is None or ref.dtype is None or ref.numel is None:
            return None
        nbytes = ref.numel * DTYPE_SIZES[ref.dtype]
        if pos + 8 + nbytes > reader.size:
            return None
        out[key] = (pos + 8, nbytes)
        pos += 8 + nbytes
    for key in (keys[:1] + keys[-1:]) if keys else []:
        offset, nbytes = out[key]
        (numel,) = struct.unpack("<Q", reader.read_at(offset - 8, 8))
        if numel * DTYPE_SIZES[refs[key].dtype or "U8"] != nbytes:
            return None
    return out, pos


def _read_pickles(reader: RangeReader) -> list[pickle_safe.PickleResult]:
    """The five pickles, with the magic number, version and byte order checked."""
    where = reader.name
    results = [pickle_safe.walk_pickle_at(reader, 0)]
    if results[0].root != MAGIC_NUMBER:
        raise InvalidHeader(where, "not a torch legacy file (no magic number)")
    for _ in range(4):
        results.append(pickle_safe.walk_pickle_at(reader, results[-1].end))
        if len(results) == 2 and results[1].root != PROTOCOL_VERSION:
            raise InvalidHeader(where, f"legacy protocol {results[1].root!r}, not 1001")
        if len(results) == 3:
            info = dict(pickle_safe.as_dict(results[2].root) or [])
            if info.get("little_endian") is False:
                raise InvalidHeader(
                    where, "big-endian file: only little-endian is read"
                )
    return results


def read_layout(reader: RangeReader, *, sizes_from_pickle: bool = False) -> Layout:
    """Read a legacy (non-zip) torch file without unpickling it.

    Args:
        reader: the file.
        sizes_from_pickle: locate storages from the element counts in the
            persistent ids (two count fields read to confirm) instead of
            reading every storage's count field; a remote reader asks for it.

    Returns:
        A ``Layout`` with format ``torch-legacy``, one span per tensor, the
        object's top-level keys, and the safety verdict over all five pickles.

    Raises:
        InvalidHeader: no magic number, a wrong protocol, big-endian data, a
            storage no tensor names, a tensor past its storage's end.
        TruncatedFile: a pickle or a storage runs past the end of the file.
        HeaderTooLarge: a cap on pickle size, nesting or tensor count.
    """
    where = reader.name
    pickles = _read_pickles(reader)
    named, everything, metadata = named_tensors(pickles[3].root, where=where)
    keys = _storage_keys(pickles[4].root, where)
    found = None
    if sizes_from_pickle:
        found = _offsets_from_pickle(reader, keys, everything.storages, pickles[4].end)
    if found is None:
        found = _storage_offsets(reader, keys, everything.storages, pickles[4].end)
    storages, end = found
    spans = []
    for name, t in named:
        if t.storage.key not in storages:
            raise InvalidHeader(
                where, f"tensor {name!r}: storage {t.storage.key!r} is missing"
            )
        offset, nbytes = storages[t.storage.key]
        spans.append(
            tensor_span(name, t, data_offset=offset, storage_nbytes=nbytes, where=where)
        )
    metadata.update(top_level_metadata(pickles[3].root))
    metadata["torch.byteorder"] = "little"
    if end < reader.size:
        metadata["trailing_bytes"] = reader.size - end
    globals_ = [g for p in pickles for g in p.globals]
    return Layout(
        format="torch-legacy",
        tensors=tuple(spans),
        metadata=metadata,
        pickle_safety=pickle_safe.safety(globals_),
    )
