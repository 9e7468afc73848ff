"""Dtype facts shared by the index and lineage: the dominant dtype, quantization.

One rule each, so a file compared live and the same file after ``--save`` and
``link`` get the same relation: a file's dtype is the one holding the most
elements (not the largest tensor), and a dtype is quantized when it is a GGML
block type (``Q4_K``, ``IQ2_XS``, ...) or an integer storage of float weights.

Example:
    >>> dominant_dtype([("F16", (4, 4)), ("F32", (8,))])
    'F16'
    >>> is_quantized("Q4_K"), is_quantized("BF16")
    (True, False)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

QUANTIZED_PREFIXES = ("Q", "IQ", "TQ")  # GGML block-quantized types: Q4_K, IQ2_XS, ...
INTEGER_DTYPES = frozenset({"I8", "U8", "I4", "U4", "F8_E4M3", "F8_E5M2"})


def dtype_elements(tensors: Iterable[tuple[str, Sequence[int]]]) -> Counter[str]:
    """Count elements per dtype over ``(dtype, shape)`` pairs."""
    out: Counter[str] = Counter()
    for dtype, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        out[dtype] += n
    return out


def dominant_dtype(tensors: Iterable[tuple[str, Sequence[int]]]) -> str | None:
    """Return the dtype holding the most elements, or None without tensors."""
    found = dtype_elements(tensors).most_common(1)
    return found[0][0] if found else None


def is_quantized(dtype: str | None) -> bool:
    """Tell whether a dtype is a block-quantized or integer storage of float weights."""
    if not dtype:
        return False
    upper = dtype.upper()
    return upper.startswith(QUANTIZED_PREFIXES) or upper in INTEGER_DTYPES
