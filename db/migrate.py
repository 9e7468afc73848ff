"""Alembic, driven from code: the only way the index schema is created or changed.

``open_store`` calls :func:`ensure_schema`, which upgrades an empty or older
index to head; ``modelscan db upgrade`` calls :func:`upgrade`. The migrations
live in ``db/migrations`` and run unchanged on SQLite and PostgreSQL.

Example:
    >>> upgrade(make_engine("sqlite:///index.sqlite"))  # doctest: +SKIP
    '0001'
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from modelscan.db import migrations
from modelscan.db.engine import WRITE_OPTION, hide_password
from modelscan.errors import StoreError

MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(engine: Engine | None = None) -> Config:
    """Return an alembic Config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """Return the newest migration this version of modelscan ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations packaged"
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the index's schema revision, or None for an empty database."""
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise StoreError(
            f"cannot open the index at {hide_password(engine.url)}: {_first_line(exc)}"
        ) from exc


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the index up to ``revision``; return the revision reached."""
    _run(engine, "upgrade", revision)
    return current_revision(engine)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Migrate the index down to ``revision`` ("base" empties it)."""
    _run(engine, "downgrade", revision)
    return current_revision(engine)


def _run(engine: Engine, action: str, revision: str) -> None:
    cfg = alembic_config()
    try:
        with engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                cfg.attributes["connection"] = conn
                getattr(command, action)(cfg, revision)
    except OperationalError as exc:
        raise StoreError(
            f"cannot migrate the index at {hide_password(engine.url)}: "
            f"{_first_line(exc)}"
        ) from exc


def ensure_schema(engine: Engine, *, upgrade: bool) -> None:
    """Check the index's revision; migrate it to head when ``upgrade`` is set.

    Raises:
        StoreError: the index is newer than this modelscan, or (read-only) it is
            empty or older than head.
    """
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    known = {
        s.revision
        for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }
    where = hide_password(engine.url)
    if current is not None and current not in known:
        raise StoreError(
            f"the index at {where} has schema revision {current}, newer than this "
            f"modelscan knows ({head}): upgrade modelscan"
        )
    if not upgrade:
        state = (
            "is empty" if current is None else f"is at revision {current}, not {head}"
        )
        raise StoreError(f"the index at {where} {state}: run `modelscan db upgrade`")
    _run(engine, "upgrade", "head")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
