"""``modelscan lineage``: a subject's ancestors and descendants from the lineage table.

A subject is a repo (``hf:org/name``, ``civitai:4384``, ``replicate:owner/name``
or a host URL), a hash in any spelling ``modelscan where`` accepts, or a local
file (fingerprinted first, and compared with the index on the fly). The graph's
nodes are repos, blobs known only by hash, and references not crawled yet; each
edge keeps its relation, source, confidence and evidence.

``check`` reports declared edges that the weights contradict: a declared parent
X while the inferred edges of the same repo point at other weights, or a
declared fine-tune of X whose weights do not correlate with X's (median < 0.2).

Example:
    >>> graph = store.execute(lambda c: lineage(c, resolve_subject(c, "hf:org/m")))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, or_, select

from modelscan.db import lineage_refs as refs
from modelscan.db import lookup
from modelscan.db.fileops import chunks
from modelscan.db.lineage_evidence import (
    MAX_GROUP,
    BlobInfo,
    best_parent,
    claimed_parents,
    load_blobs,
    load_sketches,
)
from modelscan.db.tables import BLOBS, FILES, LINEAGE, REPOS
from modelscan.db.weights import (
    TensorSketch,
    matrix_signature,
    relation_for,
)
from modelscan.errors import StoreError
from modelscan.records import Fingerprint

DEFAULT_DEPTH = 10
DECLARED = ("declared-card", "declared-tag", "declared-file", "declared-description")
SAME_WEIGHTS_SOURCES = (
    "identical-hash",
    "same-content",
    "same-weights",
    "weight-similarity",
)
MODEL_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".ggml",
    ".onnx",
    ".h5",
    ".msgpack",
    ".pkl",
    ".nemo",
    ".tflite",
    ".mlmodel",
)


@dataclass(frozen=True, slots=True)
class Subject:
    """What a command is about, resolved against the index."""

    text: str  # as the user gave it
    kind: str  # repo | hash | file | ref
    label: str  # how it is shown
    repo_ids: tuple[int, ...] = ()  # repos that are the subject or hold its bytes
    sha256s: tuple[str, ...] = ()  # the subject's own files
    refs: tuple[str, ...] = ()  # reference spellings declared children may use
    fingerprint: Fingerprint | None = None  # a local file's, not in the index


@dataclass(frozen=True, slots=True)
class Node:
    """A repo, a blob known only by hash, or a reference not crawled yet."""

    key: str  # "repo:12", "blob:<sha256>", "ref:<text>", "file:<path>"
    label: str
    host: str | None = None
    host_id: str | None = None
    owner: str | None = None
    status: str | None = None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Edge:
    """A parent edge: ``child`` derives from ``parent``."""

    child: str  # node keys
    parent: str
    relation: str
    source: str
    confidence: float | None
    parent_ref: str
    child_sha256: str | None = None
    parent_sha256: str | None = None
    evidence: dict[str, Any] | None = None

    @property
    def declared(self) -> bool:
        """Tell whether a host or file stated this edge (rather than measured)."""
        return self.source.startswith("declared")

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Contradiction:
    """A declared edge the weights disagree with."""

    child: str  # node key
    declared_parent: str  # node key
    relation: str
    source: str
    kind: str  # other-parent | low-correlation
    message: str
    inferred_parent: str | None = None
    correlation: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass
class LineageGraph:
    """The subject's family: nodes, edges, and (with --check) contradictions."""

    subject: Subject
    roots: list[str]  # the subject's node keys
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    contradictions: list[Contradiction] = field(default_factory=list)

    def parents_of(self, key: str) -> list[Edge]:
        """Edges from ``key`` up to its parents."""
        return [e for e in self.edges if e.child == key]

    def children_of(self, key: str) -> list[Edge]:
        """Edges from ``key``'s children up to it."""
        return [e for e in self.edges if e.parent == key]

    def to_json(self) -> dict[str, Any]:
        """Return the JSON document ``--format json`` prints."""
        s = self.subject
        return {
            "subject": {
                "text": s.text,
                "kind": s.kind,
                "label": s.label,
                "sha256": list(s.sha256s),
                "roots": self.roots,
            },
            "nodes": [n.to_json() for n in self.nodes.values()],
            "edges": [e.to_json() for e in self.edges],
            "contradictions": [c.to_json() for c in self.contradictions],
        }


# --- subjects -------------------------------------------------------------------------


