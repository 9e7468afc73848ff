"""Initial schema: catalog, blobs, occurrences, lineage and crawl tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written out in full (no imports from modelscan.db.tables) so that later changes to
the table definitions never change what this revision does. The views are not
created here: env.py creates them at head from db/views (db/schema_views.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HASH = sa.String(64)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(cols: list[str], target: list[str], table: str) -> sa.ForeignKeyConstraint:
    name = f"fk_{table}_{cols[0]}_{target[0].split('.')[0]}"
    return sa.ForeignKeyConstraint(cols, target, name=name)


def _indexes(table: str, *columns: str) -> None:
    with op.batch_alter_table(table) as batch:
        for col in columns:
            batch.create_index(f"ix_{table}_{col}", [col], unique=False)


def _sparse_indexes(table: str, *columns: str) -> None:
    """Indexes over non-NULL values only (see tables.sparse_index)."""
    with op.batch_alter_table(table) as batch:
        for col in columns:
            where = sa.text(f"{col} IS NOT NULL")
            batch.create_index(
                f"ix_{table}_{col}",
                [col],
                unique=False,
                sqlite_where=where,
                postgresql_where=where,
            )


def upgrade() -> None:
    _create_catalog_tables()
    _create_blob_tables()
    _create_occurrence_tables()
    _create_crawl_tables()


def _create_catalog_tables() -> None:
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(64), nullable=False),
        _ts("first_seen"),
        sa.PrimaryKeyConstraint("name", name="pk_hosts"),
    )
    op.create_table(
        "repos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("host_id", sa.String(512), nullable=False),
        sa.Column("name", sa.String(512), nullable=True),
        sa.Column("owner", sa.String(256), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(128), nullable=True),
        sa.Column("license", sa.String(128), nullable=True),
        sa.Column("downloads", sa.BigInteger(), nullable=True),
        sa.Column("likes", sa.BigInteger(), nullable=True),
        sa.Column("revision", sa.String(128), nullable=True),
        _ts("updated_at", nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("first_seen"),
        _ts("last_seen"),
        _ts("gone_at", nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        _fk(["host"], ["hosts.name"], "repos"),
        sa.PrimaryKeyConstraint("id", name="pk_repos"),
        sa.UniqueConstraint("host", "host_id", name="uq_repos_host_host_id"),
    )
    with op.batch_alter_table("repos") as batch:
        batch.create_index("ix_repos_host_owner", ["host", "owner"], unique=False)
        batch.create_index(
            "ix_repos_host_last_seen", ["host", "last_seen"], unique=False
        )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.String(128), nullable=False),
        _ts("updated_at", nullable=True),
        _ts("first_seen"),
        _ts("last_seen"),
        _fk(["repo_id"], ["repos.id"], "versions"),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.UniqueConstraint("repo_id", "revision", name="uq_versions_repo_id_revision"),
    )


def _create_blob_tables() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", HASH, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("format", sa.String(32), nullable=True),
        sa.Column("autov1", sa.String(8), nullable=True),
        sa.Column("autov2", sa.String(10), nullable=True),
        sa.Column("autov3", HASH, nullable=True),
        sa.Column("blake3", HASH, nullable=True),
        sa.Column("crc32", sa.String(8), nullable=True),
        sa.Column("content_id", HASH, nullable=True),
        sa.Column("weights_id", HASH, nullable=True),
        sa.Column("structure_id", HASH, nullable=True),
        sa.Column("tensor_count", sa.Integer(), nullable=True),
        sa.Column("parameter_count", sa.BigInteger(), nullable=True),
        sa.Column("dtype", sa.String(16), nullable=True),
        sa.Column("dtype_summary", sa.JSON(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("safety_verdict", sa.String(16), nullable=True),
        sa.Column("pickle_safety", sa.JSON(), nullable=True),
        _ts("first_seen"),
        _ts("fingerprinted_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_blobs"),
        sa.UniqueConstraint("sha256", name="uq_blobs_sha256"),
    )
    _sparse_indexes(
        "blobs",
        "autov1",
        "autov3",
        "blake3",
        "crc32",
        "content_id",
        "weights_id",
        "structure_id",
    )
    op.create_table(
        "tensors",
        sa.Column("blob_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("shape", sa.JSON(), nullable=False),
        sa.Column("nbytes", sa.BigInteger(), nullable=False),
        sa.Column("digest", HASH, nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=True),
        _fk(["blob_id"], ["blobs.id"], "tensors"),
        sa.PrimaryKeyConstraint("blob_id", "position", name="pk_tensors"),
    )
    _indexes("tensors", "digest")
    op.create_table(
        "claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("blob_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("meaning", sa.String(64), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=True),
        _fk(["blob_id"], ["blobs.id"], "claims"),
        sa.PrimaryKeyConstraint("id", name="pk_claims"),
        sa.UniqueConstraint(
            "blob_id", "key", "value", name="uq_claims_blob_id_key_value"
        ),
    )


def _create_occurrence_tables() -> None:
    op.create_table(
        "files",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", HASH, nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        _ts("first_seen"),
        _ts("last_seen"),
        _ts("gone_at", nullable=True),
        sa.Column("extra", sa.JSON(), nullable=True),
        _fk(["repo_id"], ["repos.id"], "files"),
        _fk(["sha256"], ["blobs.sha256"], "files"),
        _fk(["version_id"], ["versions.id"], "files"),
        sa.PrimaryKeyConstraint("id", name="pk_files"),
    )
    _indexes("files", "repo_id")
    _sparse_indexes("files", "sha256")
    live = sa.text("gone_at IS NULL")
    with op.batch_alter_table("files") as batch:
        batch.create_index(
            "uq_files_live_path",
            ["repo_id", "path"],
            unique=True,
            sqlite_where=live,
            postgresql_where=live,
        )
    op.create_table(
        "lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_repo_id", sa.Integer(), nullable=True),
        sa.Column("child_sha256", HASH, nullable=True),
        sa.Column("parent_repo_id", sa.Integer(), nullable=True),
        sa.Column("parent_sha256", HASH, nullable=True),
        sa.Column("parent_ref", sa.String(512), nullable=False),
        sa.Column("relation", sa.String(32), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=True),
        _ts("first_seen"),
        _ts("last_seen"),
        _fk(["child_repo_id"], ["repos.id"], "lineage"),
        _fk(["child_sha256"], ["blobs.sha256"], "lineage"),
        sa.ForeignKeyConstraint(
            ["parent_repo_id"], ["repos.id"], name="fk_lineage_parent_repo_id_repos"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_lineage"),
        sa.UniqueConstraint(
            "child_repo_id",
            "parent_ref",
            "relation",
            "source",
            name="uq_lineage_child_repo_id_parent_ref_relation_source",
        ),
    )
    _indexes("lineage", "parent_ref")
    _sparse_indexes("lineage", "child_sha256", "parent_repo_id", "parent_sha256")


def _create_crawl_tables() -> None:
    op.create_table(
        "crawl_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(64), nullable=False),
        _ts("started_at"),
        _ts("finished_at", nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("machine", sa.String(256), nullable=True),
        _fk(["host"], ["hosts.name"], "crawl_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_crawl_runs"),
    )
    with op.batch_alter_table("crawl_runs") as batch:
        batch.create_index("ix_crawl_runs_host_started_at", ["host", "started_at"])
    op.create_table(
        "crawl_locks",
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("machine", sa.String(256), nullable=False),
        _ts("started_at"),
        _ts("heartbeat_at"),
        _fk(["host"], ["hosts.name"], "crawl_locks"),
        _fk(["run_id"], ["crawl_runs.id"], "crawl_locks"),
        sa.PrimaryKeyConstraint("host", name="pk_crawl_locks"),
    )
    op.create_table(
        "crawl_state",
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        _ts("updated_at"),
        _fk(["host"], ["hosts.name"], "crawl_state"),
        _fk(["run_id"], ["crawl_runs.id"], "crawl_state"),
        sa.PrimaryKeyConstraint("host", "key", name="pk_crawl_state"),
    )
    op.create_table(
        "crawl_errors",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        _ts("at"),
        _fk(["run_id"], ["crawl_runs.id"], "crawl_errors"),
        sa.PrimaryKeyConstraint("id", name="pk_crawl_errors"),
    )
    _indexes("crawl_errors", "run_id")
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, nullable=False),
        _ts("at"),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=True),
        sa.Column("file_id", BIG_ID, nullable=True),
        sa.Column("sha256", HASH, nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        _fk(["file_id"], ["files.id"], "events"),
        _fk(["repo_id"], ["repos.id"], "events"),
        _fk(["run_id"], ["crawl_runs.id"], "events"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    _indexes("events", "at", "repo_id")
    _sparse_indexes("events", "sha256")


def downgrade() -> None:
    for table in (
        "events",
        "crawl_errors",
        "crawl_state",
        "crawl_locks",
        "crawl_runs",
        "lineage",
        "files",
        "claims",
        "tensors",
        "blobs",
        "versions",
        "repos",
        "hosts",
    ):
        op.drop_table(table)
