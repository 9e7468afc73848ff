"""What a format parser reports: where each tensor's bytes lie in the file.

Parsers never read tensor data themselves. They return a :class:`Layout`, and
``fingerprint.py`` streams the file once to hash every span. Random access goes
through :class:`RangeReader`, so the same parser can later read a remote file
with HTTP Range requests.

Example:
    >>> span = TensorSpan("w", "F32", (2, 3), offset=64, nbytes=24)
    >>> span.numel
    6
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelscan.errors import TruncatedFile
from modelscan.records import PickleSafety, Record

# Bytes per element of every unquantized dtype, in safetensors' spelling.
DTYPE_SIZES: dict[str, int] = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
    "C64": 8,
    "C128": 16,
}

FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})

# Tensors one file may list. Each tensor costs Python objects and work (its
# header entry, span, digest, record and identity lines: about 25 us and 1.7 KB),
# so the cap bounds a header's cost at a few seconds and a few hundred MB; a
# published checkpoint file lists hundreds to a few thousand (large models are
# sharded at a few GB a file, GGUF stacks experts in 3-D tensors). README, "Limits".
MAX_TENSORS = 100_000


def too_many_tensors(count: int | str) -> str:
    """The one-line reason a file listing ``count`` tensors is refused."""
    return (
        f"lists {count} tensors, above modelscan's cap of {MAX_TENSORS} per file "
        "(README: Limits)"
    )


MAX_RANK = 16
MAX_NAME_BYTES = 64 * 1024


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects.

    Parsing a header of N tensors builds several objects per tensor; the
    collections those allocations trigger walk the objects built so far again
    and again, about half the parse time at 10^5 tensors. Header values hold
    no reference cycles, so nothing is left for the collector to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class RangeReader(Protocol):
    """Random access to a file of known size; ``read_at`` returns exactly n bytes."""

    @property
    def size(self) -> int:
        """Total size of the file in bytes."""
        ...

    @property
    def name(self) -> str:
        """The path or URL, for error messages."""
        ...

    def read_at(self, offset: int, n: int) -> bytes:
        """Return bytes [offset, offset+n); TruncatedFile if the file is shorter."""
        ...


class ReadAheadReader(RangeReader, Protocol):
    """A reader that may choose how much to return to a sequential parser.

    Remote readers implement it so a parser walking a pickle of unknown length
    does not pull megabytes of tensor data past the pickle's end.
    """

    def read_ahead(self, offset: int, need: int, want: int) -> bytes:
        """Return at least ``need`` and at most ``want`` bytes at ``offset``."""
        ...


class PrefetchReader(RangeReader, Protocol):
    """A reader told in advance which ranges will be read (one request each)."""

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Fetch each [start, end) range now, so later ``read_at`` calls hit memory."""
        ...


class BytesReader:
    """A :class:`RangeReader` over bytes in memory (a fetched header, a zip member).

    Remembers the furthest byte read in ``max_end``, so tests can check that a
    parser stayed inside the header.
    """

    def __init__(self, data: bytes, name: str = "<memory>") -> None:
        self.data = data
        self._name = name
        self.max_end = 0

    @property
    def size(self) -> int:
        """Length of the data."""
        return len(self.data)

    @property
    def name(self) -> str:
        """The name given, for messages."""
        return self._name

    def read_at(self, offset: int, n: int) -> bytes:
        """Return exactly ``n`` bytes at ``offset`` or raise TruncatedFile."""
        if offset < 0 or n < 0 or offset + n > len(self.data):
            raise TruncatedFile(self._name, f"read of {n} at {offset} past the end")
        self.max_end = max(self.max_end, offset + n)
        return self.data[offset : offset + n]


@dataclass(frozen=True, slots=True, repr=False, eq=False)  # Record's: records.py
class TensorSpan(Record):
    """Where one tensor's elements lie in the file.

    ``offset`` is the absolute file offset of element 0. With ``strides`` None
    the tensor occupies ``nbytes`` contiguous bytes there; otherwise element
    index ``i`` (a tuple) sits at ``offset + itemsize * sum(i[k] * strides[k])``
    (a torch view into a larger storage).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    strides: tuple[int, ...] | None = None
    ggml_type: int | None = None  # GGUF block-quantized type id, for dequantization

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class Layout(Record):
    """A parsed container: its format, tensors, metadata and safety facts."""

    format: str
    tensors: tuple[TensorSpan, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    body_offset: int | None = (
        None  # safetensors: 8 + header length (AutoV3 hashes from here)
    )
    pickle_safety: PickleSafety | None = None


def coalesce(ranges: Iterable[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Merge byte ranges [start, end) that overlap or lie within ``gap`` bytes.

    One HTTP Range request per merged range reads a few wasted bytes instead of
    paying a round trip per range.

    >>> coalesce([(0, 10), (12, 20), (100, 110)], gap=4)
    [(0, 20), (100, 110)]
    """
    merged: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1] + gap:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major element strides for ``shape``.

    >>> contiguous_strides((2, 3, 4))
    (12, 4, 1)
    """
    strides = []
    acc = 1
    for dim in reversed(shape):
        strides.append(acc)
        acc *= dim
    return tuple(reversed(strides))


def is_contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """True when ``strides`` walk ``shape`` in row-major order without gaps.

    Dimensions of size 1 may carry any stride, as in torch.

    >>> is_contiguous((2, 3), (3, 1)), is_contiguous((2, 3), (1, 2))
    (True, False)
    """
    expected = 1
    for dim, stride in zip(reversed(shape), reversed(strides), strict=True):
        if dim != 1 and stride != expected:
            return False
        expected *= dim
    return True
