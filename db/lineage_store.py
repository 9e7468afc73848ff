"""The Store's typed loads and saves for lineage and spread (one transaction each).

:class:`LineageRows` is mixed into :class:`~modelscan.db.store.Store`; with it
the Store satisfies :class:`modelscan.lineage.rows.LineageIndex`, the protocol
the deciding code in ``modelscan/lineage/`` is written against.

Example:
    >>> store.holdings([sha]).origin[sha].repo_id  # doctest: +SKIP
    12
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, select

from modelscan.db import lineage_rows as rows
from modelscan.db import link_rows, spread_rows
from modelscan.db.tables import HOSTS
from modelscan.lineage.rows import (
    BlobInfo,
    ClaimRow,
    CopyRow,
    EdgeReplacement,
    EdgeRow,
    FamilyRow,
    Holdings,
    LinkWatermark,
    RepoRow,
    Resolved,
    SketchPage,
    TensorSketch,
)

T = TypeVar("T")


class LineageRows:
    """Loads and saves of lineage rows, each in one transaction."""

    def _read(self, fn: Callable[[Connection], T]) -> T:
        raise NotImplementedError  # pragma: no cover (the Store's)

    def _write(self, fn: Callable[[Connection], T]) -> T:
        raise NotImplementedError  # pragma: no cover (the Store's)

    # --- blobs and where they live ----------------------------------------------------

    def holdings(self, shas: Iterable[str]) -> Holdings:
        """Return the hosted occurrences of the blobs ``shas``."""
        wanted = list(shas)
        return self._read(lambda c: rows.load_holdings(c, wanted))

    def blobs(self, shas: Iterable[str]) -> dict[str, BlobInfo]:
        """Return the identity columns of the blobs ``shas``."""
        wanted = list(shas)
        return self._read(lambda c: rows.load_blobs(c, wanted))

    def blob_families(
        self, content_ids: Iterable[str], weights_ids: Iterable[str]
    ) -> dict[str, BlobInfo]:
        """Return every blob with one of these content or weights ids."""
        cids, wids = list(content_ids), list(weights_ids)
        return self._read(lambda c: rows.load_blob_families(c, cids, wids))

    def shape_groups(self, counts: Iterable[int], per_count: int) -> list[BlobInfo]:
        """Return the first ``per_count`` fingerprinted blobs of each param count."""
        wanted = list(counts)
        return self._read(lambda c: rows.load_shape_groups(c, wanted, per_count))

    def matrix_shapes(
        self, blob_ids: Iterable[int]
    ) -> dict[int, list[tuple[int, ...]]]:
        """Return every tensor shape of each blob."""
        wanted = list(blob_ids)
        return self._read(lambda c: rows.load_tensor_shapes(c, wanted))

    def sketches(self, blob_ids: Iterable[int]) -> dict[int, list[TensorSketch]]:
        """Return the sketched tensors of each blob, in file order."""
        wanted = list(blob_ids)
        return self._read(lambda c: rows.load_sketches(c, wanted))

    def sketch_page(
        self, shapes: Iterable[tuple[int, ...]], after_id: int, limit: int
    ) -> SketchPage:
        """Return the next page of blobs by id with their matrices of ``shapes``."""
        wanted = list(shapes)
        return self._read(lambda c: rows.load_sketch_page(c, wanted, after_id, limit))

    def claims(self, shas: Iterable[str]) -> list[ClaimRow]:
        """Return the claims the blobs ``shas`` make."""
        wanted = list(shas)
        return self._read(lambda c: rows.load_claims(c, wanted))

    def known_blob(self, sha: str) -> bool:
        """Tell whether the index has the blob ``sha``."""
        return self._read(lambda c: rows.known_blob(c, sha))

    def match_hash(self, text: str) -> tuple[str, ...]:
        """Return the blobs a hash in any spelling names (see ``db/lookup.py``)."""
        return self._read(lambda c: rows.match_hash(c, text))

    # --- repos and references ---------------------------------------------------------

    def resolve_refs(self, refs: Iterable[str]) -> dict[str, Resolved]:
        """Return the parent blob and repo each reference names."""
        wanted = list(refs)
        return self._read(lambda c: rows.resolve_refs(c, wanted))

    def find_repo(self, host: str, host_id: str) -> int | None:
        """Return the id of the repo ``(host, host_id)``, or None."""
        return self._read(lambda c: rows.find_repo(c, host, host_id))

    def repos(self, ids: Iterable[int]) -> dict[int, RepoRow]:
        """Return the repos ``ids`` by id."""
        wanted = list(ids)
        return self._read(lambda c: rows.load_repos(c, wanted))

    def repo_model_blobs(
        self, repo_id: int, suffixes: Sequence[str]
    ) -> tuple[str, ...]:
        """Return the blobs a repo held with tensors or a path in ``suffixes``."""
        return self._read(lambda c: rows.repo_model_blobs(c, repo_id, suffixes))

    def host_names(self) -> list[str]:
        """Return the name of every host the index has rows of, sorted."""
        return self._read(
            lambda c: [
                h for (h,) in c.execute(select(HOSTS.c.name).order_by(HOSTS.c.name))
            ]
        )

    # --- edges ------------------------------------------------------------------------

    def edges_from(
        self, child_repo_ids: Iterable[int], *, sources: Sequence[str] = ()
    ) -> list[EdgeRow]:
        """Return the parent edges of these repos (of ``sources`` only, if given)."""
        ids = list(child_repo_ids)
        return self._read(lambda c: rows.edges_from(c, ids, sources))

    def edges_to(
        self,
        parent_repo_ids: Iterable[int] = (),
        *,
        parent_shas: Iterable[str] = (),
        parent_refs: Iterable[str] = (),
    ) -> list[EdgeRow]:
        """Return the edges pointing at these repos, blobs or unresolved references."""
        ids, shas, refs = list(parent_repo_ids), list(parent_shas), list(parent_refs)
        return self._read(lambda c: rows.edges_to(c, ids, shas, refs))

    # --- link -------------------------------------------------------------------------

    def touched_blobs(self, since: datetime | None) -> set[str]:
        """Return the blobs seen or fingerprinted since ``since`` (all: None)."""
        return self._read(lambda c: link_rows.touched_blobs(c, since))

    def newest_sighting(self) -> datetime | None:
        """Return the newest sighting in the index."""
        return self._read(link_rows.newest_sighting)

    def link_state(self) -> LinkWatermark | None:
        """Return what the last ``link`` run saved, or None."""
        return self._read(link_rows.load_link_state)

    def save_link_state(self, state: dict[str, Any], at: datetime) -> None:
        """Save a ``link`` run's counts and watermark."""
        self._write(lambda c: link_rows.save_link_state(c, state, at))

    def replace_edges(self, batch: Sequence[EdgeReplacement], at: datetime) -> int:
        """Rewrite a batch of inferred edges in one transaction; return deletions."""

        def write(conn: Connection) -> int:
            return sum(
                link_rows.replace_edges(conn, r.sources, r.child_shas, r.rows, at)
                for r in batch
            )

        return self._write(write)

    def unresolved_edges(self, since: datetime | None) -> list[EdgeRow]:
        """Return edges without a parent repo that may resolve now."""
        return self._read(lambda c: link_rows.unresolved_edges(c, since))

    def set_edge_parents(self, parents: dict[int, Resolved]) -> None:
        """Point edges (by id) at the parents found for them."""
        self._write(lambda c: link_rows.set_edge_parents(c, parents))

    # --- spread -----------------------------------------------------------------------

    def same_weights_blobs(
        self, shas: Iterable[str], content_id: str | None, weights_id: str | None
    ) -> set[str]:
        """Return ``shas`` and the blobs sharing their content or weights ids."""
        wanted = list(shas)
        return self._read(
            lambda c: spread_rows.same_weights_blobs(c, wanted, content_id, weights_id)
        )

    def spread_copies(self, shas: Iterable[str]) -> list[CopyRow]:
        """Return the hosted occurrences of the blobs ``shas``."""
        wanted = list(shas)
        return self._read(lambda c: spread_rows.load_copies(c, wanted))

    def top_families(self, n: int, *, order: str) -> list[FamilyRow]:
        """Return the ``n`` families highest in the view column ``order``."""
        return self._read(lambda c: spread_rows.load_top_families(c, n, order))

    def family_blobs(self, family: str) -> list[str]:
        """Return the blobs of a weights family."""
        return self._read(lambda c: spread_rows.family_blobs(c, family))
