"""The index schema: SQLAlchemy 2.0 typed tables (DESIGN.md section 5).

Alembic migrations in ``db/migrations`` create these tables; a test checks that
autogenerate finds no drift between the two. Timestamps are UTC: PostgreSQL
stores ``timestamptz``, SQLite stores ``YYYY-MM-DD HH:MM:SS.ffffff`` text in
UTC, readable by ``sqlite3``, Datasette and DuckDB without custom functions.
JSON columns are plain JSON text on SQLite.

Nothing here is deleted by a later crawl: an occurrence that disappears keeps
its ``first_seen``/``last_seen`` and gets ``gone_at``; ``events`` says when.

Example:
    >>> FileRow.__table__.name
    'files'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names: alembic needs them to alter SQLite tables in batch mode.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# SQL NULL for None (SQLAlchemy's JSON would store the text 'null').
Json = JSON(none_as_null=True)
HASH = String(64)


def sparse_index(table: str, column: str) -> Index:
    """An index over the non-NULL values of a mostly-NULL column.

    Hashes a host did not publish are NULL; a full index would tell the planner
    (after ANALYZE) that ``col = ?`` matches every NULL row, and SQLite would scan.
    """
    where = text(f"{column} IS NOT NULL")
    return Index(
        f"ix_{table}_{column}", column, sqlite_where=where, postgresql_where=where
    )


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Convert to UTC; SQLite keeps no offset, so store the naive UTC time."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"naive datetime {value!r}: pass a timezone-aware UTC time"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, format in one step (bulk inserts spend their time here)."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r}: pass an aware UTC time")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            # SQLAlchemy's SQLite DATETIME text format, read back by its parser
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class HostRow(Base):
    """A model host ("huggingface", "civitai", "replicate", "local")."""

    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    # who runs the host and under which country's law (modelscan/hostinfo.py)
    operator: Mapped[str | None] = mapped_column(String(256))
    country: Mapped[str | None] = mapped_column(String(64))


class RepoRow(Base):
    """A repository (HF repo, Civitai model, Replicate model, local directory)."""

    __tablename__ = "repos"
    __table_args__ = (
        UniqueConstraint("host", "host_id"),
        Index("ix_repos_host_owner", "host", "owner"),
        Index("ix_repos_host_last_seen", "host", "last_seen"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(ForeignKey("hosts.name"))
    host_id: Mapped[str] = mapped_column(String(512))  # the host's own id
    name: Mapped[str | None] = mapped_column(String(512))
    owner: Mapped[str | None] = mapped_column(String(256))
    url: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(128))
    license: Mapped[str | None] = mapped_column(String(128))
    downloads: Mapped[int | None] = mapped_column(BigInteger)  # as the host counts
    downloads_all_time: Mapped[int | None] = mapped_column(BigInteger)
    likes: Mapped[int | None] = mapped_column(BigInteger)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # createdAt
    revision: Mapped[str | None] = mapped_column(String(128))  # the head seen last
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # host's word
    status: Mapped[str] = mapped_column(String(32))  # live|gated|gone|taken_down|...
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    gone_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    extra: Mapped[dict[str, Any] | None] = mapped_column(Json)


class VersionRow(Base):
    """A revision of a repo: HF commit, Civitai version id, Replicate version id."""

    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("repo_id", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id"))
    revision: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())


class BlobRow(Base):
    """One file content, by sha256: fingerprinted here, or hashes a host published."""

    __tablename__ = "blobs"
    __table_args__ = tuple(
        sparse_index("blobs", c)
        for c in (
            "autov1",
            "autov3",
            "blake3",
            "crc32",
            "content_id",
            "weights_id",
            "structure_id",
        )
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(HASH, unique=True)
    size: Mapped[int | None] = mapped_column(BigInteger)
    format: Mapped[str | None] = mapped_column(String(32))
    autov1: Mapped[str | None] = mapped_column(String(8))
    autov2: Mapped[str | None] = mapped_column(String(10))  # = sha256[:10]
    autov3: Mapped[str | None] = mapped_column(HASH)  # 64 hex, or 12
    blake3: Mapped[str | None] = mapped_column(HASH)
    crc32: Mapped[str | None] = mapped_column(String(8))  # zlib, 8 hex
    content_id: Mapped[str | None] = mapped_column(HASH)
    weights_id: Mapped[str | None] = mapped_column(HASH)
    structure_id: Mapped[str | None] = mapped_column(HASH)
    tensor_count: Mapped[int | None] = mapped_column(Integer)
    parameter_count: Mapped[int | None] = mapped_column(BigInteger)
    dtype: Mapped[str | None] = mapped_column(String(16))  # holds most elements
    dtype_summary: Mapped[dict[str, int] | None] = mapped_column(Json)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", Json)
    safety_verdict: Mapped[str | None] = mapped_column(String(16))  # safe|unsafe
    pickle_safety: Mapped[dict[str, Any] | None] = mapped_column(Json)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    fingerprinted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # read through HTTP Range requests: {"url", "requests", "bytes", "whole"}
    remote: Mapped[dict[str, Any] | None] = mapped_column(Json)


class TensorRow(Base):
    """One tensor of a fingerprinted blob, in file order."""

    __tablename__ = "tensors"

    blob_id: Mapped[int] = mapped_column(ForeignKey("blobs.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    dtype: Mapped[str] = mapped_column(String(16))
    shape: Mapped[list[int]] = mapped_column(Json)
    nbytes: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str | None] = mapped_column(HASH, index=True)  # None: remote
    sketch: Mapped[bytes | None] = mapped_column(LargeBinary)  # 256 float16 LE


class ClaimRow(Base):
    """A hash or identity a file states about itself or its parent."""

    __tablename__ = "claims"
    __table_args__ = (UniqueConstraint("blob_id", "key", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    blob_id: Mapped[int] = mapped_column(ForeignKey("blobs.id"))
    key: Mapped[str] = mapped_column(String(256))
    value: Mapped[str] = mapped_column(Text)
    meaning: Mapped[str] = mapped_column(String(64))
    verified: Mapped[bool | None] = mapped_column(Boolean)


class FileRow(Base):
    """An occurrence: a path in a repo (at a version) holding a blob."""

    __tablename__ = "files"
    __table_args__ = (
        # One live occurrence per path; closed rows (gone_at set) keep the history.
        Index(
            "uq_files_live_path",
            "repo_id",
            "path",
            unique=True,
            sqlite_where=text("gone_at IS NULL"),
            postgresql_where=text("gone_at IS NULL"),
        ),
        sparse_index("files", "sha256"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))  # live | gone | taken_down
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    gone_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    extra: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # the host's date for this content at this path (DESIGN.md section 5)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LineageRow(Base):
    """A parent edge: declared by a host or file, or found from hashes/weights."""

    __tablename__ = "lineage"
    __table_args__ = (
        UniqueConstraint("child_repo_id", "parent_ref", "relation", "source"),
        sparse_index("lineage", "child_sha256"),
        sparse_index("lineage", "parent_repo_id"),
        sparse_index("lineage", "parent_sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_repo_id: Mapped[int | None] = mapped_column(ForeignKey("repos.id"))
    child_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    parent_repo_id: Mapped[int | None] = mapped_column(ForeignKey("repos.id"))
    parent_sha256: Mapped[str | None] = mapped_column(HASH)
    parent_ref: Mapped[str] = mapped_column(String(512), index=True)  # as declared
    relation: Mapped[str] = mapped_column(String(32))  # finetune|adapter|quantized|...
    source: Mapped[str] = mapped_column(String(32))  # declared-card|identical-hash|...
    confidence: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(Json)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())


class CrawlRunRow(Base):
    """One crawl of one host."""

    __tablename__ = "crawl_runs"
    __table_args__ = (Index("ix_crawl_runs_host_started_at", "host", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host: Mapped[str] = mapped_column(ForeignKey("hosts.name"))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(32))  # running | ok | failed | ...
    params: Mapped[dict[str, Any] | None] = mapped_column(Json)
    stats: Mapped[dict[str, Any] | None] = mapped_column(Json)
    pid: Mapped[int | None] = mapped_column(Integer)
    machine: Mapped[str | None] = mapped_column(String(256))


class CrawlLockRow(Base):
    """The per-host lock: one row while a crawl of that host runs."""

    __tablename__ = "crawl_locks"

    host: Mapped[str] = mapped_column(ForeignKey("hosts.name"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("crawl_runs.id"))
    pid: Mapped[int] = mapped_column(Integer)
    machine: Mapped[str] = mapped_column(String(256))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CrawlStateRow(Base):
    """Where a host's listing stopped: the cursor saved with its page."""

    __tablename__ = "crawl_state"

    host: Mapped[str] = mapped_column(ForeignKey("hosts.name"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CrawlErrorRow(Base):
    """One item a crawl could not process; the crawl went on."""

    __tablename__ = "crawl_errors"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("crawl_runs.id"), index=True)
    host: Mapped[str] = mapped_column(String(64))
    item: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class EventRow(Base):
    """A change seen by a crawl: appeared, changed, gone, taken_down."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_at", "at"), sparse_index("events", "sha256"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    host: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    repo_id: Mapped[int | None] = mapped_column(ForeignKey("repos.id"), index=True)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id"))
    sha256: Mapped[str | None] = mapped_column(HASH)
    detail: Mapped[dict[str, Any] | None] = mapped_column(Json)


class HashLookupRow(Base):
    """A sha256 asked of a host by hash (``crawl --by-hash``), and when."""

    __tablename__ = "hash_lookups"

    host: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(HASH, primary_key=True)
    asked_at: Mapped[datetime] = mapped_column(UtcDateTime())


def _count() -> Mapped[int]:
    return mapped_column(Integer, server_default=text("0"))


def _total() -> Mapped[int]:
    return mapped_column(BigInteger, server_default=text("0"))


class BlobCountRow(Base):
    """Counters of one blob's occurrences (db/counters.py keeps them, blob_copies)."""

    __tablename__ = "blob_counts"
    __table_args__ = (Index("ix_blob_counts_live_copies", "live_copies"),)

    sha256: Mapped[str] = mapped_column(HASH, primary_key=True)
    family: Mapped[str] = mapped_column(HASH)  # the family its copies count in
    live_copies: Mapped[int] = _count()
    total_copies: Mapped[int] = _count()
    hosts: Mapped[int] = _count()
    owners: Mapped[int] = _count()
    # over every occurrence, live or not: the hosts' dates and ours
    first_published: Mapped[datetime | None] = mapped_column(UtcDateTime())
    first_seen: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime())


