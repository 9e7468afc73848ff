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
  a copy; ``downloads``: summed over the distinct repos holding one;
- ``first_seen_per_host``, ``added_per_30_days`` (copies by first sighting, in
  30-day windows from the first one);
- ``takedown_cost``: distinct (host, owner) accounts holding a live copy;
- ``survival``: of the copies that went gone, how many had another live copy in
  another repo at the moment they went.

The same measures per weights family are SQL views (``spread_copies``,
``spread_hosts``, ``spread_survival``, ``spread_derivatives``; README).

Example:
    >>> s = store.execute(lambda c: spread(c, resolve_subject(c, "hf:org/m")))
    ... # doctest: +SKIP
    >>> s.to_json()["takedown_cost"]  # doctest: +SKIP
    3
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, or_, select

from modelscan.db import lineage_refs as refs
from modelscan.db.fileops import chunks
from modelscan.db.lineage_graph import Subject, repo_model_blobs
from modelscan.db.tables import BLOBS, FILES, LINEAGE, REPOS
from modelscan.errors import StoreError

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
    "first_seen_per_host",
    "added_per_30_days",
    "takedown_cost",
    "survival",
)


@dataclass(frozen=True, slots=True)
class Copy:
    """One hosted occurrence counted by a spread."""

    kind: str  # exact | content | derivative
    repo_id: int
    host: str
    host_id: str
    owner: str  # the account: the repo's owner, else its host id
    downloads: int | None
    sha256: str | None  # None: a derivative repo without hashed model files
    path: str | None
    first_seen: datetime
    gone_at: datetime | None

    @property
    def account(self) -> tuple[str, str]:
        """The (host, owner) account holding the copy."""
        return (self.host, self.owner)


