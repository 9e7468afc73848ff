"""Rank counters: per-blob and per-family copy counts, filled by a full recount.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

``blob_copies`` and ``spread_copies`` rank by live copies and takedown cost;
grouping every occurrence for that took seconds at two million occurrences.
These tables hold the counts, kept by ``db/counters.py`` in the transaction of
each write. They are filled from the rows already there by the last migration
that changes them (0007), with the statements of ``modelscan db recount`` as
they are at head: statements of a later schema cannot run at this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def _key(name: str, length: int = 64) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=False)


def upgrade() -> None:
    op.create_table(
        "blob_counts",
        _key("sha256"),
        _key("family"),
        *(_count(c) for c in ("live_copies", "total_copies", "hosts", "owners")),
        sa.PrimaryKeyConstraint("sha256", name="pk_blob_counts"),
    )
    op.create_index("ix_blob_counts_live_copies", "blob_counts", ["live_copies"])
    op.create_table(
        "blob_hosts",
        _key("sha256"),
        _key("host"),
        _count("live_copies"),
        sa.PrimaryKeyConstraint("sha256", "host", name="pk_blob_hosts"),
    )
    op.create_table(
        "blob_accounts",
        _key("sha256"),
        _key("host"),
        _key("owner", 512),
        _count("live_copies"),
        _count("copies"),
        sa.PrimaryKeyConstraint("sha256", "host", "owner", name="pk_blob_accounts"),
    )
    _family_tables()


def _family_tables() -> None:
    names = ("blobs", "copies", "live_copies", "hosts", "owners", "takedown_cost")
    op.create_table(
        "family_counts",
        _key("family"),
        *(_count(c) for c in names),
        sa.PrimaryKeyConstraint("family", name="pk_family_counts"),
    )
    for order in ("live_copies", "takedown_cost"):
        op.create_index(
            f"ix_family_counts_{order}", "family_counts", [order, "copies", "family"]
        )
    op.create_table(
        "family_blobs",
        _key("family"),
        _key("sha256"),
        _count("copies"),
        sa.PrimaryKeyConstraint("family", "sha256", name="pk_family_blobs"),
    )
    op.create_table(
        "family_hosts",
        _key("family"),
        _key("host"),
        *(_count(c) for c in ("copies", "live_copies", "owners", "takedown_cost")),
        sa.PrimaryKeyConstraint("family", "host", name="pk_family_hosts"),
    )
    op.create_table(
        "family_accounts",
        _key("family"),
        _key("host"),
        _key("owner", 512),
        _count("copies"),
        _count("live_copies"),
        sa.PrimaryKeyConstraint("family", "host", "owner", name="pk_family_accounts"),
    )


def downgrade() -> None:
    for name in (
        "family_accounts",
        "family_hosts",
        "family_blobs",
        "family_counts",
        "blob_accounts",
        "blob_hosts",
        "blob_counts",
    ):
        op.drop_table(name)
