"""Remote fingerprints: blobs.remote marks them, tensors.digest may be NULL.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A fingerprint read through HTTP Range requests (``modelscan fingerprint
hf://...``) knows every tensor's name, dtype, shape and some sketches, but no
tensor digests: they need every byte. ``blobs.remote`` holds where it was read
from and what that cost (``{"url", "requests", "bytes", "whole"}``), NULL for a
local fingerprint. On SQLite making ``tensors.digest`` nullable rebuilds the
tensors table (batch mode); no view reads it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HASH = sa.String(64)


def upgrade() -> None:
    op.add_column("blobs", sa.Column("remote", sa.JSON(none_as_null=True)))
    with op.batch_alter_table("tensors") as batch:
        batch.alter_column("digest", existing_type=HASH, nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM tensors WHERE digest IS NULL")
    with op.batch_alter_table("tensors") as batch:
        batch.alter_column("digest", existing_type=HASH, nullable=False)
    # Native DROP COLUMN (SQLite >= 3.35): a batch rebuild of blobs would trip
    # over the views that read it.
    op.execute("ALTER TABLE blobs DROP COLUMN remote")