class BlobHostRow(Base):
    """Live copies of one blob on one host."""

    __tablename__ = "blob_hosts"

    sha256: Mapped[str] = mapped_column(HASH, primary_key=True)
    host: Mapped[str] = mapped_column(String(64), primary_key=True)
    live_copies: Mapped[int] = _count()


class BlobAccountRow(Base):
    """Copies of one blob held by one account (host, repo owner else host id)."""

    __tablename__ = "blob_accounts"

    sha256: Mapped[str] = mapped_column(HASH, primary_key=True)
    host: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(512), primary_key=True)
    live_copies: Mapped[int] = _count()
    copies: Mapped[int] = _count()


class FamilyCountRow(Base):
    """Counters of one weights family's hosted copies (spread_copies)."""

    __tablename__ = "family_counts"
    __table_args__ = (
        Index("ix_family_counts_live_copies", "live_copies", "copies", "family"),
        Index("ix_family_counts_takedown_cost", "takedown_cost", "copies", "family"),
    )

    family: Mapped[str] = mapped_column(HASH, primary_key=True)
    blobs: Mapped[int] = _count()
    copies: Mapped[int] = _count()
    live_copies: Mapped[int] = _count()
    hosts: Mapped[int] = _count()
    owners: Mapped[int] = _count()
    takedown_cost: Mapped[int] = _count()
    # over the distinct repos holding a copy (family_repos), as each host counts
    downloads: Mapped[int] = _total()
    downloads_all_time: Mapped[int] = _total()
    # over every hosted copy, live or not: the hosts' dates and ours
    first_published: Mapped[datetime | None] = mapped_column(UtcDateTime())
    first_seen: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime())


