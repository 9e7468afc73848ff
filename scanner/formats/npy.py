r"""numpy ``.npy`` files: the header, and the pickle an object array holds.

An ``.npy`` file is the magic ``\x93NUMPY``, a version (1.0, 2.0, 3.0), a
header length (u16 for 1.0, u32 after), a Python dict literal (``descr``,
``fortran_order``, ``shape``) and the data. For a dtype holding Python objects
the data is a pickle that ``numpy.load(allow_pickle=True)`` runs
(numpy/lib/format.py, ``write_array`` / ``read_array``): that pickle is walked
like any other. The header is read with :func:`ast.literal_eval` (literals
only, nothing called) after its length is bounded.

Example:
    >>> header = parse_header(b"\x93NUMPY\x01\x00" + ...)  # doctest: +SKIP
    >>> header.descr, header.shape, header.has_objects
    ('<f4', (2, 3), False)
"""

from __future__ import annotations

import ast
import struct
from dataclasses import dataclass
from typing import Any

from modelscan.errors import HeaderTooLarge, InvalidHeader, TruncatedFile
from modelscan.records import Record
from modelscan.scanner.formats import pickle_safe
from modelscan.scanner.layout import Layout, RangeReader

MAGIC = b"\x93NUMPY"
MAX_HEADER_BYTES = 1 << 20  # numpy itself refuses over 10,000 unless told otherwise


@dataclass(frozen=True, slots=True, repr=False, eq=False)  # Record's methods
class NpyHeader(Record):
    """The parsed header of one ``.npy`` file or ``.npz`` member."""

    version: tuple[int, int]
    descr: Any  # "<f4", or a list of (name, descr[, shape]) for structured dtypes
    fortran_order: bool
    shape: tuple[int, ...]
    data_offset: int

    @property
    def has_objects(self) -> bool:
        """A dtype of Python objects, anywhere in a structured dtype too."""
        todo = [self.descr]
        while todo:
            d = todo.pop()
            if isinstance(d, str) and d.lstrip("<>|=").startswith("O"):
                return True
            if isinstance(d, list):  # fields: (name, dtype) or (name, dtype, shape)
                todo.extend(f[1] for f in d if isinstance(f, tuple) and len(f) >= 2)
        return False


def parse_header(head: bytes, *, where: str, size: int | None = None) -> NpyHeader:
    """Parse an ``.npy`` header from the file's first bytes.

    Raises:
        TruncatedFile: the header runs past ``head`` (or the file).
        HeaderTooLarge: a header length over ``MAX_HEADER_BYTES``.
        InvalidHeader: not a dict literal with descr, fortran_order and shape.
    """
    if len(head) < 10 or not head.startswith(MAGIC):
        raise InvalidHeader(where, "no .npy magic")
    version = (head[6], head[7])
    if version[0] == 1:
        (n,), start = struct.unpack_from("<H", head, 8), 10
    elif version[0] in (2, 3) and len(head) >= 12:
        (n,), start = struct.unpack_from("<I", head, 8), 12
    else:
        raise InvalidHeader(where, f"unsupported .npy version {version}")
    if n > MAX_HEADER_BYTES:
        raise HeaderTooLarge(where, f".npy header of {n} bytes")
    if start + n > len(head) or (size is not None and start + n > size):
        raise TruncatedFile(where, f".npy header of {n} bytes runs past the data")
    text = head[start : start + n].decode("utf-8" if version[0] == 3 else "latin-1")
    try:
        fields = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise InvalidHeader(where, f".npy header is not a literal: {exc}") from exc
    if not isinstance(fields, dict) or not {"descr", "shape"} <= fields.keys():
        raise InvalidHeader(where, ".npy header is not a dict with descr and shape")
    shape = fields["shape"]
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and d >= 0 for d in shape
    ):
        raise InvalidHeader(where, f".npy shape {shape!r} is not a tuple of ints")
    return NpyHeader(
        version, fields["descr"], bool(fields.get("fortran_order")), shape, start + n
    )


def read_layout(reader: RangeReader) -> Layout:
    """Read an ``.npy`` file: its header, and for object arrays the pickle's verdict.

    Returns:
        A ``Layout`` with format ``npy``, metadata ``npy.descr``, ``npy.shape``,
        ``npy.fortran_order``; ``pickle_safety`` when the array holds objects.
    """
    head = reader.read_at(0, min(reader.size, MAX_HEADER_BYTES + 12))
    header = parse_header(head, where=reader.name, size=reader.size)
    metadata: dict[str, Any] = {
        "npy.descr": header.descr if isinstance(header.descr, str) else "structured",
        "npy.shape": list(header.shape),
        "npy.fortran_order": header.fortran_order,
    }
    if not header.has_objects:
        return Layout(format="npy", metadata=metadata)
    scan = pickle_safe.scan_pickles(reader, start=header.data_offset)
    note = "object array: numpy.load(allow_pickle=True) runs its pickle"
    return Layout(
        format="npy", metadata=metadata, pickle_safety=scan.verdict(notes=[note])
    )
