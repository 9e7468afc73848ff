"""Tensor identities: definitions, invariances and sketch correlation."""

from __future__ import annotations

import blake3
import numpy as np

from modelscan.scanner import identity


def test_content_id_definition() -> None:
    r"""content_id is BLAKE3 over sorted 'name\\tdtype\\tshape\\tdigest\\n' lines."""
    rows = [("b", "F32", (2, 3), "d2"), ("a", "F16", (), "d1")]
    expected = blake3.blake3(b"a\tF16\t\td1\nb\tF32\t2,3\td2\n").hexdigest()
    assert identity.content_id(rows) == expected
    assert identity.content_id(reversed(rows)) == expected


def test_weights_id_ignores_names_but_keeps_multiplicity() -> None:
    """weights_id is the same under renaming, different when a digest repeats."""
    assert identity.weights_id(["x", "y"]) == identity.weights_id(["y", "x"])
    assert identity.weights_id(["x", "y"]) != identity.weights_id(["x", "x", "y"])


def test_structure_id_ignores_values() -> None:
    """structure_id ignores digests but not shapes."""
    a = identity.structure_id([("w", "F32", (4, 4))])
    assert a == identity.structure_id([("w", "F32", (4, 4))])
    assert a != identity.structure_id([("w", "F32", (4, 5))])


def test_sketch_window_position() -> None:
    """The window starts at numel//2 - 128; small tensors have none."""
    assert identity.sketch_start(1023) is None
    assert identity.sketch_start(1024) == 512 - 128
    assert identity.sketch_start(10_001) == 5000 - 128


def test_bf16_decode_matches_truncated_float32() -> None:
    """BF16 bytes decode to the float32 whose top 16 bits they are."""
    values = np.array([1.5, -2.25, 3.0e-3], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    decoded = identity.decode_floats(bf16, "BF16")
    assert np.allclose(decoded, values, rtol=1e-2)
