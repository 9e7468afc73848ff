"""Spread and lineage views (now created at head by env.py: this step is empty).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

This revision created spread_family_files, spread_survival, spread_copies,
spread_hosts, spread_derivatives and lineage_edges from db/views/*.sql. Since
0004 every view is created once the index reaches head and dropped before any
migration runs (db/schema_views.py), so a view's SQL never meets an older
schema; the revision stays so that indexes stamped 0002 keep their history.
"""

from __future__ import annotations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: the views are created at head."""


def downgrade() -> None:
    """Nothing: the views were dropped before the migrations ran."""
