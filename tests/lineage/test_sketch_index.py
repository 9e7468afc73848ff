"""Shape buckets and the LSH index on sketches, and link over them: plain records."""

from __future__ import annotations

import numpy as np
from memory_index import MemoryIndex, layers, sketch

from modelscan.lineage import evidence
from modelscan.lineage.infer import link
from modelscan.lineage.rows import BlobInfo, TensorSketch
from modelscan.lineage.sketch_index import (
    MAX_BITS,
    MIN_BITS,
    SketchIndex,
    bits_for,
    candidate_parents,
)
from modelscan.scanner.similarity import Similarity, weight_similarity

UNRELATED = 3000


def files(
    n: int, seed: int, shape: tuple[int, ...] = (16, 16), w: int = 4
) -> dict[int, list[TensorSketch]]:
    """``n`` files of unrelated random windows, ids 1..n."""
    rng = np.random.default_rng(seed)
    return {
        i: [
            TensorSketch(f"layers.{j}.w", shape, sketch(rng.standard_normal(256)))
            for j in range(w)
        ]
        for i in range(1, n + 1)
    }


def tuned(ts: list[TensorSketch], seed: int, scale: float = 0.1) -> list[TensorSketch]:
    """The same tensors plus Gaussian noise (a fine-tune)."""
    rng = np.random.default_rng(seed)
    return [
        TensorSketch(
            t.name,
            t.shape,
            sketch(np.frombuffer(t.sketch, "<f2") + scale * rng.standard_normal(256)),
        )
        for t in ts
    ]


def test_a_finetune_is_found_among_thousands_of_unrelated_files() -> None:
    """Among 3000 unrelated same-shape files, the fine-tune's candidate is its base."""
    world = files(UNRELATED, seed=1)
    base = world[17]
    world[UNRELATED + 1] = tuned(base, seed=2)
    ranks = {i: i for i in world}
    found = candidate_parents(world, ranks)
    assert found == {UNRELATED + 1: [17]}


def test_unrelated_files_give_no_candidate_and_no_edge() -> None:
    """Unrelated windows of one shape never pass the screen: no pair, no edge."""
    index = MemoryIndex()
    rng = np.random.default_rng(5)
    for i in range(300):
        sha = f"{i:064x}"
        index.add_blob(sha, [rng.standard_normal(256) for _ in range(4)], dtype="F32")
        index.add_file(sha, index.add_repo("huggingface", f"o/m{i}"), day=i)
    stats = link(index)
    assert stats.similarity == 0
    assert [e for e in index.edges if e.source == "weight-similarity"] == []


def test_link_finds_the_finetune_among_thousands() -> None:
    """Link over 2000 unrelated files and one fine-tune writes exactly one edge."""
    index = MemoryIndex()
    rng = np.random.default_rng(7)
    for i in range(2000):
        sha = f"{i:064x}"
        index.add_blob(sha, [rng.standard_normal(256) for _ in range(4)], dtype="F32")
        index.add_file(sha, index.add_repo("huggingface", f"o/m{i}"), day=i)
    base = index.blob_rows[f"{40:064x}"]
    windows = [np.frombuffer(t.sketch, "<f2") for t in index.tensors[base.id]]
    ft = "f" * 64
    index.add_blob(
        ft, [w + 0.1 * rng.standard_normal(256) for w in windows], dtype="F32"
    )
    index.add_file(ft, index.add_repo("huggingface", "t/ft"), day=3000)
    stats = link(index)
    [edge] = [e for e in index.edges if e.source == "weight-similarity"]
    assert (edge.child_sha256, edge.parent_sha256) == (ft, base.sha256)
    assert edge.relation == "finetune"
    assert stats.similarity == 1


def _matrices(prefix: str, windows: list[np.ndarray], shape: tuple[int, ...]) -> list:
    return [
        TensorSketch(f"{prefix}.{i}.w", shape, sketch(w)) for i, w in enumerate(windows)
    ]


def test_a_pruned_model_meets_its_teacher_on_the_shared_shapes() -> None:
    """A student keeping 3 of 8 layers (other embedding shape) finds its teacher."""
    teacher_layers = layers(11, 8)
    teacher = [
        TensorSketch("embed.weight", (1000, 64), sketch(layers(12, 1)[0])),
        *_matrices("layers", teacher_layers, (64, 64)),
    ]
    kept = [teacher_layers[i] for i in (0, 2, 5)]
    student = [
        TensorSketch("embed.weight", (500, 64), sketch(layers(13, 1)[0])),
        *_matrices("blocks", kept, (64, 64)),
    ]
    world = files(500, seed=3, shape=(64, 64), w=8)
    world[1000], world[1001] = teacher, tuned(student, seed=4, scale=0.05)
    ranks = {i: i for i in world}
    assert candidate_parents(world, ranks, children=[1001]) == {1001: [1000]}
    sim = weight_similarity(world[1001], world[1000])
    assert sim is not None
    assert sim.tensors == 3
    assert sim.median > 0.99


def test_bits_grow_with_the_bucket() -> None:
    """A small bucket keeps few bits (compared in full), a huge one up to 32."""
    assert bits_for(1) == MIN_BITS
    assert bits_for(10_000) < bits_for(10_000_000) <= MAX_BITS
    assert bits_for(10**12) == MAX_BITS


def test_flat_windows_and_the_order_are_respected() -> None:
    """Flat windows are no evidence; a parent must be uploaded earlier."""
    w = np.random.default_rng(0).standard_normal(256).astype("<f2")
    idx = SketchIndex()
    idx.add_windows(
        [1, 2, 3, 4],
        [0, 0, 0, 0],
        [(16, 16)] * 4,
        np.vstack([w, w, np.zeros(256, "<f2"), np.zeros(256, "<f2")]),
    )
    idx.set_order([2, 1, 3, 4])
    assert idx.pairs().tolist() == [[1, 2]]
    assert len(idx) == 2
    assert SketchIndex().pairs().shape == (0, 2)


def _blob(i: int, dtype: str, weights_id: str | None = None) -> BlobInfo:
    return BlobInfo(sha256=f"{i:064x}", id=i, dtype=dtype, weights_id=weights_id)


def _sim(identical: int, tensors: int = 4, median: float = 1.0) -> Similarity:
    return Similarity(median, tensors, {}, {}, identical)


def test_the_verdict_from_sketches_dtypes_and_structure() -> None:
    """same-weights, a cast, a quantization, a fine-tune and a pruned copy."""
    parent = _blob(1, "F32")
    verdict = evidence.sketch_verdict
    assert verdict(_blob(2, "F32"), parent, _sim(4), same_structure=True) == (
        "conversion",
        "same-weights",
    )
    assert verdict(_blob(2, "F16"), parent, _sim(4), same_structure=True) == (
        "conversion",
        "weight-similarity",
    )
    q8 = verdict(_blob(2, "Q8_0"), parent, _sim(0, median=0.999), same_structure=True)
    assert q8 == ("quantized", "weight-similarity")
    assert verdict(_blob(2, "F32"), parent, _sim(3), same_structure=True) == (
        "finetune",
        "weight-similarity",
    )
    assert verdict(_blob(2, "F32"), parent, _sim(4), same_structure=False) == (
        "finetune",
        "weight-similarity",
    )
    both = (_blob(2, "F32", "W2"), _blob(1, "F32", "W1"))
    assert verdict(*both, _sim(4), same_structure=True)[0] == "finetune"
