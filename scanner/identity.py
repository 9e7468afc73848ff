r"""Tensor-level identities: content_id, weights_id, structure_id and sketches.

Exact definitions (DESIGN.md section 4; each line ends in ``\\n``, lines sorted
as UTF-8 bytes, the hash is BLAKE3-256 in lower-case hex):

- ``content_id``:   ``name \\t dtype \\t shape \\t digest``
- ``structure_id``: ``name \\t dtype \\t shape``
- ``weights_id``:   ``digest`` (a multiset: duplicates kept)

``shape`` is the row-major dimensions joined by ``,`` (``""`` for a scalar).

A sketch is 256 consecutive elements (in row-major order) of a floating-point
tensor with at least 1024 elements, starting at ``numel // 2 - 128``, decoded to
float and stored as little-endian float16.

Example:
    >>> rows = [("w", "F32", (2, 2), "ab")]
    >>> content_id(rows) == content_id(list(reversed(rows)))
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import blake3
import numpy as np

from modelscan.scanner.layout import DTYPE_SIZES, FLOAT_DTYPES, RangeReader, TensorSpan

SKETCH_LEN = 256
SKETCH_MIN_NUMEL = 1024
STRIDED_CHUNK_ELEMENTS = 1 << 22  # elements gathered at once for a non-contiguous view

_NUMPY_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "u1",
    "F8_E4M3": "u1",
    "F8_E5M2": "u1",
    "C64": "<c8",
    "C128": "<c16",
}


def shape_text(shape: Sequence[int]) -> str:
    """Spell a shape the way the identity lines do.

    >>> shape_text((384, 1536)), shape_text(())
    ('384,1536', '')
    """
    return ",".join(str(d) for d in shape)


def _hash_lines(lines: Iterable[str]) -> str:
    encoded = sorted(line.encode("utf-8") + b"\n" for line in lines)
    return blake3.blake3(b"".join(encoded)).hexdigest()


def content_id(tensors: Iterable[tuple[str, str, Sequence[int], str]]) -> str:
    """Same named weights in any container: over name, dtype, shape and digest."""
    return _hash_lines(f"{n}\t{d}\t{shape_text(s)}\t{g}" for n, d, s, g in tensors)


def structure_id(tensors: Iterable[tuple[str, str, Sequence[int]]]) -> str:
    """Same architecture and size, any values: over name, dtype and shape."""
    return _hash_lines(f"{n}\t{d}\t{shape_text(s)}" for n, d, s in tensors)


def weights_id(digests: Iterable[str]) -> str:
    """Same weights under any names: over the multiset of tensor digests."""
    return _hash_lines(digests)


def sketch_start(numel: int) -> int | None:
    """First element of the sketch window, or None when the tensor is too small."""
    if numel < SKETCH_MIN_NUMEL:
        return None
    return numel // 2 - SKETCH_LEN // 2


def decode_floats(raw: bytes, dtype: str) -> np.ndarray:
    """Decode little-endian F64/F32/F16/BF16 bytes to float32."""
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    return np.frombuffer(raw, dtype=_NUMPY_DTYPES[dtype]).astype(np.float32)


def to_sketch(values: np.ndarray) -> bytes:
    """Store a window as float16 LE bytes, clipping to float16's finite range."""
    clipped = np.clip(np.nan_to_num(values.astype(np.float32)), -65504.0, 65504.0)
    return clipped.astype("<f2").tobytes()


def read_sketch(reader: RangeReader, span: TensorSpan) -> bytes | None:
    """Read and decode the sketch window of one tensor, or None if it has none."""
    start = sketch_start(span.numel)
    if start is None:
        return None
    if span.ggml_type is not None:
        return _sketch_quantized(reader, span, span.ggml_type, start)
    if span.dtype not in FLOAT_DTYPES:
        return None
    size = DTYPE_SIZES[span.dtype]
    if span.strides is None:
        raw = reader.read_at(span.offset + start * size, SKETCH_LEN * size)
        return to_sketch(decode_floats(raw, span.dtype))
    index = np.unravel_index(np.arange(start, start + SKETCH_LEN), span.shape)
    elem = np.zeros(SKETCH_LEN, dtype=np.int64)
    for axis_index, stride in zip(index, span.strides, strict=True):
        elem += axis_index * stride
    raw = b"".join(reader.read_at(span.offset + int(e) * size, size) for e in elem)
    return to_sketch(decode_floats(raw, span.dtype))


def _sketch_quantized(
    reader: RangeReader, span: TensorSpan, ggml_type: int, start: int
) -> bytes | None:
    """Dequantize only the blocks covering the window, with llama.cpp's gguf package."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    qtype = GGMLQuantizationType(ggml_type)
    block, type_size = GGML_QUANT_SIZES[qtype]
    first = start // block
    last = math.ceil((start + SKETCH_LEN) / block)
    raw = reader.read_at(span.offset + first * type_size, (last - first) * type_size)
    try:
        values = dequantize(np.frombuffer(raw, dtype=np.uint8), qtype).reshape(-1)
    except NotImplementedError:  # gguf cannot dequantize every type (Q8_1, Q8_K...)
        return None
    skip = start - first * block
    return to_sketch(values[skip : skip + SKETCH_LEN])


def strided_digest(path: str, span: TensorSpan) -> str:
    """BLAKE3 of a non-contiguous view's elements in row-major order.

    Gathers through a read-only memory map in bounded chunks, so memory stays
    flat whatever the tensor's size.
    """
    assert span.strides is not None
    itemsize = DTYPE_SIZES[span.dtype]
    hasher = blake3.blake3()
    numel = span.numel
    if numel == 0:
        return hasher.hexdigest()
    extent = 1 + sum((d - 1) * s for d, s in zip(span.shape, span.strides, strict=True))
    mm = np.memmap(
        path,
        dtype=_NUMPY_DTYPES[span.dtype],
        mode="r",
        offset=span.offset,
        shape=(extent,),
    )
    view = np.lib.stride_tricks.as_strided(
        mm, shape=span.shape, strides=tuple(s * itemsize for s in span.strides)
    )
    per_row = max(1, numel // span.shape[0])
    rows_per_chunk = max(1, STRIDED_CHUNK_ELEMENTS // per_row)
    for r in range(0, span.shape[0], rows_per_chunk):
        hasher.update(np.ascontiguousarray(view[r : r + rows_per_chunk]).tobytes())
    return hasher.hexdigest()


class _Sketch(NamedTuple):
    name: str
    shape: tuple[int, ...]
    sketch: bytes


def compare_sketches(
    a: Sequence[tuple[str, tuple[int, ...], bytes | None]],
    b: Sequence[tuple[str, tuple[int, ...], bytes | None]],
) -> dict[str, float]:
    """Correlate two files' sketches matrix by matrix (:mod:`similarity`'s rule).

    Kept for callers holding ``(name, shape, sketch)`` tuples; the pairing and
    the Pearson r are :func:`modelscan.scanner.similarity.pair_correlations`.

    Returns:
        name in ``a`` -> Pearson correlation, for every pair with evidence.
    """
    from modelscan.scanner.similarity import pair_correlations

    def sketches(
        rows: Sequence[tuple[str, tuple[int, ...], bytes | None]],
    ) -> list[_Sketch]:
        return [_Sketch(n, tuple(s), sk) for n, s, sk in rows if sk]

    return pair_correlations(sketches(a), sketches(b))
