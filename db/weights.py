"""Weight similarity from sketches: the evidence behind fine-tune candidates.

Pure functions (no SQL): two files' sketches in, one :class:`Similarity` out.
The rules are DESIGN.md section 4's: matrices only, a window with no spread is
no evidence, embedding tables are left out of the verdict (they show shared
initialisation, not fine-tuning), and tensors pair by name when both files use
the same names, else each tensor of the child is matched to its best-correlated
tensor of the same shape in the parent (the whole correlation matrix, so a
distilled or renamed model still finds its layers).

Example:
    >>> a = [TensorSketch("w", (2, 512), bytes(512))]
    >>> weight_similarity(a, a) is None  # all zeros: no spread, no evidence
    True
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SIMILARITY_THRESHOLD = 0.5  # median r at or above: related weights (DESIGN.md 4)
UNRELATED_BELOW = 0.2  # median r under this: no sign of a shared parent
EMBEDDING_HINTS = (
    "embed",
    "wte",
    "wpe",
    "tok_embeddings",
    "token_embd",
    "lm_head",
    "shared.weight",
    "word_embeddings",
)
QUANTIZED_PREFIXES = ("Q", "IQ", "TQ")  # GGML block-quantized types: Q4_K, IQ2_XS, ...
INTEGER_DTYPES = frozenset({"I8", "U8", "I4", "U4", "F8_E4M3", "F8_E5M2"})
_LAYER = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


@dataclass(frozen=True, slots=True)
class TensorSketch:
    """One tensor's name, shape and 256-value float16 sketch."""

    name: str
    shape: tuple[int, ...]
    sketch: bytes


@dataclass(frozen=True, slots=True)
class Similarity:
    """How alike two files' weights are, matrix by matrix."""

    median: float  # median Pearson r over the matrices that count
    tensors: int  # matrices that count (embeddings and flat windows left out)
    layers: dict[str, float]  # layer number (or "other") -> median r of its matrices
    per_tensor: dict[str, float]  # child tensor name -> r, embeddings included

    def evidence(self) -> dict[str, Any]:
        """Return the JSON evidence stored with a weight-similarity edge."""
        return {
            "median_correlation": round(self.median, 4),
            "matrices": self.tensors,
            "layers": {k: round(v, 4) for k, v in self.layers.items()},
        }


def is_embedding(name: str) -> bool:
    """Tell whether a tensor name looks like an embedding table or an output head."""
    lower = name.lower()
    return any(hint in lower for hint in EMBEDDING_HINTS)


def layer_of(name: str) -> str:
    """Return the first layer number in a tensor name, or "other".

    >>> layer_of("encoder.layer.3.attention.self.query.weight"), layer_of("blk.0.ffn")
    ('3', '0')
    """
    found = _LAYER.search(name)
    return found.group(1) if found else "other"


def matrix_signature(shapes: Iterable[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """Return the sorted multiset of matrix shapes: same architecture, any names."""
    return tuple(sorted(tuple(s) for s in shapes if len(s) >= 2))


def _standardized(sketches: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to mean 0 and std 1; and which rows have any spread."""
    x = np.stack([np.frombuffer(s, dtype="<f2").astype(np.float64) for s in sketches])
    std = x.std(axis=1)
    ok = std > 0
    z = np.zeros_like(x)
    z[ok] = (x[ok] - x[ok].mean(axis=1, keepdims=True)) / std[ok][:, None]
    return z, ok


def pair_correlations(
    child: Sequence[TensorSketch], parent: Sequence[TensorSketch]
) -> dict[str, float]:
    """Correlate each child matrix with its parent counterpart.

    A child tensor whose name and shape exist in the parent pairs with that
    tensor; any other one takes the best correlation over the parent's matrices
    of its shape. Pairs where either window is flat are left out.

    Returns:
        child tensor name -> Pearson r.
    """
    groups: dict[tuple[int, ...], tuple[list[TensorSketch], list[TensorSketch]]] = (
        defaultdict(lambda: ([], []))
    )
    for t in child:
        if len(t.shape) >= 2 and len(t.sketch) > 0:
            groups[t.shape][0].append(t)
    for t in parent:
        if len(t.shape) >= 2 and len(t.sketch) > 0 and t.shape in groups:
            groups[t.shape][1].append(t)
    out: dict[str, float] = {}
    for kids, olds in groups.values():
        if not olds:
            continue
        zc, okc = _standardized([t.sketch for t in kids])
        zp, okp = _standardized([t.sketch for t in olds])
        r = zc @ zp.T / zc.shape[1]
        valid = okc[:, None] & okp[None, :]
        index = {t.name: j for j, t in enumerate(olds)}
        for i, t in enumerate(kids):
            j = index.get(t.name)
            if j is not None:
                if valid[i, j]:
                    out[t.name] = float(np.clip(r[i, j], -1.0, 1.0))
            elif valid[i].any():
                out[t.name] = float(np.clip(r[i][valid[i]].max(), -1.0, 1.0))
    return out


def weight_similarity(
    child: Sequence[TensorSketch], parent: Sequence[TensorSketch]
) -> Similarity | None:
    """Compare two files' weights; None when no matrix gives evidence."""
    per_tensor = pair_correlations(child, parent)
    counted = {n: r for n, r in per_tensor.items() if not is_embedding(n)}
    if not counted:
        return None
    by_layer: dict[str, list[float]] = defaultdict(list)
    for name, r in counted.items():
        by_layer[layer_of(name)].append(r)
    layers = {
        k: statistics.median(v) for k, v in sorted(by_layer.items(), key=_layer_key)
    }
    return Similarity(
        statistics.median(counted.values()), len(counted), layers, per_tensor
    )


def _layer_key(item: tuple[str, list[float]]) -> tuple[int, int | str]:
    key = item[0]
    return (0, int(key)) if key.isdigit() else (1, key)


def is_quantized(dtype: str | None) -> bool:
    """Tell whether a dtype is a block-quantized or integer storage of float weights."""
    if not dtype:
        return False
    return (
        dtype.upper().startswith(QUANTIZED_PREFIXES) or dtype.upper() in INTEGER_DTYPES
    )


def relation_for(child_dtype: str | None, parent_dtype: str | None) -> str:
    """Name what correlated weights most likely are, from the two files' dtypes.

    Same dtype: a fine-tune. Child quantized: a quantization. Another float
    precision: a conversion. It is a best guess; the edge's source
    (weight-similarity) says it was inferred.
    """
    if child_dtype == parent_dtype or not child_dtype or not parent_dtype:
        return "finetune"
    return "quantized" if is_quantized(child_dtype) else "conversion"
