"""The one sketch-similarity engine: Pearson r, layer matching, what is no evidence."""

from __future__ import annotations

import numpy as np
import pytest

from modelscan.lineage.rows import TensorSketch
from modelscan.scanner import identity, similarity
from modelscan.scanner.similarity import (
    correlation,
    pair_correlations,
    weight_similarity,
)


def test_correlation_of_related_and_unrelated_windows() -> None:
    """A noisy copy correlates near 1, independent values near 0, constants None."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal(256).astype(np.float32)
    close = identity.to_sketch(base + 0.05 * rng.standard_normal(256))
    other = identity.to_sketch(rng.standard_normal(256))
    sk = identity.to_sketch(base)
    related = similarity.correlation(sk, close)
    unrelated = similarity.correlation(sk, other)
    assert related is not None
    assert related > 0.99
    assert unrelated is not None
    assert abs(unrelated) < 0.25
    assert similarity.correlation(sk, identity.to_sketch(np.zeros(256))) is None


def _sk(values: np.ndarray) -> bytes:
    return values.astype("<f2").tobytes()


def test_pair_correlations_agree_with_the_scanner() -> None:
    """Named pairs give the scanner's Pearson r; renamed tensors find their match."""
    rng = np.random.default_rng(5)
    a, b, noise = (rng.standard_normal(256) for _ in range(3))
    child = [
        TensorSketch("x.0.w", (16, 64), _sk(a + 0.3 * noise)),
        TensorSketch("renamed", (16, 64), _sk(b)),
    ]
    parent = [
        TensorSketch("x.0.w", (16, 64), _sk(a)),
        TensorSketch("y", (16, 64), _sk(b)),
    ]
    got = pair_correlations(child, parent)
    assert got["x.0.w"] == pytest.approx(correlation(child[0].sketch, parent[0].sketch))
    assert got["renamed"] == pytest.approx(1.0)


def test_flat_windows_vectors_and_embeddings_are_no_evidence() -> None:
    """Zeros, 1-D tensors and embedding tables never decide a similarity."""
    rng = np.random.default_rng(6)
    v = rng.standard_normal(256)
    flat = [
        TensorSketch("w", (16, 64), _sk(np.zeros(256))),
        TensorSketch("bias", (1024,), _sk(v)),
        TensorSketch("embed_tokens.weight", (16, 64), _sk(v)),
    ]
    assert weight_similarity(flat, flat) is None


def test_a_distilled_model_finds_the_teacher_layers_it_kept() -> None:
    """Layers match through the whole matrix: a student keeping layers 1 and 3 of 4."""
    rng = np.random.default_rng(7)
    teacher = [rng.standard_normal(256) for _ in range(4)]
    parent = [
        TensorSketch(f"layer.{i}.w", (16, 16), _sk(w)) for i, w in enumerate(teacher)
    ]
    child = [
        TensorSketch(
            "layer.0.w", (16, 16), _sk(teacher[1] + 0.1 * rng.standard_normal(256))
        ),
        TensorSketch(
            "layer.1.w", (16, 16), _sk(teacher[3] + 0.1 * rng.standard_normal(256))
        ),
    ]
    got = pair_correlations(child, parent)
    assert got["layer.0.w"] < 0.5  # same name, other layer: paired by name
    renamed = [
        TensorSketch(f"student.{i}", t.shape, t.sketch) for i, t in enumerate(child)
    ]
    sim = weight_similarity(renamed, parent)
    assert sim is not None
    assert sim.median > 0.95  # each student layer found its teacher layer


def test_compare_sketches_is_the_same_engine() -> None:
    """The scanner's tuple interface gives exactly the engine's correlations."""
    rng = np.random.default_rng(9)
    a = [("w", (16, 16), _sk(rng.standard_normal(256))), ("v", (256,), None)]
    b = [("x", (16, 16), a[0][2])]
    assert identity.compare_sketches(a, b) == pytest.approx({"w": 1.0})
    assert similarity.correlation(a[0][2], b[0][2]) == pytest.approx(1.0)
