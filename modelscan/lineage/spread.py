"""``modelscan spread``: how far a file, a repo or a family of weights has spread.

The measures of DESIGN.md section 6, over the hosted occurrences (``files``
rows, live or gone; host ``local`` excluded) of the subject's bytes and of
other files with the same ``content_id`` or ``weights_id``:

- ``exact_copies``: occurrences of the subject's own bytes;
- ``content_copies``: occurrences of the same weights in other bytes;
- ``live_copies``: of those (and, with ``descendants``, of every descendant's
  model files), the ones not gone;
- ``derivatives``: child repos by relation (copies and conversions excluded:
  they are counted above); all descendants with ``descendants``;
- ``hosts``, ``owners``: distinct hosts and (host, owner) accounts that ever held
  a copy; ``downloads``: summed over the distinct repos holding one, as each host
  counts them; ``downloads_last_30_days`` (hosts that count 30 days: Hugging
  Face) and ``downloads_all_time`` (HF ``downloadsAllTime``, Civitai);
- ``first_published_per_host`` (the hosts' own dates), ``first_seen_per_host``
  (ours), ``added_per_30_days`` (copies by the host's date, else by our first
  sighting, in 30-day windows from the first one; ``growth_dated_by`` and each
  window's ``dated_by`` say how many rest on which);
- ``takedown_cost``: distinct (host, owner) accounts holding a live copy
  (:meth:`Spread.takedown_cost`), beside ``jurisdictions`` and ``operators``:
  live copies per host country and per host operator (modelscan/hostinfo.py);
- ``survival``: of the copies that went gone, how many had another live copy in
  another repo at the moment they went.

The same measures per weights family are SQL views (``spread_copies``,
``spread_hosts``, ``spread_survival``, ``spread_derivatives``; README).

Example:
    >>> s = spread(store, resolve_subject(store, "hf:org/m"))  # doctest: +SKIP
    >>> s.to_json()["takedown_cost"]  # doctest: +SKIP
    3
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from modelscan.errors import StoreError
from modelscan.hostinfo import BUILT_IN, UNKNOWN, HostInfo
from modelscan.lineage.rows import CopyRow, FamilyRow, LineageIndex
from modelscan.lineage.subjects import Subject, model_blobs
from modelscan.refs import LOCAL_HOST, ref_for

WINDOW = timedelta(days=30)
SAME_WEIGHTS = frozenset({"copy", "conversion"})
TOP_ORDER = {"live-copies": "live_copies", "takedown-cost": "takedown_cost"}
JSON_KEYS = (
    "exact_copies",
    "live_copies",
    "content_copies",
    "derivatives",
    "hosts",
    "owners",
    "downloads",
    "downloads_last_30_days",
    "downloads_all_time",
    "first_published_per_host",
    "first_seen_per_host",
    "added_per_30_days",
    "growth_dated_by",
    "takedown_cost",
    "jurisdictions",
    "operators",
    "survival",
)


Copy = CopyRow  # one hosted occurrence counted by a spread, with its kind


@dataclass(frozen=True, slots=True)
class Spread:
    """Every copy and derivative of a subject, and the measures over them."""

    subject: Subject
    copies: tuple[Copy, ...]
    derivatives: dict[str, int]
    descendants: bool
    hosts: Mapping[str, HostInfo] = field(default_factory=lambda: dict(BUILT_IN))

    @property
    def live(self) -> list[Copy]:
        """Copies not gone."""
        return [c for c in self.copies if c.gone_at is None]

    def first_seen_per_host(self) -> dict[str, datetime]:
        """Return the first sighting of a copy on each host."""
        out: dict[str, datetime] = {}
        for c in self.copies:
            if c.host not in out or c.first_seen < out[c.host]:
                out[c.host] = c.first_seen
        return dict(sorted(out.items(), key=lambda kv: (kv[1], kv[0])))

    def first_published_per_host(self) -> dict[str, datetime]:
        """Return the host's own earliest date of a copy, per host that dates them."""
        out: dict[str, datetime] = {}
        for c in self.copies:
            at = c.published_at
            if at is not None and (c.host not in out or at < out[c.host]):
                out[c.host] = at
        return dict(sorted(out.items(), key=lambda kv: (kv[1], kv[0])))

    def added_per_30_days(self) -> list[dict[str, Any]]:
        """Return copies by the host's date (else first sighting) in 30-day windows.

        Each window says how many of its copies are dated by the host
        (``published_at``) and how many by our first sighting (``first_seen``).
        """
        if not self.copies:
            return []
        start = min(c.dated for c in self.copies)
        windows: dict[int, Counter[str]] = defaultdict(Counter)
        for c in self.copies:
            windows[(c.dated - start) // WINDOW][_basis(c)] += 1
        return [
            {
                "start": (start + i * WINDOW).isoformat(),
                "added": sum(windows[i].values()) if i in windows else 0,
                "dated_by": dict(sorted(windows[i].items())) if i in windows else {},
            }
            for i in range(max(windows) + 1)
        ]

    def growth_dated_by(self) -> dict[str, int]:
        """How many copies the growth figures date by the host, and by our sighting."""
        counts = Counter(_basis(c) for c in self.copies)
        return {k: counts[k] for k in ("published_at", "first_seen")}

    def jurisdictions(self) -> dict[str, int]:
        """Live copies per country of the host holding them ("unknown" if none)."""
        counts = Counter(self._info(c).country or "unknown" for c in self.live)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def operators(self) -> dict[str, int]:
        """Live copies per operator of the host holding them ("unknown" if none)."""
        counts = Counter(self._info(c).operator or "unknown" for c in self.live)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def _info(self, c: Copy) -> HostInfo:
        return self.hosts.get(c.host, UNKNOWN)

    def survival(self) -> dict[str, Any]:
        """Of the copies that went gone, how many had a live copy elsewhere then."""
        gone = [c for c in self.copies if c.gone_at is not None]
        survived = sum(1 for g in gone if any(_live_at(o, g) for o in self.copies))
        rate = round(survived / len(gone), 4) if gone else None
        return {"gone": len(gone), "survived": survived, "rate": rate}

    def timeline(self) -> dict[str, list[tuple[datetime, int]]]:
        """Return live copies over time per host: (time, count) at each change."""
        steps: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        for c in self.copies:
            steps[c.host].append((c.dated, 1))
            if c.gone_at is not None:
                steps[c.host].append((c.gone_at, -1))
        out: dict[str, list[tuple[datetime, int]]] = {}
        for host, changes in sorted(steps.items()):
            total, points = 0, list[tuple[datetime, int]]()
            for at, delta in sorted(changes):
                total += delta
                if points and points[-1][0] == at:
                    points[-1] = (at, total)
                else:
                    points.append((at, total))
            out[host] = points
        return out

    def takedown_cost(self) -> int:
        """Distinct (host, owner) accounts holding a live copy: who must act."""
        return len({c.account for c in self.live})

    def downloads(self) -> dict[str, int]:
        """Downloads summed over the distinct repos holding a copy, three ways.

        ``downloads``: each host's own headline count; ``downloads_last_30_days``:
        of hosts counting 30 days; ``downloads_all_time``: where the host says.
        """
        repos = {c.repo_id: c for c in self.copies}.values()
        recent = [c for c in repos if self._info(c).downloads == "last-30-days"]
        return {
            "downloads": sum(c.downloads or 0 for c in repos),
            "downloads_last_30_days": sum(c.downloads or 0 for c in recent),
            "downloads_all_time": sum(c.downloads_all_time or 0 for c in repos),
        }

    def to_json(self) -> dict[str, Any]:
        """Return the measures under the names README documents."""
        return {
            "exact_copies": sum(1 for c in self.copies if c.kind == "exact"),
            "live_copies": len(self.live),
            "content_copies": sum(1 for c in self.copies if c.kind == "content"),
            "derivatives": dict(sorted(self.derivatives.items())),
            "hosts": len({c.host for c in self.copies}),
            "owners": len({c.account for c in self.copies}),
            **self.downloads(),
            "first_published_per_host": {
                h: t.isoformat() for h, t in self.first_published_per_host().items()
            },
            "first_seen_per_host": {
                h: t.isoformat() for h, t in self.first_seen_per_host().items()
            },
            "added_per_30_days": self.added_per_30_days(),
            "growth_dated_by": self.growth_dated_by(),
            "takedown_cost": self.takedown_cost(),
            "jurisdictions": self.jurisdictions(),
            "operators": self.operators(),
            "survival": self.survival(),
        }

    def copies_json(self) -> list[dict[str, Any]]:
        """Return every copy: where it is, whose, its status and its dates."""
        return [
            {
                "kind": c.kind,
                "host": c.host,
                "owner": c.owner,
                "host_id": c.host_id,
                "repo": ref_for(c.host, c.host_id),
                "path": c.path,
                "sha256": c.sha256,
                "status": "live" if c.gone_at is None else "gone",
                "first_seen": c.first_seen.isoformat(),
                "published_at": c.published_at.isoformat() if c.published_at else None,
                "gone_at": c.gone_at.isoformat() if c.gone_at else None,
                "url": c.url,
            }
            for c in sorted(self.copies, key=lambda c: (c.dated, c.host, c.host_id))
        ]


def _basis(c: Copy) -> str:
    return "published_at" if c.published_at is not None else "first_seen"


def _live_at(other: Copy, gone: Copy) -> bool:
    assert gone.gone_at is not None
    if other.repo_id == gone.repo_id or other.first_seen > gone.gone_at:
        return False
    return other.gone_at is None or other.gone_at > gone.gone_at


# --- computing a spread ---------------------------------------------------------------


def spread(
    index: LineageIndex,
    subject: Subject,
    *,
    descendants: bool = False,
    hosts: Mapping[str, HostInfo] | None = None,
) -> Spread:
    """Collect the copies and derivatives of ``subject``.

    ``hosts`` gives each host's operator and country (default: the built-in
    table of modelscan/hostinfo.py; the CLI passes the user's overrides).

    Raises:
        StoreError: the index knows nothing of the subject.
    """
    exact = set(subject.sha256s)
    fp = subject.fingerprint  # a local file: its ids even if the index lacks it
    ids = (fp.content_id, fp.weights_id) if fp else (None, None)
    content = index.same_weights_blobs(exact, *ids) - exact
    copies = _copies(index, exact, "exact") + _copies(index, content, "content")
    holders = {c.repo_id for c in copies} | set(subject.repo_ids)
    found = _derivatives(index, holders, exact | content, subject.refs, descendants)
    if descendants:
        copies += _derivative_copies(index, set(found) - holders, exact | content)
    derivatives = Counter(
        rel
        for rid, rel in found.items()
        if rel not in SAME_WEIGHTS and rid not in holders
    )
    if not copies and not derivatives and not subject.repo_ids:
        raise StoreError(
            f"{subject.text}: nothing in the index holds or derives from it"
        )
    return Spread(
        subject,
        tuple(copies),
        dict(derivatives),
        descendants,
        dict(BUILT_IN if hosts is None else hosts),
    )


def _copies(index: LineageIndex, shas: Iterable[str], kind: str) -> list[Copy]:
    return [replace(c, kind=kind) for c in index.spread_copies(shas)]


def _derivatives(
    index: LineageIndex,
    holders: set[int],
    shas: set[str],
    names: Iterable[str],
    deep: bool,
) -> dict[int, str]:
    """Return {descendant repo id: relation of the edge it was reached by}."""
    found: dict[int, str] = {}
    frontier: tuple[set[int], set[str], list[str]] | None = (holders, shas, list(names))
    while frontier is not None:
        ids, blobs, texts = frontier
        frontier = None
        if not ids and not blobs and not texts:
            break
        new: dict[int, str] = {}
        for e in index.edges_to(ids, parent_shas=blobs, parent_refs=texts):
            if e.child_repo_id not in found and e.child_repo_id not in holders:
                new.setdefault(e.child_repo_id, e.relation)
        found.update(new)
        if deep and new:
            frontier = (set(new), set(), [])
    return found


def _derivative_copies(
    index: LineageIndex, repo_ids: set[int], known: set[str]
) -> list[Copy]:
    out: list[Copy] = []
    repos = index.repos(repo_ids)
    for rid in sorted(repo_ids):
        shas = set(model_blobs(index, rid)) - known
        files = [c for c in _copies(index, shas, "derivative") if c.repo_id == rid]
        if files:
            out += files
            continue
        r = repos[rid]
        if r.host != LOCAL_HOST and r.first_seen is not None:
            out.append(
                Copy(
                    kind="derivative",
                    repo_id=rid,
                    host=r.host,
                    host_id=r.host_id,
                    owner=r.owner or r.host_id,
                    downloads=r.downloads,
                    sha256=None,
                    path=None,
                    first_seen=r.first_seen,
                    gone_at=r.gone_at,
                    published_at=r.published_at,
                    downloads_all_time=r.downloads_all_time,
                    url=r.url,
                )
            )
    return out


# --- ranking --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TopRow:
    """One family in ``spread --top``: the view's measures and where it began."""

    family: FamilyRow
    sha256: str  # the family's file first seen on a host
    label: str  # the repo where it was first seen

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        f = self.family
        return {
            "family": f.family,
            "sha256": self.sha256,
            "label": self.label,
            "copies": f.copies,
            "live_copies": f.live_copies,
            "hosts": f.hosts,
            "owners": f.owners,
            "takedown_cost": f.takedown_cost,
            "downloads": f.downloads,
            "first_seen": f.first_seen.isoformat() if f.first_seen else None,
        }


def top(index: LineageIndex, n: int, *, by: str = "live-copies") -> list[TopRow]:
    """Rank weights families by live copies or takedown cost (view ``spread_copies``).

    Raises:
        StoreError: ``by`` is not one of :data:`TOP_ORDER`.
    """
    column = TOP_ORDER.get(by)
    if column is None:
        raise StoreError(f"cannot rank by {by!r}: use {' or '.join(TOP_ORDER)}")
    out = []
    for f in index.top_families(n, order=column):
        holdings = index.holdings(index.family_blobs(f.family))
        if not holdings.origin:
            out.append(TopRow(family=f, sha256=f.sha256, label=""))
            continue
        sha, origin = min(holdings.origin.items(), key=lambda kv: kv[1].key())
        repo = index.repos([origin.repo_id]).get(origin.repo_id)
        label = ref_for(repo.host, repo.host_id) if repo else ""
        out.append(TopRow(family=f, sha256=sha, label=label))
    return out
