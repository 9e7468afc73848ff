"""The public SQL views: created from ``db/views/*.sql`` after every migration.

A view reads the tables as they are at head, so no migration creates one:
``db/migrations/env.py`` drops every view before a migration runs and creates
them all again once the index is at head (an index left at an older revision
has no views). A view's SQL therefore only ever meets the schema it was written
for, and changing a view is an edit of its ``.sql`` file, not a migration.

Example:
    >>> VIEWS[0]
    'blob_copies'
"""

from __future__ import annotations

from importlib import resources

from sqlalchemy import Connection, text

# Creation order: each view reads only tables and the views before it.
VIEWS = (
    "blob_copies",
    "repo_summary",
    "blob_identity",
    "spread_family_files",
    "spread_survival",
    "spread_copies",
    "spread_hosts",
    "spread_derivatives",
    "lineage_edges",
)


def view_sql(name: str) -> str:
    """Return the ``CREATE VIEW`` statement of one view."""
    return (
        resources.files("modelscan.db").joinpath(f"views/{name}.sql").read_text("utf-8")
    )


def drop_views(conn: Connection) -> None:
    """Drop every view this project defines (those that exist)."""
    for name in reversed(VIEWS):
        conn.execute(text(f"DROP VIEW IF EXISTS {name}"))


def create_views(conn: Connection) -> None:
    """Create every view from its SQL file."""
    for name in VIEWS:
        conn.execute(text(view_sql(name)))
