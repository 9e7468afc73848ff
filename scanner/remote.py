"""Fingerprint a file through a remote reader: a few byte ranges, the local record.

The reader (``registry/remote.py`` implements one over HTTP Range requests) is a
:class:`~modelscan.scanner.layout.RangeReader` that also counts what it costs,
can prefetch ranges and can choose how far a sequential parser reads ahead. This
module does no network I/O itself: it sniffs the format from the first bytes,
runs the same format parser as a local fingerprint (with each parser's
reader-driven options), then plans one set of small ranges: the AutoV1 window
and the sketch windows of a deterministic subset of tensors.

The sketch subset (README "Remote fingerprints" gives the same rule):

1. Candidates: tensors of rank >= 2 with at least 1024 elements whose dtype is
   floating point (F64, F32, F16, BF16) or a GGUF block-quantized type.
2. Sorted by name in natural order (digit runs compared as numbers, so
   ``layer.2`` < ``layer.10``, then the plain name as tie-break).
3. With N candidates and K = 32: all of them when N <= K, else the K at
   indices ``round(i * (N - 1) / (K - 1))`` for i = 0..K-1, first and last
   included.
4. Read in spread order (first, last, then midpoints of the widest gaps
   first) as long as the request and byte budgets allow, so any prefix read
   is still spread across the model's depth.

Everything depends on names, dtypes and shapes only, so two files with the same
``structure_id`` sketch the same tensors, and a remote record compares with the
local record of the same file tensor by tensor.

A file of at most 1 MiB, or whose unread remainder after the metadata is at
most :data:`WHOLE_READ_MAX` bytes, is read whole and fingerprinted exactly as a
local file (digests, ``content_id``, ``weights_id``, every sketch).

Example:
    >>> fp = remote_fingerprint(reader, url="hf://o/n/model.safetensors",
    ...                         sha256=None)  # doctest: +SKIP
    >>> fp.structure_id, fp.remote.requests  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import re
import tempfile
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from modelscan.errors import UnknownFormat
from modelscan.records import Fingerprint, RemoteSource, TensorFingerprint
from modelscan.scanner import hashing, identity
from modelscan.scanner.claims import claims_from_metadata
from modelscan.scanner.fingerprint import _PARSERS, fingerprint
from modelscan.scanner.layout import (
    DTYPE_SIZES,
    FLOAT_DTYPES,
    Layout,
    PrefetchReader,
    ReadAheadReader,
    TensorSpan,
    coalesce,
)
from modelscan.scanner.sniff import HEAD_BYTES, Format, detect_format, why_unknown

MAX_REQUESTS = 40  # per file, resolves and retries included (DESIGN.md section 4)
TENSOR_BYTES = 1 << 20  # bytes past the metadata a remote read may use
SKETCH_BYTES = 512 * 1024  # of which the planned windows take at most this
WHOLE_READ_MAX = 768 * 1024  # read the rest whole when no more than this is left
SKETCH_SUBSET = 32
WINDOW_GAP = 8 * 1024  # windows closer than this share one request
MAX_STRIDED_EXTENT = 64 * 1024  # a strided view's window spans at most this
GGUF_WINDOW = (64 * 1024, 64 << 20)  # smallest and largest GGUF header read

# Each parser's reader-driven options for a remote read.
_REMOTE_OPTIONS: dict[Format, dict[str, Any]] = {
    Format.GGUF: {"window": GGUF_WINDOW},
    Format.ZIP: {"remote": True},
    Format.TORCH_LEGACY: {"sizes_from_pickle": True},
}
_DIGITS = re.compile(r"(\d+)")


class RemoteReader(ReadAheadReader, PrefetchReader, Protocol):
    """A remote :class:`RangeReader` that counts its cost and caches what it read."""

    @property
    def requests(self) -> int:
        """HTTP requests sent so far."""
        ...

    @property
    def bytes_received(self) -> int:
        """Body bytes received so far."""
        ...

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) not read yet."""
        ...