class FamilyRepoRow(Base):
    """A repo holding a copy of a family, with the downloads counted for it."""

    __tablename__ = "family_repos"
    __table_args__ = (Index("ix_family_repos_repo_id", "repo_id"),)

    family: Mapped[str] = mapped_column(HASH, primary_key=True)
    repo_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    downloads: Mapped[int] = _total()
    downloads_all_time: Mapped[int] = _total()


class FamilyBlobRow(Base):
    """Hosted copies of one blob counted in a family."""

    __tablename__ = "family_blobs"

    family: Mapped[str] = mapped_column(HASH, primary_key=True)
    sha256: Mapped[str] = mapped_column(HASH, primary_key=True)
    copies: Mapped[int] = _count()


class FamilyHostRow(Base):
    """Copies of one family on one host, and the accounts holding them."""

    __tablename__ = "family_hosts"

    family: Mapped[str] = mapped_column(HASH, primary_key=True)
    host: Mapped[str] = mapped_column(String(64), primary_key=True)
    copies: Mapped[int] = _count()
    live_copies: Mapped[int] = _count()
    owners: Mapped[int] = _count()
    takedown_cost: Mapped[int] = _count()


class FamilyAccountRow(Base):
    """Copies of one family held by one account."""

    __tablename__ = "family_accounts"

    family: Mapped[str] = mapped_column(HASH, primary_key=True)
    host: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(512), primary_key=True)
    copies: Mapped[int] = _count()
    live_copies: Mapped[int] = _count()


def _table(row: type[Base]) -> Table:
    return cast(Table, row.__table__)


# Core handles on the tables, for the executemany statements the store runs.
HOSTS = _table(HostRow)
REPOS = _table(RepoRow)
VERSIONS = _table(VersionRow)
BLOBS = _table(BlobRow)
TENSORS = _table(TensorRow)
CLAIMS = _table(ClaimRow)
FILES = _table(FileRow)
LINEAGE = _table(LineageRow)
RUNS = _table(CrawlRunRow)
LOCKS = _table(CrawlLockRow)
STATE = _table(CrawlStateRow)
ERRORS = _table(CrawlErrorRow)
EVENTS = _table(EventRow)
HASH_LOOKUPS = _table(HashLookupRow)
BLOB_COUNTS = _table(BlobCountRow)
BLOB_HOSTS = _table(BlobHostRow)
BLOB_ACCOUNTS = _table(BlobAccountRow)
FAMILY_COUNTS = _table(FamilyCountRow)
FAMILY_BLOBS = _table(FamilyBlobRow)
FAMILY_HOSTS = _table(FamilyHostRow)
FAMILY_ACCOUNTS = _table(FamilyAccountRow)
FAMILY_REPOS = _table(FamilyRepoRow)
TABLES = tuple(Base.metadata.sorted_tables)
