"""Fixtures for the index: a fresh database per test on SQLite and on PostgreSQL.

``db_url`` is parametrized: a SQLite file in ``tmp_path``, and the real PostgreSQL
of this machine (127.0.0.1:5432, database ``test``) with each test isolated in its
own schema through ``search_path`` (dropped afterwards). Model files for the
store are real safetensors files written by the safetensors library and
fingerprinted by the real scanner.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from dbfiles import write_model

from modelscan.db.engine import open_store
from modelscan.db.store import Store
from modelscan.records import Fingerprint
from modelscan.scanner.fingerprint import fingerprint

PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_schema_url(schema: str) -> str:
    """Return a SQLAlchemy URL whose connections use ``schema`` only."""
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh empty PostgreSQL schema, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite'}"
    schema: str = request.getfixturevalue("pg_schema")
    return pg_schema_url(schema)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """An index migrated to head on ``db_url``."""
    s = open_store(db_url)
    yield s
    s.close()


@pytest.fixture
def make_fp(tmp_path: Path) -> Callable[..., Fingerprint]:
    """Write a real safetensors file and fingerprint it with the real scanner."""

    def make(name: str = "model.safetensors", **kwargs: object) -> Fingerprint:
        path = write_model(tmp_path / "models" / name, **kwargs)  # type: ignore[arg-type]
        return fingerprint(path, all_hashes=True)

    return make
