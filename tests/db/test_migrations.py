"""Migrations make the schema and match tables.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from modelscan.db import engine as db_engine
from modelscan.db.engine import default_url, hide_password, make_engine, open_store
from modelscan.db.migrate import current_revision, downgrade, head_revision, upgrade
from modelscan.db.tables import TABLES, Base
from modelscan.errors import StoreError

VIEWS = {"blob_copies", "blob_identity", "repo_summary"}  # later revisions add more


def _schema(url: str) -> tuple[set[str], set[str]]:
    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            insp = inspect(conn)
            return set(insp.get_table_names()), set(insp.get_view_names())
    finally:
        eng.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    """Every table and view comes and goes with the migrations, twice."""
    eng = make_engine(db_url)
    try:
        assert upgrade(eng) == head_revision()
        tables, views = _schema(db_url)
        assert tables >= {t.name for t in TABLES}
        assert views >= VIEWS
        assert downgrade(eng, "base") is None
        assert _schema(db_url) == ({"alembic_version"}, set())
        assert upgrade(eng) == head_revision()
        assert _schema(db_url)[1] >= VIEWS
    finally:
        eng.dispose()


def test_migrations_match_the_table_definitions(db_url: str) -> None:
    """Autogenerate finds no difference between the migrated schema and tables.py."""
    eng = make_engine(db_url)
    try:
        upgrade(eng)
        with eng.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        eng.dispose()


def test_open_store_migrates_on_first_use(db_url: str) -> None:
    """open_store on an empty database creates the schema at head."""
    store = open_store(db_url)
    try:
        assert current_revision(store.engine) == head_revision()
        assert set(store.row_counts()) == {t.name for t in TABLES}
    finally:
        store.close()


def test_read_only_open_of_an_empty_index_says_what_to_run(db_url: str) -> None:
    """A read-only open does not migrate; it names the command that would."""
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    with pytest.raises(StoreError, match="is empty: run `modelscan db upgrade`"):
        open_store(db_url, read_only=True)


def test_an_index_from_a_newer_modelscan_is_refused(db_url: str) -> None:
    """A schema revision this version does not know is a clear error, not a crash."""
    open_store(db_url).close()
    eng = make_engine(db_url)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    eng.dispose()
    with pytest.raises(StoreError, match="newer than this modelscan knows"):
        open_store(db_url)


def test_default_url_is_env_or_user_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MODELSCAN_DATABASE_URL wins; else a SQLite file under the user data directory."""
    monkeypatch.setenv("MODELSCAN_DATABASE_URL", "sqlite:///x.sqlite")
    assert default_url() == "sqlite:///x.sqlite"
    monkeypatch.delenv("MODELSCAN_DATABASE_URL")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert (
        default_url() == f"sqlite:///{tmp_path / 'data' / 'modelscan' / 'index.sqlite'}"
    )
    store = open_store()
    store.close()
    assert (tmp_path / "data" / "modelscan" / "index.sqlite").is_file()


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    """The SQLite index runs in WAL mode with foreign keys and a busy timeout."""
    store = open_store(f"sqlite:///{tmp_path / 'i.sqlite'}")
    with store.engine.connect() as conn:
        got = [
            conn.exec_driver_sql(f"PRAGMA {p}").scalar()
            for p in ("journal_mode", "foreign_keys", "busy_timeout")
        ]
    store.close()
    assert got == ["wal", 1, int(db_engine.SQLITE_BUSY_TIMEOUT_S * 1000)]


def test_bad_urls_and_passwords() -> None:
    """Unsupported URLs fail in one line; passwords never show."""
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        make_engine("mysql://u:secret@h/db")
    with pytest.raises(StoreError, match="not a database URL"):
        make_engine("no url at all")
    shown = hide_password("postgresql+psycopg://u:secret@h:5432/db")
    assert "secret" not in shown
    assert "***" in shown


@pytest.mark.postgres
def test_unreachable_server_is_one_line() -> None:
    """A server that does not answer gives a StoreError naming the URL, no password."""
    with pytest.raises(StoreError, match="cannot open the index") as err:
        open_store("postgresql+psycopg://u:secret@127.0.0.1:1/db")
    assert "secret" not in str(err.value)
