"""Helpers shared by the torch reader tests: dtype names, bytes through strides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from modelscan.scanner.layout import DTYPE_SIZES, Layout, TensorSpan

DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.complex64: "C64",
    torch.complex128: "C128",
    torch.uint16: "U16",
    torch.uint32: "U32",
    torch.uint64: "U64",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}


def logical_bytes(data: bytes, span: TensorSpan) -> bytes:
    """The tensor's elements in row-major order, gathered through its strides."""
    if span.strides is None:
        return data[span.offset : span.offset + span.nbytes]
    itemsize = DTYPE_SIZES[span.dtype]
    extent = 1 + sum((d - 1) * s for d, s in zip(span.shape, span.strides, strict=True))
    flat = np.frombuffer(
        data, np.dtype(f"V{itemsize}"), count=extent, offset=span.offset
    )
    strides = [s * itemsize for s in span.strides]
    view = np.lib.stride_tricks.as_strided(flat, shape=span.shape, strides=strides)
    return view.copy().tobytes()


def tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def assert_matches(
    layout: Layout, path: Path, expected: dict[str, torch.Tensor]
) -> None:
    """Names (in order), dtypes, shapes and the bytes at every span equal torch's."""
    data = path.read_bytes()
    assert [s.name for s in layout.tensors] == list(expected)
    for span in layout.tensors:
        t = expected[span.name]
        assert span.dtype == DTYPES[t.dtype], span.name
        assert span.shape == tuple(t.shape), span.name
        assert span.nbytes == t.numel() * t.element_size()
        assert logical_bytes(data, span) == tensor_bytes(t), span.name