# --- the sketch subset ----------------------------------------------------------------


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """``blk.2`` before ``blk.10``: digit runs compare as numbers."""
    parts = _DIGITS.split(name)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def spread_order(n: int) -> list[int]:
    """Indices 0..n-1: first, last, then midpoints of the widest gaps first.

    >>> spread_order(5)
    [0, 4, 2, 1, 3]
    """
    if n <= 2:
        return list(range(n))
    order = [0, n - 1]
    queue = deque([(0, n - 1)])
    while queue:
        a, b = queue.popleft()
        if b - a < 2:
            continue
        mid = (a + b) // 2
        order.append(mid)
        queue.extend([(a, mid), (mid, b)])
    return order


def _sketchable(t: TensorSpan) -> bool:
    return (
        len(t.shape) >= 2
        and t.numel >= identity.SKETCH_MIN_NUMEL
        and (t.dtype in FLOAT_DTYPES or t.ggml_type is not None)
    )


def sketch_subset(tensors: Iterable[TensorSpan]) -> list[TensorSpan]:
    """The tensors a remote read sketches, in reading order (module docstring)."""
    eligible = sorted(
        (t for t in tensors if _sketchable(t)),
        key=lambda t: (_natural_key(t.name), t.name),
    )
    n, k = len(eligible), SKETCH_SUBSET
    if n > k:
        eligible = [eligible[(i * (n - 1) + (k - 1) // 2) // (k - 1)] for i in range(k)]
    return [eligible[i] for i in spread_order(len(eligible))]


def sketch_range(span: TensorSpan) -> tuple[int, int] | None:
    """The bytes ``identity.read_sketch`` reads for ``span``, or None."""
    start = identity.sketch_start(span.numel)
    if start is None:
        return None
    if span.ggml_type is not None:
        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(span.ggml_type)]
        first = start // block
        last = math.ceil((start + identity.SKETCH_LEN) / block)
        return span.offset + first * type_size, span.offset + last * type_size
    if span.dtype not in FLOAT_DTYPES:
        return None
    size = DTYPE_SIZES[span.dtype]
    if span.strides is None:
        begin = span.offset + start * size
        return begin, begin + identity.SKETCH_LEN * size
    index = np.unravel_index(np.arange(start, start + identity.SKETCH_LEN), span.shape)
    elem = sum(i.astype(np.int64) * s for i, s in zip(index, span.strides, strict=True))
    lo, hi = int(np.min(elem)), int(np.max(elem)) + 1
    if (hi - lo) * size > MAX_STRIDED_EXTENT:
        return None
    return span.offset + lo * size, span.offset + hi * size


# --- the fingerprint ------------------------------------------------------------------


def read_remote_layout(reader: RemoteReader, *, url: str) -> Layout:
    """Sniff the format from the first bytes and run its parser remotely.

    Raises:
        UnknownFormat: the bytes are no model format modelscan reads.
        FormatError: the parser's errors (truncated, invalid, too large).
    """
    head = reader.read_at(0, min(HEAD_BYTES, reader.size))
    fmt = detect_format(head, reader.size)
    if fmt not in _PARSERS:
        raise UnknownFormat(url, why_unknown(head, reader.size))
    module = importlib.import_module(f"modelscan.scanner.formats.{_PARSERS[fmt]}")
    layout: Layout = module.read_layout(reader, **_REMOTE_OPTIONS.get(fmt, {}))
    return layout


def remote_fingerprint(
    reader: RemoteReader,
    *,
    url: str,
    sha256: str | None,
    all_hashes: bool = False,
    max_requests: int = MAX_REQUESTS,
) -> Fingerprint:
    """Fingerprint a remote file from its metadata and a few small ranges.

    Args:
        reader: the remote file (its reads are counted and cached).
        url: what the user named, for the record and messages.
        sha256: the host's stated SHA-256 (lower-case hex), or None.
        all_hashes: a file read whole also gets BLAKE3 and CRC-32.
        max_requests: the request budget the reader enforces.

    Returns:
        The :class:`Fingerprint`, with ``remote`` saying what it cost.

    Raises:
        FormatError: unknown, truncated or malformed file.
    """
    layout = read_remote_layout(reader, url=url)
    rest = reader.missing(0, reader.size)
    cost = rest[-1][1] - rest[0][0] if rest else 0
    small = reader.size <= TENSOR_BYTES or cost <= WHOLE_READ_MAX
    if small and reader.requests < max_requests:
        return _whole(reader, rest, url=url, all_hashes=all_hashes)
    return _partial(reader, layout, url=url, sha256=sha256, max_requests=max_requests)


def _whole(
    reader: RemoteReader, rest: list[tuple[int, int]], *, url: str, all_hashes: bool
) -> Fingerprint:
    """Read what is left in one request and fingerprint the bytes as a local file."""
    if rest:
        reader.prefetch([(rest[0][0], rest[-1][1])])
    data = reader.read_at(0, reader.size)
    fd, tmp = tempfile.mkstemp(prefix="modelscan-remote-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        fp = fingerprint(tmp, all_hashes=all_hashes)
    finally:
        os.unlink(tmp)
    cost = RemoteSource(url, reader.requests, reader.bytes_received, whole=True)
    return replace(fp, path=url, remote=cost)


def _plan(
    reader: RemoteReader,
    spans: Sequence[TensorSpan],
    first: list[tuple[int, int]],
    left: int,
) -> tuple[list[TensorSpan], list[tuple[int, int]]]:
    """The longest prefix of ``spans`` whose windows fit ``left`` requests."""
    wanted = list(first)
    chosen: list[TensorSpan] = []
    plan = _merged(reader, wanted)
    for span in spans:
        window = sketch_range(span)
        if window is None:
            continue
        trial = _merged(reader, [*wanted, window])
        if len(trial) > left or sum(e - s for s, e in trial) > SKETCH_BYTES:
            break
        wanted.append(window)
        chosen.append(span)
        plan = trial
    return chosen, plan


def _merged(
    reader: RemoteReader, ranges: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    parts = [m for s, e in ranges for m in reader.missing(s, e)]
    return coalesce(parts, WINDOW_GAP)


def _partial(
    reader: RemoteReader,
    layout: Layout,
    *,
    url: str,
    sha256: str | None,
    max_requests: int,
) -> Fingerprint:
    size = reader.size
    window = (
        hashing.AUTOV1_OFFSET,
        min(size, hashing.AUTOV1_OFFSET + hashing.AUTOV1_LENGTH),
    )
    first = [window] if window[1] > window[0] else []
    left = max_requests - reader.requests
    autov1_known = len(_merged(reader, first)) <= left  # 0 or 1 request
    if not autov1_known:
        first = []
    chosen, plan = _plan(reader, sketch_subset(layout.tensors), first, left)
    reader.prefetch(plan)
    raw = reader.read_at(window[0], window[1] - window[0]) if first else b""
    autov1 = hashlib.sha256(raw).hexdigest()[:8] if autov1_known else ""
    sketches = {id(t): identity.read_sketch(reader, t) for t in chosen}
    tensors = tuple(
        TensorFingerprint(
            name=t.name,
            dtype=t.dtype,
            shape=t.shape,
            nbytes=t.nbytes,
            digest=None,
            sketch=sketches.get(id(t)),
        )
        for t in layout.tensors
    )
    structure = (
        identity.structure_id((t.name, t.dtype, t.shape) for t in tensors)
        if tensors
        else None
    )
    sha = (sha256 or "").lower()
    return Fingerprint(
        path=url,
        size=size,
        format=layout.format,
        sha256=sha,
        autov1=autov1,
        autov2=sha[:10],
        autov3=None,
        tensors=tensors,
        structure_id=structure,
        metadata=layout.metadata,
        claims=claims_from_metadata(layout.metadata, autov1=autov1, autov3=None),
        pickle_safety=layout.pickle_safety,
        remote=RemoteSource(url, reader.requests, reader.bytes_received),
    )
