"""Which sha256s were asked of a host by hash (``crawl --host civitai --by-hash``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``hash_lookups`` holds one row per (host, sha256) asked: when it was asked, so a
later ``--by-hash`` run asks only sha256s the index gained since (``--full``
asks every one again). A sha256 the host turned out to hold is seen on the
host through its files; the row only says it was asked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hash_lookups",
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host", "sha256", name="pk_hash_lookups"),
    )


def downgrade() -> None:
    op.drop_table("hash_lookups")
