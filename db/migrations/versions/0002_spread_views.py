"""Spread and lineage views.

spread_family_files, spread_survival, spread_copies, spread_hosts,
spread_derivatives, lineage_edges.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Views only: the tables of 0001 hold everything ``modelscan link`` writes (edges in
``lineage``, its watermark in ``crawl_state``). The SQL is in db/views/*.sql,
portable to SQLite and PostgreSQL.
"""

from __future__ import annotations

from importlib import resources

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Creation order: each view only reads tables and the views before it.
VIEWS = (
    "spread_family_files",
    "spread_survival",
    "spread_copies",
    "spread_hosts",
    "spread_derivatives",
    "lineage_edges",
)


def _view_sql(name: str) -> str:
    return (
        resources.files("modelscan.db").joinpath(f"views/{name}.sql").read_text("utf-8")
    )


def upgrade() -> None:
    for name in VIEWS:
        op.execute(_view_sql(name))


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
