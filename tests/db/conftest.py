"""Fixtures for the index: a migrated store on ``db_url`` (tests/conftest.py).

Model files for the store are real safetensors files written by the safetensors
library and fingerprinted by the real scanner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dbfiles import write_model

from modelscan.db.engine import open_store
from modelscan.db.store import Store
from modelscan.records import Fingerprint
from modelscan.scanner.fingerprint import fingerprint


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
