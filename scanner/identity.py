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
import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import blake3

from modelscan.scanner.ggml_types import GGML_TYPES
from modelscan.scanner.layout import DTYPE_SIZES, FLOAT_DTYPES, RangeReader, TensorSpan

if TYPE_CHECKING:  # numpy is imported only where a path needs it (start-up time)
    import numpy as np

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
    import numpy as np

    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32)
    return np.frombuffer(raw, dtype=_NUMPY_DTYPES[dtype]).astype(np.float32)


def to_sketch(values: np.ndarray) -> bytes:
    """Store a window as float16 LE bytes, clipping to float16's finite range."""
    import numpy as np

    clipped = np.clip(np.nan_to_num(values.astype(np.float32)), -65504.0, 65504.0)
    return clipped.astype("<f2").tobytes()


_F16_MAX = 65504.0
_STRUCT_CODES = {"F64": "d", "F32": "f", "F16": "e"}
# High (second, little-endian) bytes of finite float16 values: the exponent's five
# bits are not all ones. A window made only of these needs no decoding.
_F16_FINITE_HIGH = bytes(b for b in range(256) if b & 0x7C != 0x7C)


def sketch_of_floats(raw: bytes, dtype: str) -> bytes:
    """:func:`to_sketch` of :func:`decode_floats` without numpy, byte for byte.

    NaN becomes 0, anything beyond float16's range its largest finite value;
    F64 rounds to float32 first, as numpy's ``astype(float32)`` does, and
    struct's half-float packing rounds to nearest even, as numpy does.
    """
    if dtype == "F16" and not raw[1::2].translate(None, _F16_FINITE_HIGH):
        return bytes(raw)  # finite float16 values come back as they are
    n = len(raw) // DTYPE_SIZES[dtype]
    if dtype == "BF16":
        widened = [h << 16 for h in struct.unpack(f"<{n}H", raw)]
        values = struct.unpack(f"<{n}f", struct.pack(f"<{n}I", *widened))
    else:
        values = struct.unpack(f"<{n}{_STRUCT_CODES[dtype]}", raw)
    kept = [0.0 if v != v else min(max(v, -_F16_MAX), _F16_MAX) for v in values]
    if dtype == "F64":
        kept = list(struct.unpack(f"<{n}f", struct.pack(f"<{n}f", *kept)))
    return struct.pack(f"<{n}e", *kept)


def sketch_window(span: TensorSpan) -> tuple[int, int] | None:
    """The file bytes [start, end) a contiguous tensor's sketch is read from.

    None when the tensor has no sketch, or is a strided view (its window is
    gathered element by element by :func:`read_sketch`).
    """
    start = sketch_start(span.numel)
    if start is None or span.strides is not None:
        return None
    if span.ggml_type is not None:
        known = GGML_TYPES.get(span.ggml_type)
        if known is None:
            return None
        _name, block, type_size = known
        first = start // block
        last = math.ceil((start + SKETCH_LEN) / block)
        return span.offset + first * type_size, span.offset + last * type_size
    if span.dtype not in FLOAT_DTYPES:
        return None
    size = DTYPE_SIZES[span.dtype]
    begin = span.offset + start * size
    return begin, begin + SKETCH_LEN * size


def sketch_from_window(span: TensorSpan, raw: bytes) -> bytes | None:
    """The sketch of a contiguous tensor from the bytes of its :func:`sketch_window`."""
    if span.ggml_type is not None:
        start = sketch_start(span.numel)
        assert start is not None
        return _sketch_quantized(raw, span.ggml_type, start)
    return sketch_of_floats(raw, span.dtype)


def read_sketch(reader: RangeReader, span: TensorSpan) -> bytes | None:
    """Read and decode the sketch window of one tensor, or None if it has none."""
    window = sketch_window(span)
    if window is not None:
        return sketch_from_window(
            span, reader.read_at(window[0], window[1] - window[0])
        )
    start = sketch_start(span.numel)
    if start is None or span.strides is None or span.dtype not in FLOAT_DTYPES:
        return None
    size = DTYPE_SIZES[span.dtype]
    elems = [
        _element(k, span.shape, span.strides) for k in range(start, start + SKETCH_LEN)
    ]
    raw = b"".join(reader.read_at(span.offset + e * size, size) for e in elems)
    return sketch_of_floats(raw, span.dtype)


def _element(k: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> int:
    """Storage element of the ``k``-th element in row-major order of a view."""
    elem = 0
    for dim, stride in zip(reversed(shape), reversed(strides), strict=True):
        k, i = divmod(k, dim)
        elem += i * stride
    return elem


def _sketch_quantized(raw: bytes, ggml_type: int, start: int) -> bytes | None:
    """Dequantize only the blocks covering the window, with llama.cpp's gguf package."""
    import numpy as np
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    block = GGML_TYPES[ggml_type][1]
    try:
        values = dequantize(
            np.frombuffer(raw, dtype=np.uint8), GGMLQuantizationType(ggml_type)
        ).reshape(-1)
    except NotImplementedError:  # gguf cannot dequantize every type (Q8_1, Q8_K...)
        return None
    skip = start % block
    return to_sketch(values[skip : skip + SKETCH_LEN])


def strided_digest(path: str, span: TensorSpan) -> str:
    """BLAKE3 of a non-contiguous view's elements in row-major order.

    Gathers through a read-only memory map in bounded chunks, so memory stays
    flat whatever the tensor's size.
    """
    import numpy as np

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


class _Sketch:
    """A (name, shape, sketch) row: a plain class, built at no cost at import."""

    __slots__ = ("name", "shape", "sketch")

    def __init__(self, name: str, shape: tuple[int, ...], sketch: bytes) -> None:
        self.name, self.shape, self.sketch = name, shape, sketch


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
