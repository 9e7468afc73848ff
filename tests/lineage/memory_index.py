"""An in-memory index of plain records: the fake behind the pure lineage tests.

It implements :class:`modelscan.lineage.rows.LineageIndex` and ``link``'s
:class:`~modelscan.lineage.infer.LinkIndex` over lists and dicts, so lineage,
``--check`` and spread are tested without any database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from modelscan.lineage.rows import (
    BlobInfo,
    ClaimRow,
    CopyRow,
    EdgeReplacement,
    EdgeRow,
    FamilyRow,
    Holdings,
    LinkWatermark,
    Occurrence,
    RepoRow,
    Resolved,
    SketchPage,
    TensorSketch,
)
from modelscan.refs import parse_any_ref

T0 = datetime(2025, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def sketch(values: np.ndarray) -> bytes:
    """A float16 sketch of 256 values."""
    return values.astype("<f2").tobytes()


def layers(seed: int, n: int = 4) -> list[np.ndarray]:
    """Independent random windows, one per layer."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(256) for _ in range(n)]


@dataclass
class MemoryIndex:
    """Blobs, tensors, files, repos, claims and edges as plain records."""

    blob_rows: dict[str, BlobInfo] = field(default_factory=dict)
    tensors: dict[int, list[TensorSketch]] = field(default_factory=dict)
    files: list[tuple[Occurrence, str, datetime | None]] = field(default_factory=list)
    repo_rows: dict[int, RepoRow] = field(default_factory=dict)
    claim_rows: list[ClaimRow] = field(default_factory=list)
    edges: list[EdgeRow] = field(default_factory=list)
    state: LinkWatermark | None = None

    # --- building a world ---------------------------------------------------------

    def add_repo(self, host: str, host_id: str, owner: str | None = None) -> int:
        """Add a repo; return its id."""
        rid = len(self.repo_rows) + 1
        self.repo_rows[rid] = RepoRow(
            id=rid, host=host, host_id=host_id, owner=owner, status="live",
            first_seen=T0, downloads=0,
        )  # fmt: skip
        return rid

    def add_blob(
        self, sha: str, windows: Sequence[np.ndarray] = (), **ids: Any
    ) -> BlobInfo:
        """Add a blob with one 16x16 matrix per window."""
        blob = BlobInfo(
            sha256=sha, id=len(self.blob_rows) + 1,
            parameter_count=256 * len(windows) or None, **ids,
        )  # fmt: skip
        self.blob_rows[sha] = blob
        self.tensors[blob.id] = [
            TensorSketch(f"layers.{i}.w", (16, 16), sketch(w))
            for i, w in enumerate(windows)
        ]
        return blob

    def add_file(
        self,
        sha: str,
        repo_id: int,
        day: int,
        path: str = "model.safetensors",
        gone: int | None = None,
    ) -> None:
        """Add an occurrence of ``sha`` in a repo, first seen on ``day``."""
        occ = Occurrence(
            sha256=sha, repo_id=repo_id, file_id=len(self.files) + 1,
            first_seen=T0 + day * DAY,
        )  # fmt: skip
        self.files.append((occ, path, T0 + gone * DAY if gone is not None else None))

    def declare(self, child: int, parent_ref: str, relation: str = "finetune") -> None:
        """Add a host-declared edge (resolved when the parent repo is known)."""
        parsed = parse_any_ref(parent_ref)
        self.edges.append(
            EdgeRow(
                id=len(self.edges) + 1, child_repo_id=child, parent_ref=parent_ref,
                relation=relation, source="declared-card",
                parent_repo_id=self.find_repo(*parsed) if parsed else None,
            )
        )  # fmt: skip

    # --- LineageIndex -------------------------------------------------------------

    def holdings(self, shas: Iterable[str]) -> Holdings:
        """Hosted occurrences of ``shas``."""
        wanted = set(shas)
        return Holdings.of(o for o, _, _ in self.files if o.sha256 in wanted)

    def blobs(self, shas: Iterable[str]) -> dict[str, BlobInfo]:
        """Identity columns of ``shas``."""
        return {s: self.blob_rows[s] for s in shas if s in self.blob_rows}

    def blob_families(
        self, content_ids: Iterable[str], weights_ids: Iterable[str]
    ) -> dict[str, BlobInfo]:
        """Blobs with one of the ids."""
        cids, wids = set(content_ids), set(weights_ids)
        return {
            s: b
            for s, b in self.blob_rows.items()
            if b.content_id in cids or b.weights_id in wids
        }

    def shape_groups(self, counts: Iterable[int], per_count: int) -> list[BlobInfo]:
        """Blobs with these parameter counts, in id order."""
        wanted = set(counts)
        found = [b for b in self.blob_rows.values() if b.parameter_count in wanted]
        return sorted(found, key=lambda b: b.id)[:per_count]

    def matrix_shapes(
        self, blob_ids: Iterable[int]
    ) -> dict[int, list[tuple[int, ...]]]:
        """Tensor shapes per blob."""
        return {i: [t.shape for t in self.tensors.get(i, [])] for i in blob_ids}

    def sketches(self, blob_ids: Iterable[int]) -> dict[int, list[TensorSketch]]:
        """Sketches per blob."""
        return {i: self.tensors[i] for i in blob_ids if self.tensors.get(i)}

    def sketch_page(
        self, shapes: Iterable[tuple[int, ...]], after_id: int, limit: int
    ) -> SketchPage:
        """The next ``limit`` blobs by id, with their matrices of ``shapes``."""
        wanted = set(shapes)
        page = sorted(
            (
                b
                for b in self.blob_rows.values()
                if b.id > after_id and b.parameter_count
            ),
            key=lambda b: b.id,
        )[:limit]
        sketches = {
            b.id: [t for t in self.tensors.get(b.id, []) if t.shape in wanted]
            for b in page
        }
        sketches = {i: s for i, s in sketches.items() if s}
        return SketchPage(
            blobs={b.id: b for b in page if b.id in sketches},
            sketches=sketches,
            next_after=page[-1].id if len(page) == limit else None,
        )

    def claims(self, shas: Iterable[str]) -> list[ClaimRow]:
        """Claims of ``shas``."""
        wanted = set(shas)
        return [c for c in self.claim_rows if c.sha256 in wanted]

    def resolve_refs(self, refs: Iterable[str]) -> dict[str, Resolved]:
        """Blob (``sha256:``) or repo each reference names."""
        out = {}
        for ref in refs:
            kind, _, value = ref.partition(":")
            if kind == "sha256":
                origin = self.holdings([value]).origin.get(value)
                known = value in self.blob_rows
                out[ref] = Resolved(
                    value if known else None, origin.repo_id if origin else None
                )
                continue
            parsed = parse_any_ref(ref)
            out[ref] = Resolved(None, self.find_repo(*parsed) if parsed else None)
        return out

    def find_repo(self, host: str, host_id: str) -> int | None:
        """The repo ``(host, host_id)``."""
        for r in self.repo_rows.values():
            if (r.host, r.host_id) == (host, host_id):
                return r.id
        return None

    def repos(self, ids: Iterable[int]) -> dict[int, RepoRow]:
        """Repos by id."""
        return {i: self.repo_rows[i] for i in ids if i in self.repo_rows}

    def repo_model_blobs(
        self, repo_id: int, suffixes: Sequence[str]
    ) -> tuple[str, ...]:
        """Model files a repo held."""
        return tuple(
            sorted(
                {
                    o.sha256
                    for o, path, _ in self.files
                    if o.repo_id == repo_id and path.endswith(tuple(suffixes))
                }
            )
        )

    def match_hash(self, text: str) -> tuple[str, ...]:
        """Blobs whose sha256 starts with ``text``."""
        return tuple(sorted(s for s in self.blob_rows if s.startswith(text.lower())))

    def known_blob(self, sha: str) -> bool:
        """Whether ``sha`` is a blob."""
        return sha in self.blob_rows

    def edges_from(
        self, child_repo_ids: Iterable[int], *, sources: Sequence[str] = ()
    ) -> list[EdgeRow]:
        """Parent edges of repos."""
        ids = set(child_repo_ids)
        return [
            e
            for e in self.edges
            if e.child_repo_id in ids and (not sources or e.source in sources)
        ]

    def edges_to(
        self,
        parent_repo_ids: Iterable[int] = (),
        *,
        parent_shas: Iterable[str] = (),
        parent_refs: Iterable[str] = (),
    ) -> list[EdgeRow]:
        """Edges pointing at repos, blobs or unresolved references."""
        ids, shas, refs = set(parent_repo_ids), set(parent_shas), set(parent_refs)
        return [
            e
            for e in self.edges
            if e.parent_repo_id in ids
            or e.parent_sha256 in shas
            or (e.parent_repo_id is None and e.parent_ref in refs)
        ]

    def same_weights_blobs(
        self, shas: Iterable[str], content_id: str | None, weights_id: str | None
    ) -> set[str]:
        """``shas`` and their content or weights family."""
        out = set(shas)
        mine = self.blobs(out).values()
        cids = {b.content_id for b in mine} | {content_id}
        wids = {b.weights_id for b in mine} | {weights_id}
        found = self.blob_families((c for c in cids if c), (w for w in wids if w))
        return out | set(found)

    def spread_copies(self, shas: Iterable[str]) -> list[CopyRow]:
        """Hosted occurrences of ``shas`` with their repos."""
        wanted = set(shas)
        out = []
        for o, path, gone in self.files:
            if o.sha256 not in wanted:
                continue
            r = self.repo_rows[o.repo_id]
            out.append(
                CopyRow(
                    repo_id=r.id, host=r.host, host_id=r.host_id,
                    owner=r.owner or r.host_id, downloads=r.downloads,
                    sha256=o.sha256, path=path, first_seen=o.first_seen, gone_at=gone,
                )
            )  # fmt: skip
        return sorted(out, key=lambda c: c.first_seen)

    def top_families(self, n: int, *, order: str) -> list[FamilyRow]:
        """No views in memory: nothing ranked."""
        return []

    def family_blobs(self, family: str) -> list[str]:
        """Blobs of a weights family."""
        return sorted(
            s for s, b in self.blob_rows.items() if family in (b.weights_id, s)
        )

    # --- LinkIndex ----------------------------------------------------------------

    def touched_blobs(self, since: datetime | None) -> set[str]:
        """Every blob with an occurrence seen since ``since``."""
        return {
            o.sha256 for o, _, _ in self.files if since is None or o.first_seen >= since
        }

    def newest_sighting(self) -> datetime | None:
        """Newest first sighting of a file."""
        return max((o.first_seen for o, _, _ in self.files), default=None)

    def link_state(self) -> LinkWatermark | None:
        """The last run's saved state."""
        return self.state

    def save_link_state(self, state: dict[str, Any], at: datetime) -> None:
        """Keep the run's state."""
        mark = state.get("watermark")
        self.state = LinkWatermark(
            state=state,
            watermark=datetime.fromisoformat(mark) if mark else None,
            finished_at=at,
        )

    def replace_edges(self, batch: Sequence[EdgeReplacement], at: datetime) -> int:
        """Rewrite edges on the lineage natural key; return deletions."""
        removed = 0
        for r in batch:
            wanted = {row.key: row for row in r.rows}
            keep = []
            for e in self.edges:
                mine = e.child_sha256 in r.child_shas and e.source in r.sources
                if mine and e.key not in wanted:
                    removed += 1
                elif not (mine or e.key in wanted):
                    keep.append(e)
            ids = {e.key: e.id for e in self.edges}
            fresh = iter(range(max([0, *(e.id or 0 for e in self.edges)]) + 1, 10**9))
            self.edges = keep + [
                replace(row, id=ids.get(row.key) or next(fresh))
                for row in wanted.values()
            ]
            self.edges.sort(key=lambda e: e.id or 0)
        return removed

    def unresolved_edges(self, since: datetime | None) -> list[EdgeRow]:
        """Edges without a parent repo."""
        return [e for e in self.edges if e.parent_repo_id is None]

    def set_edge_parents(self, parents: dict[int, Resolved]) -> None:
        """Point edges at their parents."""
        self.edges = [
            replace(
                e,
                parent_repo_id=parents[e.id].repo_id,
                parent_sha256=parents[e.id].sha256 or e.parent_sha256,
            )
            if e.id in parents
            else e
            for e in self.edges
        ]
