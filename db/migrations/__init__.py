"""Alembic migrations of the index (env.py and versions/)."""