def resolve_subject(
    conn: Connection, text: str, *, fp: Fingerprint | None = None
) -> Subject:
    """Resolve a repo reference, a hash or a fingerprinted local file.

    Raises:
        StoreError: the text is neither a reference nor a hash in a known spelling,
            or the hash matches nothing in the index.
    """
    if fp is not None:
        return _file_subject(conn, text, fp)
    parsed = refs.parse_any_ref(text)
    if parsed is not None:
        return _repo_subject(conn, text, *parsed)
    matched = lookup.resolve(conn, lookup.parse_query(text)).kinds
    if not matched:
        raise StoreError(
            f"{text}: no file with this hash in the index; crawl or "
            "`modelscan fingerprint --save` it first"
        )
    shas = tuple(sorted(matched))
    label = f"sha256:{shas[0][:12]}" + (
        f" (+{len(shas) - 1} more)" if len(shas) > 1 else ""
    )
    return Subject(text, "hash", label, _holders(conn, shas), shas)


def _repo_subject(conn: Connection, text: str, host: str, host_id: str) -> Subject:
    rid = refs.find_repo(conn, host, host_id)
    if rid is None:
        forms = tuple(refs.repo_ref_forms(host, host_id, None))
        return Subject(text, "ref", forms[0], (), (), forms)
    row = conn.execute(select(REPOS).where(REPOS.c.id == rid)).one()
    forms = tuple(refs.repo_ref_forms(row.host, row.host_id, row.url))
    return Subject(text, "repo", forms[0], (rid,), repo_model_blobs(conn, rid), forms)


def _file_subject(conn: Connection, text: str, fp: Fingerprint) -> Subject:
    sha = fp.sha256.lower()
    known = conn.execute(select(BLOBS.c.sha256).where(BLOBS.c.sha256 == sha)).scalar()
    holders = _holders(conn, [sha]) if known else ()
    return Subject(
        text, "file", os.path.basename(text) or text, holders, (sha,), fingerprint=fp
    )


def _holders(conn: Connection, shas: Iterable[str]) -> tuple[int, ...]:
    return tuple(
        sorted(
            {rid for s in refs.load_holdings(conn, shas).repos.values() for rid in s}
        )
    )


def repo_model_blobs(conn: Connection, repo_id: int) -> tuple[str, ...]:
    """Return the model files (by sha256) a repo has ever held.

    A file counts when its blob was fingerprinted with tensors or its path has a
    model file suffix; READMEs, configs and tokenizers do not.
    """
    stmt = (
        select(FILES.c.sha256, FILES.c.path, BLOBS.c.tensor_count)
        .join(BLOBS, BLOBS.c.sha256 == FILES.c.sha256)
        .where(FILES.c.repo_id == repo_id)
    )
    return tuple(
        sorted(
            {
                r.sha256
                for r in conn.execute(stmt)
                if r.tensor_count or r.path.lower().endswith(MODEL_SUFFIXES)
            }
        )
    )


# --- the graph ------------------------------------------------------------------------


def lineage(
    conn: Connection,
    subject: Subject,
    *,
    depth: int = DEFAULT_DEPTH,
    check: bool = False,
) -> LineageGraph:
    """Return the subject's ancestors and descendants up to ``depth`` edges away."""
    graph = LineageGraph(subject, [])
    _Walker(conn, graph).run(depth)
    if check:
        from modelscan.db.lineage_check import find_contradictions  # it reads graphs

        graph.contradictions = find_contradictions(conn, graph)
    return graph


