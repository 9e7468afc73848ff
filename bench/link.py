"""Benchmark: ``modelscan link`` on synthetic sketch sets, 10k to 1M files.

Each synthetic file has the sketches a remote fingerprint gives (here 4 float16
windows of 256 values: two matrices of one shape, two of another; every file
has the same structure, the worst case for the shape buckets). Files come in
upload order; kinds (fractions of all files):

- base (35%) and unrelated (20%): new random weights, F32;
- fine-tune (20%): a base plus Gaussian noise of 0.1 (r about 0.995), F32;
- container (5%): a base's sketches exactly, F32, no digests (same-weights);
- cast (10%): a base's sketches exactly, F16 (conversion);
- quantized (10%): a base plus noise of 0.02, Q8_0 (quantized).

Two measurements, both printing the time, the growth factor against the
previous size (N log N would be about 11.5x per 10x, N squared 100x), and the
edges found against the truth (a derived file pointing at its own base with the
right relation; any edge of a base or unrelated file is false):

1. candidate search + decision (``modelscan/lineage/sketch_index.py`` and
   ``evidence.best_parent`` / ``sketch_verdict``, the code ``link`` runs) at
   10k, 100k and 1M files;
2. the whole ``link`` through a SQLite index (blobs, tensors with sketches, one
   Hub repo and file per blob, bulk-inserted first and not timed) at 10k and
   100k: every page load, candidate search, decision and edge write.

    python bench/link.py                      # both, default sizes
    python bench/link.py --sizes 10000 100000 --db-sizes 10000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select, text

from modelscan.db.engine import open_store
from modelscan.db.tables import BLOBS, FILES, HOSTS, LINEAGE, REPOS, TENSORS
from modelscan.lineage import evidence
from modelscan.lineage.infer import link
from modelscan.lineage.rows import BlobInfo, TensorSketch
from modelscan.lineage.sketch_index import SketchIndex

KINDS = ("base", "unrelated", "finetune", "container", "cast", "quantized")
SHARE = (0.35, 0.20, 0.20, 0.05, 0.10, 0.10)
NOISE = {"finetune": 0.1, "quantized": 0.02, "container": 0.0, "cast": 0.0}
DTYPE = {"cast": "F16", "quantized": "Q8_0"}
WANT = {
    "finetune": ("finetune", "weight-similarity"),
    "container": ("conversion", "same-weights"),
    "cast": ("conversion", "weight-similarity"),
    "quantized": ("quantized", "weight-similarity"),
}
SHAPES = ((384, 384), (384, 384), (1536, 384), (1536, 384))
WINDOWS = len(SHAPES)
CHUNK = 50_000
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass
class World:
    """Synthetic files in upload order: windows, kind and true parent of each."""

    windows: np.ndarray  # n x WINDOWS x 256 float16
    kind: np.ndarray  # index into KINDS
    parent: np.ndarray  # the base a derived file comes from; -1 for the others

    def dtype(self, i: int) -> str:
        """The file's dominant dtype."""
        return DTYPE.get(KINDS[self.kind[i]], "F32")


def make_world(n: int, seed: int = 1) -> World:
    """``n`` files: bases and unrelated files first drawn, then their derivatives."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(len(KINDS), size=n, p=SHARE)
    kind[0] = 0
    bases = np.flatnonzero(kind == 0)
    derived = np.flatnonzero(kind >= 2)
    before = np.searchsorted(bases, derived)  # bases uploaded earlier (>= 1)
    parent = np.full(n, -1, dtype=np.int64)
    parent[derived] = bases[(rng.random(len(derived)) * before).astype(np.int64)]
    windows = np.empty((n, WINDOWS, 256), dtype=np.float16)
    fresh = np.flatnonzero(kind < 2)
    for s in range(0, len(fresh), CHUNK):
        part = fresh[s : s + CHUNK]
        windows[part] = rng.standard_normal((len(part), WINDOWS, 256))
    for s in range(0, len(derived), CHUNK):
        part = derived[s : s + CHUNK]
        scale = np.array([NOISE[KINDS[k]] for k in kind[part]])[:, None, None]
        noise = rng.standard_normal((len(part), WINDOWS, 256)) * scale
        windows[part] = windows[parent[part]].astype(np.float64) + noise
    return World(windows, kind, parent)


class LazySketches(Mapping[int, list[TensorSketch]]):
    """The world's sketches as TensorSketch lists, built when asked for."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __getitem__(self, i: int) -> list[TensorSketch]:
        return [
            TensorSketch(f"layers.{j}.w", SHAPES[j], self.world.windows[i, j].tobytes())
            for j in range(WINDOWS)
        ]

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.world.kind)))

    def __len__(self) -> int:
        return len(self.world.kind)


