"""The one sketch-similarity engine: Pearson r and layer matching (DESIGN.md 4).

Two files' sketches in, one :class:`Similarity` out. The rules are DESIGN.md
section 4's: matrices only (1-D tensors correlate across unrelated layers), a
window with no spread is no evidence (not r = 0), embedding tables are left out
of the verdict (they show shared initialisation, not fine-tuning), and layers
are matched through the whole layer-by-layer correlation matrix of each shape:
a child tensor whose name and shape the parent has pairs with that tensor, any
other takes its best-correlated parent matrix of the same shape, so a distilled
or renamed model still finds its layers.

Example:
    >>> import numpy as np
    >>> x = np.arange(256, dtype="<f2").tobytes()
    >>> correlation(x, x), correlation(x, bytes(512))  # zeros: no spread, no evidence
    (1.0, None)
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
_LAYER = re.compile(r"(?:^|\.)(\d+)(?:\.|$)")


class Sketched(Protocol):
    """Anything with a tensor's name, shape and float16 sketch bytes."""

    @property
    def name(self) -> str: ...  # noqa: D102

    @property
    def shape(self) -> tuple[int, ...]: ...  # noqa: D102

    @property
    def sketch(self) -> bytes: ...  # noqa: D102


@dataclass(frozen=True, slots=True)
class Similarity:
    """How alike two files' weights are, matrix by matrix."""

    median: float  # median Pearson r over the matrices that count
    tensors: int  # matrices that count (embeddings and flat windows left out)
    layers: dict[str, float]  # layer number (or "other") -> median r of its matrices
    per_tensor: dict[str, float]  # child tensor name -> r, embeddings included
    identical: int = 0  # counted matrices with the parent's sketch, byte for byte

    @property
    def all_identical(self) -> bool:
        """Every matrix that counts has the parent's sketch exactly (same weights)."""
        return self.tensors > 0 and self.identical == self.tensors

    def evidence(self) -> dict[str, Any]:
        """Return the JSON evidence stored with a weight-similarity edge."""
        return {
            "median_correlation": round(self.median, 4),
            "matrices": self.tensors,
            "layers": {k: round(v, 4) for k, v in self.layers.items()},
            "identical_sketches": self.identical,
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


def correlation_matrix(
    a: Sequence[bytes], b: Sequence[bytes]
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r of every window of ``a`` with every window of ``b`` (same length).

    Returns:
        The ``len(a) x len(b)`` matrix of r, and which entries are evidence
        (both windows have spread).
    """
    za, oka = _standardized(a)
    zb, okb = _standardized(b)
    r = np.clip(za @ zb.T / za.shape[1], -1.0, 1.0)
    return r, oka[:, None] & okb[None, :]


def correlation(a: bytes, b: bytes) -> float | None:
    """Pearson correlation of two sketches; None when either window has no spread."""
    if len(a) != len(b) or not a:
        return None
    r, valid = correlation_matrix([a], [b])
    return float(r[0, 0]) if valid[0, 0] else None


def _by_shape(
    child: Sequence[Sketched], parent: Sequence[Sketched]
) -> list[tuple[list[Sketched], list[Sketched]]]:
    """Matrices of both files with a sketch, grouped by shape (shapes in both)."""
    groups: dict[tuple[int, ...], tuple[list[Sketched], list[Sketched]]] = defaultdict(
        lambda: ([], [])
    )
    for t in child:
        if len(t.shape) >= 2 and len(t.sketch) > 0:
            groups[tuple(t.shape)][0].append(t)
    for t in parent:
        if len(t.shape) >= 2 and len(t.sketch) > 0 and tuple(t.shape) in groups:
            groups[tuple(t.shape)][1].append(t)
    return [(kids, olds) for kids, olds in groups.values() if olds]


def pair_correlations(
    child: Sequence[Sketched], parent: Sequence[Sketched]
) -> dict[str, float]:
    """Correlate each child matrix with its parent counterpart.

    A child tensor whose name and shape exist in the parent pairs with that
    tensor; any other one takes the best correlation over the parent's matrices
    of its shape. Pairs where either window is flat are left out.

    Returns:
        child tensor name -> Pearson r.
    """
    return {name: r for name, (r, _) in _matched(child, parent).items()}


def _matched(
    child: Sequence[Sketched], parent: Sequence[Sketched]
) -> dict[str, tuple[float, bool]]:
    """Map each child tensor name to (r, whether the matched sketches are equal)."""
    out: dict[str, tuple[float, bool]] = {}
    for kids, olds in _by_shape(child, parent):
        r, valid = correlation_matrix(
            [t.sketch for t in kids], [t.sketch for t in olds]
        )
        index = {t.name: j for j, t in enumerate(olds)}
        for i, t in enumerate(kids):
            j = index.get(t.name)
            if j is None and valid[i].any():
                j = int(np.flatnonzero(valid[i])[np.argmax(r[i][valid[i]])])
            if j is not None and valid[i, j]:
                out[t.name] = (float(r[i, j]), t.sketch == olds[j].sketch)
    return out


def weight_similarity(
    child: Sequence[Sketched], parent: Sequence[Sketched]
) -> Similarity | None:
    """Compare two files' weights; None when no matrix gives evidence."""
    matched = _matched(child, parent)
    per_tensor = {n: r for n, (r, _) in matched.items()}
    counted = {n: r for n, r in per_tensor.items() if not is_embedding(n)}
    same = sum(1 for n in counted if matched[n][1])
    if not counted:
        return None
    by_layer: dict[str, list[float]] = defaultdict(list)
    for name, r in counted.items():
        by_layer[layer_of(name)].append(r)
    layers = {
        k: statistics.median(v) for k, v in sorted(by_layer.items(), key=_layer_key)
    }
    return Similarity(
        statistics.median(counted.values()), len(counted), layers, per_tensor, same
    )


def _layer_key(item: tuple[str, list[float]]) -> tuple[int, int | str]:
    key = item[0]
    return (0, int(key)) if key.isdigit() else (1, key)
