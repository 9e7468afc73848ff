"""Counted dates and downloads: the rank rows carry every column of their views.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

``blob_copies`` and ``spread_copies`` computed their dates and downloads for
each row asked for, reading every copy: the top 100 blobs of a two-million
occurrence index hold tens of thousands of copies, so the whole rows took
0.2 to 0.4 s against under a millisecond for the counted columns. The blob and
family counters now keep first published, first and last seen (folded in as
each page is saved), and the families their downloads over ``family_repos``
(one row per family and repo, with the figures counted for it).

The upgrade fills every counter from the rows already there, with the
statements of ``modelscan db recount`` (``RECOUNT_SQL``); a later migration
that changes the counters must fill them the same way at its own end.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from modelscan.db.counters import COUNTER_TABLES, RECOUNT_SQL
from modelscan.db.tables import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DATES = ("first_published", "first_seen", "last_seen")
DOWNLOADS = ("downloads", "downloads_all_time")


def _total(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    for table in ("blob_counts", "family_counts"):
        with op.batch_alter_table(table) as batch:
            for name in DATES:
                batch.add_column(sa.Column(name, UtcDateTime(), nullable=True))
            if table == "family_counts":
                for name in DOWNLOADS:
                    batch.add_column(_total(name))
    op.create_table(
        "family_repos",
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        *(_total(n) for n in DOWNLOADS),
        sa.PrimaryKeyConstraint("family", "repo_id", name="pk_family_repos"),
    )
    op.create_index("ix_family_repos_repo_id", "family_repos", ["repo_id"])
    for counted in COUNTER_TABLES:
        op.execute(counted.delete())
    for sql in RECOUNT_SQL:
        op.execute(sql)


def downgrade() -> None:
    op.drop_index("ix_family_repos_repo_id", table_name="family_repos")
    op.drop_table("family_repos")
    for table in ("blob_counts", "family_counts"):
        with op.batch_alter_table(table) as batch:
            for name in (*DATES, *(DOWNLOADS if table == "family_counts" else ())):
                batch.drop_column(name)
