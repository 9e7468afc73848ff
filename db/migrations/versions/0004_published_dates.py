"""Hosts' own dates, all-time downloads, and who runs each host.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

- ``files.published_at``: the host's date for a file's content at its path
  (HF: the tree's ``lastCommit.date``; Civitai: the version's ``publishedAt``);
- ``repos.published_at``: the host's creation date of the repo (HF
  ``createdAt``; Civitai: its first version; Replicate: its first version);
- ``repos.downloads_all_time``: HF ``downloadsAllTime``, Civitai ``downloadCount``
  (``repos.downloads`` stays the host's headline count: 30 days on HF);
- ``hosts.operator``, ``hosts.country``: filled from modelscan/hostinfo.py.

Rows crawled before have NULL dates; the next crawl fetches the details of
repos without ``published_at`` again and fills them in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ts(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.add_column("files", _ts("published_at"))
    op.add_column("repos", _ts("published_at"))
    op.add_column("repos", sa.Column("downloads_all_time", sa.BigInteger()))
    op.add_column("hosts", sa.Column("operator", sa.String(256)))
    op.add_column("hosts", sa.Column("country", sa.String(64)))


def downgrade() -> None:
    # Native DROP COLUMN (SQLite >= 3.35); the views are already dropped.
    for table, column in (
        ("hosts", "country"),
        ("hosts", "operator"),
        ("repos", "downloads_all_time"),
        ("repos", "published_at"),
        ("files", "published_at"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
