"""Candidate parents at index scale: shape buckets and an LSH index on sketches.

``link`` never compares every pair of files. Each sketched matrix window goes
into the bucket of its shape (a pruned or distilled model shares the shapes of
the layers it kept, so it meets its teacher there), and within a bucket into a
random-projection LSH (SimHash): a window's sign pattern against
:data:`BANDS` x 32 fixed random hyperplanes, cut into bands. Two windows whose
Pearson r is rho agree on one bit with probability ``1 - arccos(rho) / pi``, so
related windows (r near 1) share a band key and unrelated ones (r near 0)
almost never do.

The bits kept per band grow with the bucket (``log2`` of its windows times the
bands, over :data:`FALSE_PER_WINDOW`): a small bucket keeps few bits and is in
effect compared in full, a bucket of millions keeps up to 32 bits, so the
random collisions per window stay about constant and the work grows with the
number of windows (one sort, ``N log N``), never with pairs. Keys are sorted
with the files' upload rank, so a key held by many files hands a later file
only the :data:`MAX_PER_KEY` earliest (the parent is the earliest match).
Every colliding pair of windows is screened by its own correlation
(:data:`SCREEN`) before the pair of files goes to the verdict of
``scanner/similarity.py``.

Example:
    >>> import numpy as np
    >>> idx = SketchIndex()
    >>> w = np.random.default_rng(0).standard_normal((1, 256)).astype("<f2")
    >>> idx.add_windows([1, 2], [0, 1], [(16, 16), (16, 16)], np.vstack([w, w]))
    >>> idx.pairs().tolist()
    [[2, 1]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from modelscan.scanner.similarity import Sketched

WINDOW = 256  # elements of one sketch window (DESIGN.md section 4)
BANDS = 6  # LSH bands per window
MAX_BITS, MIN_BITS = 32, 4  # bits kept per band, by bucket size
FALSE_PER_WINDOW = 1.0  # random band collisions a query window should expect
MAX_PER_KEY = 32  # earliest files one band key hands to a later file
SCREEN = 0.5  # a colliding window pair below this r is no candidate
SEED = 0x5EED  # the hyperplanes are fixed: the same keys on every run
_CHUNK = 1 << 16  # windows projected per step


def _standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows to mean 0, std 1 (float16 kept); and which rows have any spread."""
    x = x.astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    std = x.std(axis=1)
    ok = std > 0
    x[ok] /= std[ok][:, None]
    x[~ok] = 0
    return x.astype(np.float16), ok


def bits_for(windows: int, bands: int = BANDS) -> int:
    """Bits kept per band for a bucket of ``windows`` windows."""
    want = math.log2(max(windows * bands / FALSE_PER_WINDOW, 1.0))
    return int(min(MAX_BITS, max(MIN_BITS, math.ceil(want))))