class _Walker:
    """Breadth-first walks up and down the lineage table."""

    def __init__(self, conn: Connection, graph: LineageGraph) -> None:
        self.conn = conn
        self.graph = graph
        self.seen_edges: set[tuple[str, str, str, str]] = set()

    def run(self, depth: int) -> None:
        subject = self.graph.subject
        roots = [f"repo:{r}" for r in subject.repo_ids]
        if subject.kind == "ref":
            roots = [f"ref:{subject.refs[0]}"]
            self.graph.nodes[roots[0]] = Node(roots[0], subject.label)
        if subject.fingerprint is not None and not subject.repo_ids:
            roots = [f"file:{subject.text}"]
            self.graph.nodes[roots[0]] = Node(roots[0], subject.label, host="local")
            for e in infer_for_fingerprint(self.conn, subject.fingerprint, roots[0]):
                self._add(e)
                if e.parent.startswith("repo:"):
                    self._load_repos([_id(e.parent)])
                else:
                    label = e.parent_ref
                    if e.parent.startswith("blob:"):
                        label = f"sha256:{e.parent[len('blob:') :][:12]}"
                    self.graph.nodes.setdefault(e.parent, Node(e.parent, label))
        self.graph.roots = self._top_roots(roots)
        self._load_repos(r for r in subject.repo_ids)
        self._walk_up(roots, depth)
        self._walk_down(roots, depth)

    def _top_roots(self, roots: list[str]) -> list[str]:
        """Among several holders of a hash, show those that copy no other holder."""
        if len(roots) < 2:
            return roots
        ids = [int(r.split(":")[1]) for r in roots]
        stmt = select(LINEAGE.c.child_repo_id).where(
            LINEAGE.c.child_repo_id.in_(ids), LINEAGE.c.parent_repo_id.in_(ids)
        )
        copies = {f"repo:{r}" for (r,) in self.conn.execute(stmt)}
        return [r for r in roots if r not in copies] or roots

    def _walk_up(self, start: Sequence[str], depth: int) -> None:
        frontier = [k for k in start if k.startswith("repo:")]
        frontier += [e.parent for e in self.graph.edges if e.parent.startswith("repo:")]
        done: set[str] = set()
        for _ in range(depth):
            todo = sorted(set(frontier) - done)
            if not todo:
                return
            done.update(todo)
            rows = self._rows(LINEAGE.c.child_repo_id.in_([_id(k) for k in todo]))
            frontier = [
                e.parent
                for e in (self._edge(r) for r in rows)
                if e.parent.startswith("repo:")
            ]

    def _walk_down(self, start: Sequence[str], depth: int) -> None:
        frontier, done = list(start), set[str]()
        for _ in range(depth):
            todo = sorted(set(frontier) - done)
            if not todo:
                return
            done.update(todo)
            conds: list[ColumnElement[bool]] = []
            ids = [_id(k) for k in todo if k.startswith("repo:")]
            if ids:
                conds.append(LINEAGE.c.parent_repo_id.in_(ids))
            names = self._ref_forms(todo)
            if names:
                conds.append(
                    LINEAGE.c.parent_repo_id.is_(None) & LINEAGE.c.parent_ref.in_(names)
                )
            if not conds:
                return
            frontier = [self._edge(r).child for r in self._rows(or_(*conds))]

    def _ref_forms(self, keys: Sequence[str]) -> list[str]:
        out = [k[len("ref:") :] for k in keys if k.startswith("ref:")]
        out += list(self.graph.subject.refs)
        ids = [_id(k) for k in keys if k.startswith("repo:")]
        for part in chunks(ids):
            stmt = select(REPOS.c.host, REPOS.c.host_id, REPOS.c.url).where(
                REPOS.c.id.in_(part)
            )
            for r in self.conn.execute(stmt):
                out += refs.repo_ref_forms(r.host, r.host_id, r.url)
        return sorted(set(out))

    def _rows(self, cond: Any) -> list[Any]:
        stmt = select(LINEAGE).where(cond).order_by(LINEAGE.c.id)
        rows = list(self.conn.execute(stmt))
        self._load_repos(
            {r.child_repo_id for r in rows} | {r.parent_repo_id for r in rows}
        )
        return rows

    def _edge(self, r: Any) -> Edge:
        child = f"repo:{r.child_repo_id}"
        if r.parent_repo_id is not None:
            parent = f"repo:{r.parent_repo_id}"
        elif r.parent_sha256 is not None:
            parent = f"blob:{r.parent_sha256}"
            self.graph.nodes.setdefault(
                parent, Node(parent, f"sha256:{r.parent_sha256[:12]}")
            )
        else:
            parent = f"ref:{r.parent_ref}"
            self.graph.nodes.setdefault(parent, Node(parent, r.parent_ref))
        e = Edge(
            child,
            parent,
            r.relation,
            r.source,
            r.confidence,
            r.parent_ref,
            r.child_sha256,
            r.parent_sha256,
            r.evidence,
        )
        self._add(e)
        return e

    def _add(self, e: Edge) -> None:
        key = (e.child, e.parent_ref, e.relation, e.source)
        if key not in self.seen_edges:
            self.seen_edges.add(key)
            self.graph.edges.append(e)

    def _load_repos(self, ids: Iterable[int | None]) -> None:
        want = sorted(
            {i for i in ids if i is not None and f"repo:{i}" not in self.graph.nodes}
        )
        for part in chunks(want):
            for r in self.conn.execute(select(REPOS).where(REPOS.c.id.in_(part))):
                key = f"repo:{r.id}"
                self.graph.nodes[key] = Node(
                    key,
                    refs.repo_label(r.host, r.host_id),
                    r.host,
                    r.host_id,
                    r.owner,
                    r.status,
                    r.url,
                )