def search_and_decide(world: World) -> tuple[dict[str, float], dict[int, Any]]:
    """Candidates through the LSH index, then the verdict per child; timed."""
    n = len(world.kind)
    t0 = time.perf_counter()
    index = SketchIndex()
    for s in range(0, n, CHUNK):
        ids = np.repeat(np.arange(s, min(n, s + CHUNK)), WINDOWS)
        shapes = [SHAPES[j] for j in range(WINDOWS)] * (len(ids) // WINDOWS)
        index.add_windows(
            ids, ids, shapes, world.windows[s : s + CHUNK].reshape(-1, 256)
        )
    pairs = index.pairs()
    t1 = time.perf_counter()
    found: dict[int, list[int]] = {}
    for c, p in pairs.tolist():
        found.setdefault(c, []).append(p)
    sketches = LazySketches(world)
    blob = {}
    edges: dict[int, Any] = {}
    for child, parents in found.items():
        cands = [_info(world, p, blob) for p in sorted(parents)]
        match = evidence.best_parent(sketches[child], cands, sketches)
        if match is not None:
            me = _info(world, child, blob)
            edges[child] = (
                match.parent.id,
                *evidence.sketch_verdict(
                    me, match.parent, match.similarity, same_structure=True
                ),
            )
    t2 = time.perf_counter()
    return {
        "search_s": t1 - t0,
        "decide_s": t2 - t1,
        "total_s": t2 - t0,
        "pairs": float(len(pairs)),
    }, edges


def _info(world: World, i: int, cache: dict[int, BlobInfo]) -> BlobInfo:
    if i not in cache:
        cache[i] = BlobInfo(
            sha256=f"{i:064x}", id=i, dtype=world.dtype(i), parameter_count=1
        )
    return cache[i]


def score(world: World, edges: Mapping[int, tuple[int, str, str]]) -> str:
    """Right edges among derived files, and false edges of the others."""
    derived = np.flatnonzero(world.kind >= 2)
    right = sum(
        1
        for i in derived.tolist()
        if edges.get(i, (None,))[0] == world.parent[i]
        and edges[i][1:] == WANT[KINDS[world.kind[i]]]
    )
    false = sum(1 for i in edges if world.kind[i] < 2)
    return f"{right}/{len(derived)} derived right, {false} false edges"


# --- the whole pipeline through a SQLite index --------------------------------


def fill_index(url: str, world: World) -> None:
    """Bulk-insert the world: a blob, its tensors, a Hub repo and a file each."""
    store = open_store(url)
    n = len(world.kind)
    with store.engine.begin() as conn:
        conn.execute(insert(HOSTS), [{"name": "huggingface", "first_seen": T0}])
    for s in range(0, n, CHUNK):
        ids = range(s, min(n, s + CHUNK))
        at = [T0 + timedelta(minutes=i) for i in ids]
        with store.engine.begin() as conn:
            conn.execute(insert(REPOS), [_repo(i, at[k]) for k, i in enumerate(ids)])
            conn.execute(
                insert(BLOBS), [_blob(world, i, at[k]) for k, i in enumerate(ids)]
            )
            conn.execute(insert(FILES), [_file(i, at[k]) for k, i in enumerate(ids)])
            conn.execute(
                insert(TENSORS),
                [
                    {
                        "blob_id": i + 1, "position": j, "name": f"layers.{j}.w",
                        "dtype": world.dtype(i), "shape": list(SHAPES[j]),
                        "nbytes": 4 * SHAPES[j][0] * SHAPES[j][1], "digest": None,
                        "sketch": world.windows[i, j].tobytes(),
                    }
                    for i in ids
                    for j in range(WINDOWS)
                ],
            )  # fmt: skip
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    store.close()


def _repo(i: int, at: datetime) -> dict[str, Any]:
    return {
        "id": i + 1, "host": "huggingface", "host_id": f"o{i}/m{i}", "name": f"m{i}",
        "owner": f"o{i}", "status": "live", "first_seen": at, "last_seen": at,
        "revision": "r1", "downloads": 0,
    }  # fmt: skip


def _blob(world: World, i: int, at: datetime) -> dict[str, Any]:
    return {
        "id": i + 1, "sha256": f"{i:064x}", "size": 1, "tensor_count": WINDOWS,
        "parameter_count": sum(a * b for a, b in SHAPES), "dtype": world.dtype(i),
        "first_seen": at, "fingerprinted_at": at, "remote": {"url": "synthetic"},
    }  # fmt: skip


def _file(i: int, at: datetime) -> dict[str, Any]:
    return {
        "repo_id": i + 1, "path": "model.safetensors", "size": 1,
        "sha256": f"{i:064x}", "status": "live", "first_seen": at, "last_seen": at,
    }  # fmt: skip


def pipeline(world: World) -> tuple[float, dict[int, tuple[int, str, str]]]:
    """Fill a SQLite index (untimed), then time ``link``; return its edges."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'link.sqlite'}"
        fill_index(url, world)
        store = open_store(url)
        t = time.perf_counter()
        link(store)
        spent = time.perf_counter() - t
        stmt = select(
            LINEAGE.c.child_repo_id,
            LINEAGE.c.parent_repo_id,
            LINEAGE.c.relation,
            LINEAGE.c.source,
        ).where(LINEAGE.c.source.in_(["weight-similarity", "same-weights"]))
        rows = store.execute(lambda c: c.execute(stmt).all())
        store.close()
    return spent, {c - 1: (p - 1, rel, src) for c, p, rel, src in rows}


def main() -> None:
    """Run both measurements and print one line per size."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000]
    )
    ap.add_argument("--db-sizes", type=int, nargs="*", default=[10_000, 100_000])
    args = ap.parse_args()
    prev: float | None = None
    print("candidate search + decision (no database)")
    for n in args.sizes:
        world = make_world(n)
        figures, edges = search_and_decide(world)
        growth = f"  x{figures['total_s'] / prev:.1f}" if prev else ""
        prev = figures["total_s"]
        print(
            f"  {n:>9,} files: {figures['total_s']:7.1f} s (search "
            f"{figures['search_s']:.1f} s, decide {figures['decide_s']:.1f} s, "
            f"{int(figures['pairs']):,} candidate pairs){growth}; {score(world, edges)}"
        )
    prev = None
    print("link through a SQLite index")
    for n in args.db_sizes:
        world = make_world(n)
        spent, edges = pipeline(world)
        growth = f"  x{spent / prev:.1f}" if prev else ""
        prev = spent
        print(f"  {n:>9,} files: {spent:7.1f} s{growth}; {score(world, edges)}")


if __name__ == "__main__":
    main()