@dataclass(frozen=True, slots=True)
class Spread:
    """Every copy and derivative of a subject, and the measures over them."""

    subject: Subject
    copies: tuple[Copy, ...]
    derivatives: dict[str, int]
    descendants: bool

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

    def added_per_30_days(self) -> list[dict[str, Any]]:
        """Return copies by first sighting in 30-day windows from the first one."""
        if not self.copies:
            return []
        start = min(c.first_seen for c in self.copies)
        counts = Counter((c.first_seen - start) // WINDOW for c in self.copies)
        return [
            {"start": (start + i * WINDOW).isoformat(), "added": counts.get(i, 0)}
            for i in range(max(counts) + 1)
        ]

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
            steps[c.host].append((c.first_seen, 1))
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

    def to_json(self) -> dict[str, Any]:
        """Return the measures under the names README documents."""
        live_accounts = {c.account for c in self.live}
        repos = {c.repo_id: c.downloads or 0 for c in self.copies}
        return {
            "exact_copies": sum(1 for c in self.copies if c.kind == "exact"),
            "live_copies": len(self.live),
            "content_copies": sum(1 for c in self.copies if c.kind == "content"),
            "derivatives": dict(sorted(self.derivatives.items())),
            "hosts": len({c.host for c in self.copies}),
            "owners": len({c.account for c in self.copies}),
            "downloads": sum(repos.values()),
            "first_seen_per_host": {
                h: t.isoformat() for h, t in self.first_seen_per_host().items()
            },
            "added_per_30_days": self.added_per_30_days(),
            "takedown_cost": len(live_accounts),
            "survival": self.survival(),
        }


def _live_at(other: Copy, gone: Copy) -> bool:
    assert gone.gone_at is not None
    if other.repo_id == gone.repo_id or other.first_seen > gone.gone_at:
        return False
    return other.gone_at is None or other.gone_at > gone.gone_at


# --- computing a spread ---------------------------------------------------------------


def spread(conn: Connection, subject: Subject, *, descendants: bool = False) -> Spread:
    """Collect the copies and derivatives of ``subject``.

    Raises:
        StoreError: the index knows nothing of the subject.
    """
    exact = set(subject.sha256s)
    fp = subject.fingerprint  # a local file: its ids even if the index lacks it
    ids = (fp.content_id, fp.weights_id) if fp else (None, None)
    content = _same_weights(conn, exact, *ids) - exact
    copies = _copies(conn, exact, "exact") + _copies(conn, content, "content")
    holders = {c.repo_id for c in copies} | set(subject.repo_ids)
    found = _derivatives(conn, holders, exact | content, subject.refs, descendants)
    if descendants:
        copies += _derivative_copies(conn, set(found) - holders, exact | content)
    derivatives = Counter(
        rel
        for rid, rel in found.items()
        if rel not in SAME_WEIGHTS and rid not in holders
    )
    if not copies and not derivatives and not subject.repo_ids:
        raise StoreError(
            f"{subject.text}: nothing in the index holds or derives from it"
        )
    return Spread(subject, tuple(copies), dict(derivatives), descendants)


def _same_weights(
    conn: Connection, shas: set[str], cid: str | None = None, wid: str | None = None
) -> set[str]:
    """Return ``shas`` and every blob with one of their content_ids or weights_ids."""
    ids: dict[str, set[str | None]] = {"content_id": {cid}, "weights_id": {wid}}
    for part in chunks(sorted(shas)):
        stmt = select(BLOBS.c.content_id, BLOBS.c.weights_id).where(
            BLOBS.c.sha256.in_(part)
        )
        for row in conn.execute(stmt):
            ids["content_id"].add(row.content_id)
            ids["weights_id"].add(row.weights_id)
    out = set(shas)
    for name, values in ids.items():
        known = sorted(v for v in values if v is not None)
        for id_part in chunks(known):
            members = select(BLOBS.c.sha256).where(BLOBS.c[name].in_(id_part))
            out.update(s for (s,) in conn.execute(members))
    return out


def _copy_query() -> Any:
    return (
        select(
            FILES.c.repo_id,
            REPOS.c.host,
            REPOS.c.host_id,
            func.coalesce(REPOS.c.owner, REPOS.c.host_id).label("owner"),
            REPOS.c.downloads,
            FILES.c.sha256,
            FILES.c.path,
            FILES.c.first_seen,
            FILES.c.gone_at,
        )
        .join(REPOS, REPOS.c.id == FILES.c.repo_id)
        .where(REPOS.c.host != refs.LOCAL_HOST)
        .order_by(FILES.c.first_seen, FILES.c.id)
    )


def _copies(conn: Connection, shas: Iterable[str], kind: str) -> list[Copy]:
    out: list[Copy] = []
    for part in chunks(sorted(set(shas))):
        out += [
            Copy(kind, *r)
            for r in conn.execute(_copy_query().where(FILES.c.sha256.in_(part)))
        ]
    return out


def _derivatives(
    conn: Connection,
    holders: set[int],
    shas: set[str],
    names: Iterable[str],
    deep: bool,
) -> dict[int, str]:
    """Return {descendant repo id: relation of the edge it was reached by}."""
    found: dict[int, str] = {}
    frontier: deque[tuple[set[int], set[str], list[str]]] = deque(
        [(holders, shas, list(names))]
    )
    while frontier:
        ids, blobs, texts = frontier.popleft()
        conds: list[ColumnElement[bool]] = []
        for ids_part in chunks(sorted(ids)):
            conds.append(LINEAGE.c.parent_repo_id.in_(ids_part))
        for sha_part in chunks(sorted(blobs)):
            conds.append(LINEAGE.c.parent_sha256.in_(sha_part))
        for part in chunks(sorted(texts)):
            conds.append(
                LINEAGE.c.parent_repo_id.is_(None) & LINEAGE.c.parent_ref.in_(part)
            )
        if not conds:
            break
        stmt = select(LINEAGE.c.child_repo_id, LINEAGE.c.relation).where(or_(*conds))
        new: dict[int, str] = {}
        for rid, rel in conn.execute(stmt.order_by(LINEAGE.c.id)):
            if rid is not None and rid not in found and rid not in holders:
                new.setdefault(rid, rel)
        found.update(new)
        if deep and new:
            frontier.append((set(new), set(), []))
    return found


def _derivative_copies(
    conn: Connection, repo_ids: set[int], known: set[str]
) -> list[Copy]:
    out: list[Copy] = []
    for rid in sorted(repo_ids):
        shas = set(repo_model_blobs(conn, rid)) - known
        files = [c for c in _copies(conn, shas, "derivative") if c.repo_id == rid]
        if files:
            out += files
            continue
        r = conn.execute(select(REPOS).where(REPOS.c.id == rid)).one()
        if r.host != refs.LOCAL_HOST:
            out.append(
                Copy(
                    "derivative",
                    rid,
                    r.host,
                    r.host_id,
                    r.owner or r.host_id,
                    r.downloads,
                    None,
                    None,
                    r.first_seen,
                    r.gone_at,
                )
            )
    return out


# --- ranking --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopRow:
    """One weights family in ``spread --top``."""

    family: str
    sha256: str
    label: str  # the repo where it was first seen
    copies: int
    live_copies: int
    hosts: int
    owners: int
    takedown_cost: int
    downloads: int
    first_seen: datetime | None

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        out = {k: getattr(self, k) for k in self.__slots__}
        out["first_seen"] = self.first_seen.isoformat() if self.first_seen else None
        return out


def top(conn: Connection, n: int, *, by: str = "live-copies") -> list[TopRow]:
    """Rank weights families by live copies or takedown cost (view ``spread_copies``).

    Raises:
        StoreError: ``by`` is not one of :data:`TOP_ORDER`.
    """
    column = TOP_ORDER.get(by)
    if column is None:
        raise StoreError(f"cannot rank by {by!r}: use {' or '.join(TOP_ORDER)}")
    from sqlalchemy import column as col
    from sqlalchemy import desc, table

    view = table(
        "spread_copies",
        *(
            col(c)
            for c in (
                "family",
                "sha256",
                "copies",
                "live_copies",
                "hosts",
                "owners",
                "takedown_cost",
                "downloads",
                "first_seen",
            )
        ),
    )
    stmt = (
        select(view)
        .order_by(desc(view.c[column]), desc(view.c.copies), view.c.family)
        .limit(n)
    )
    out = []
    for r in conn.execute(stmt):
        sha, label = _first_member(conn, r.family)
        first = refs.as_datetime(r.first_seen)
        out.append(
            TopRow(
                r.family,
                sha or r.sha256,
                label,
                r.copies,
                r.live_copies,
                r.hosts,
                r.owners,
                r.takedown_cost,
                int(r.downloads or 0),
                first,
            )
        )
    return out


def _first_member(conn: Connection, family: str) -> tuple[str | None, str]:
    """Return the family's file first seen on a host, and the repo it was seen in."""
    stmt = select(BLOBS.c.sha256).where(
        or_(BLOBS.c.weights_id == family, BLOBS.c.sha256 == family)
    )
    holdings = refs.load_holdings(conn, [s for (s,) in conn.execute(stmt)])
    if not holdings.origin:
        return None, ""
    sha, origin = min(
        holdings.origin.items(), key=lambda kv: (kv[1].first_seen, kv[1].file_id)
    )
    return sha, _repo_labels(conn, [origin.repo_id]).get(origin.repo_id, "")


def _repo_labels(conn: Connection, ids: Iterable[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for part in chunks(sorted(set(ids))):
        stmt = select(REPOS.c.id, REPOS.c.host, REPOS.c.host_id).where(
            REPOS.c.id.in_(part)
        )
        out.update(
            {r.id: refs.repo_label(r.host, r.host_id) for r in conn.execute(stmt)}
        )
    return out