class SketchIndex:
    """Sketch windows of many files, bucketed by shape, searchable by LSH."""

    def __init__(self, *, bands: int = BANDS, seed: int = SEED) -> None:
        """Make an empty index with fixed random hyperplanes."""
        rng = np.random.default_rng(seed)
        self.bands = bands
        self._planes = rng.standard_normal((WINDOW, bands * MAX_BITS)).astype(
            np.float32
        )
        self._shape_code: dict[tuple[int, ...], int] = {}
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._frozen: tuple[np.ndarray, ...] | None = None
        self._order: np.ndarray | None = None

    def __len__(self) -> int:
        """Windows held."""
        return sum(len(p[0]) for p in self._parts)

    def add_windows(
        self,
        blob_ids: Sequence[int] | np.ndarray,
        ranks: Sequence[int] | np.ndarray,
        shapes: Sequence[tuple[int, ...]],
        windows: np.ndarray,
    ) -> None:
        """Add windows (rows of 256 float16 values), one file id, rank, shape each.

        Flat windows (no spread) are no evidence and are left out.
        """
        z, ok = _standardize(np.asarray(windows).reshape(-1, WINDOW))
        code = self._shape_code
        codes = np.array(
            [code.setdefault(tuple(s), len(code)) for s in shapes], dtype=np.int64
        )
        bits = (
            np.vstack(
                [self._project(z[i : i + _CHUNK]) for i in range(0, len(z), _CHUNK)]
            )
            if len(z)
            else np.zeros((0, self.bands), dtype=np.uint32)
        )
        ids = np.asarray(blob_ids, dtype=np.int64)
        rank = np.asarray(ranks, dtype=np.int64)
        self._parts.append((ids[ok], rank[ok], codes[ok], bits[ok], z[ok]))
        self._frozen = None

    def add_files(self, files: Iterable[tuple[int, int, Sequence[Sketched]]]) -> None:
        """Add every sketched matrix of each ``(file id, rank, sketches)``."""
        ids: list[int] = []
        ranks: list[int] = []
        shapes: list[tuple[int, ...]] = []
        raw: list[bytes] = []
        for bid, rank, sketches in files:
            for t in sketches:
                if len(t.shape) >= 2 and len(t.sketch) == 2 * WINDOW:
                    ids.append(bid)
                    ranks.append(rank)
                    shapes.append(tuple(t.shape))
                    raw.append(t.sketch)
        if raw:
            windows = np.frombuffer(b"".join(raw), dtype="<f2").reshape(-1, WINDOW)
            self.add_windows(ids, ranks, shapes, windows)

    def set_order(self, blob_ids: Sequence[int]) -> None:
        """Rank the files by upload order after they were added (ranks given: 0).

        Windows of files not named are dropped (no hosted upload: no parent).
        """
        self._order = np.asarray(blob_ids, dtype=np.int64)
        self._frozen = None

    def _project(self, z: np.ndarray) -> np.ndarray:
        """Each window's band values: BANDS words of 32 sign bits."""
        signs = (z.astype(np.float32) @ self._planes) > 0
        packed = np.packbits(signs, axis=1, bitorder="little")
        return packed.view("<u4").reshape(len(z), self.bands)

    def _freeze(self) -> tuple[np.ndarray, ...]:
        """Sorted band keys (shape, band, kept bits) with their window and rank."""
        if self._frozen is not None:
            return self._frozen
        if not self._parts:
            self.add_windows([], [], [], np.zeros((0, WINDOW), dtype=np.float16))
        ids, rank, codes, bits, z = (
            np.concatenate([p[i] for p in self._parts]) for i in range(5)
        )
        if self._order is not None:
            ids, rank, codes, bits, z = self._ranked(ids, codes, bits, z)
        per_shape = np.bincount(codes.astype(np.int64), minlength=1)
        kept = np.array([bits_for(int(n), self.bands) for n in per_shape])
        mask = ((np.uint64(1) << kept.astype(np.uint64)) - np.uint64(1))[codes]
        band = np.arange(self.bands, dtype=np.uint64)
        keys = (
            (codes.astype(np.uint64)[:, None] << np.uint64(40))
            | (band[None, :] << np.uint64(32))
            | (bits.astype(np.uint64) & mask[:, None])
        ).ravel()
        window = np.repeat(np.arange(len(ids)), self.bands)
        order = np.lexsort((np.repeat(rank, self.bands), keys))
        self._frozen = (keys[order], window[order], ids, rank, z)
        return self._frozen

    def _ranked(
        self, ids: np.ndarray, codes: np.ndarray, bits: np.ndarray, z: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        """Keep the windows of ordered files, ranked by their place in the order."""
        assert self._order is not None
        by_id = np.argsort(self._order, kind="stable")
        pos = np.searchsorted(self._order[by_id], ids)
        pos = np.minimum(pos, max(len(by_id) - 1, 0))
        known = (self._order[by_id][pos] == ids) if len(by_id) else ids < 0
        rank = by_id[pos]
        return ids[known], rank[known], codes[known], bits[known], z[known]

    def pairs(self, involving: Iterable[int] | None = None) -> np.ndarray:
        """Candidate (child, parent) ids: the parent earlier, a window pair r >= SCREEN.

        Args:
            involving: only pairs whose child or parent is one of these files
                (None: every pair).

        Returns:
            An ``n x 2`` array of distinct (child id, parent id), sorted.
        """
        keys, window, ids, rank, z = self._freeze()
        if len(keys) == 0:
            return np.zeros((0, 2), dtype=np.int64)
        start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        size = np.diff(np.r_[start, len(keys)])
        group_start = np.repeat(start, size)
        offset = np.arange(len(keys)) - group_start
        count = np.minimum(offset, MAX_PER_KEY)
        child_pos = np.repeat(np.arange(len(keys)), count)
        within = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        parent_pos = np.repeat(group_start, count) + within
        cw, pw = window[child_pos], window[parent_pos]
        keep = ids[cw] != ids[pw]
        if involving is not None:
            wanted = np.fromiter(set(involving), dtype=np.int64)
            keep &= np.isin(ids[cw], wanted) | np.isin(ids[pw], wanted)
        cw, pw = cw[keep], pw[keep]
        r = (
            np.concatenate(
                [
                    np.einsum(
                        "ij,ij->i",
                        z[cw[i : i + _CHUNK]].astype(np.float32),
                        z[pw[i : i + _CHUNK]].astype(np.float32),
                    )
                    / WINDOW
                    for i in range(0, len(cw), _CHUNK)
                ]
            )
            if len(cw)
            else np.zeros(0)
        )
        good = r >= SCREEN
        found = np.stack([ids[cw[good]], ids[pw[good]]], axis=1)
        return np.unique(found, axis=0) if len(found) else found.astype(np.int64)


def candidate_parents(
    files: Mapping[int, Sequence[Sketched]],
    ranks: Mapping[int, int],
    children: Iterable[int] | None = None,
) -> dict[int, list[int]]:
    """Each child's earlier candidate parents among ``files``, earliest first.

    Args:
        files: the sketches of every file in the buckets searched, by file id.
        ranks: each file's upload rank (lower: uploaded first).
        children: the files whose parents are wanted (None: all).
    """
    index = SketchIndex()
    index.add_files((bid, ranks[bid], s) for bid, s in files.items())
    wanted = None if children is None else set(children)
    out: dict[int, list[int]] = {}
    for child, parent in index.pairs(wanted).tolist():
        if wanted is None or child in wanted:
            out.setdefault(child, []).append(parent)
    return {c: sorted(ps, key=ranks.__getitem__) for c, ps in out.items()}