def _id(key: str) -> int:
    return int(key.split(":", 1)[1])


# --- a local file, compared on the fly ------------------------------------------------


def infer_for_fingerprint(conn: Connection, fp: Fingerprint, key: str) -> list[Edge]:
    """Edges from a local file not in the index to what the index holds."""
    out: list[Edge] = []
    ids = [
        (BLOBS.c.content_id, fp.content_id, "same-content"),
        (BLOBS.c.weights_id, fp.weights_id, "same-weights"),
    ]
    seen: set[str] = set()
    for col, value, source in ids:
        if not value:
            continue
        for (sha,) in conn.execute(select(BLOBS.c.sha256).where(col == value)):
            origin = refs.load_holdings(conn, [sha]).origin.get(sha)
            if origin is None or sha in seen:
                continue
            seen.add(sha)
            out.append(
                Edge(
                    key,
                    f"repo:{origin.repo_id}",
                    "conversion",
                    source,
                    1.0,
                    f"sha256:{sha}",
                    fp.sha256,
                    sha,
                )
            )
    if not out:
        out += _similar_to_index(conn, fp, key)
    for ref, relation, claim in claimed_parents(_fp_claims(fp)):
        parent_sha, parent_repo = refs.resolve_ref(conn, ref)
        parent = (
            f"repo:{parent_repo}"
            if parent_repo is not None
            else f"blob:{parent_sha}"
            if parent_sha
            else f"ref:{ref}"
        )
        out.append(
            Edge(
                key,
                parent,
                relation,
                "declared-file",
                None,
                ref,
                fp.sha256,
                parent_sha,
                {"claim": claim},
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class _FpClaim:
    key: str
    value: str
    meaning: str
    dtype: str | None
    meta: dict[str, Any]


def _fp_claims(fp: Fingerprint) -> list[_FpClaim]:
    dtype = max(fp.tensors, key=lambda t: t.nbytes).dtype if fp.tensors else None
    return [_FpClaim(c.key, c.value, c.meaning, dtype, fp.metadata) for c in fp.claims]


def _fp_blob(fp: Fingerprint) -> tuple[BlobInfo, list[TensorSketch]]:
    sketches = [TensorSketch(t.name, t.shape, t.sketch) for t in fp.tensors if t.sketch]
    dtype = max(fp.tensors, key=lambda t: t.nbytes).dtype if fp.tensors else None
    info = BlobInfo(
        fp.sha256,
        -1,
        fp.content_id,
        fp.weights_id,
        fp.structure_id,
        dtype,
        fp.parameter_count,
    )
    return info, sketches


def _similar_to_index(conn: Connection, fp: Fingerprint, key: str) -> list[Edge]:
    info, own = _fp_blob(fp)
    if not own:
        return []
    stmt = (
        select(BLOBS.c.sha256)
        .where(BLOBS.c.parameter_count == fp.parameter_count, BLOBS.c.tensor_count > 0)
        .order_by(BLOBS.c.first_seen, BLOBS.c.id)
        .limit(MAX_GROUP)
    )
    candidates = load_blobs(conn, [s for (s,) in conn.execute(stmt)])
    sketches = load_sketches(conn, [b.id for b in candidates.values()])
    sketches[info.id] = own
    want = matrix_signature(t.shape for t in own)
    holdings = refs.load_holdings(conn, candidates)
    olds = [
        b
        for b in candidates.values()
        if sketches.get(b.id)
        and matrix_signature(t.shape for t in sketches[b.id]) == want
    ]
    # earliest upload first: among equally good parents the first one seen wins
    olds.sort(
        key=lambda b: (
            holdings.order(b.sha256, b.id)
            if b.sha256 in holdings.origin
            else (datetime.max.replace(tzinfo=UTC), 0, b.id)
        )
    )
    found = best_parent(info, olds, sketches)
    if found is None:
        return []
    parent, sim, ranked = found
    origin = refs.load_holdings(conn, [parent.sha256]).origin.get(parent.sha256)
    node = f"repo:{origin.repo_id}" if origin else f"blob:{parent.sha256}"
    return [
        Edge(
            key,
            node,
            relation_for(info.dtype, parent.dtype),
            "weight-similarity",
            round(sim.median, 4),
            f"sha256:{parent.sha256}",
            fp.sha256,
            parent.sha256,
            {**sim.evidence(), "candidates": ranked},
        )
    ]
