"""``modelscan fingerprint hf://...`` as a user runs it, against a Hub-like server.

HF_ENDPOINT points at tests/rangeserver.py's hub origin, which redirects to a
second (CDN) origin; the command prints the same record as for the local file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rangeserver import RangeServer
from sqlalchemy import create_engine, select

from modelscan.cli import cli
from modelscan.db.tables import BLOBS, FILES, REPOS, TENSORS
from modelscan.registry.remote import IGNORES_RANGE
from modelscan.scanner.fingerprint import fingerprint


@pytest.fixture(scope="module")
def hub(model_files: dict[str, Path]) -> Iterator[RangeServer]:
    """The two-origin server hosting the real MiniLM and SmolLM2 files."""
    with RangeServer() as srv:
        srv.add("o/minilm", "model.safetensors", model_files["minilm"])
        srv.add("o/smol", "model.gguf", model_files["smollm_gguf"], version_id=7)
        yield srv


@pytest.fixture(autouse=True)
def _env(hub: RangeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("MODELSCAN_CIVITAI_URL", hub.url)
    for name in ("HF_TOKEN", "CIVITAI_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    hub.reset()
    yield
    hub.ignore_range = False


def test_json_record_equals_local_and_says_remote(
    model_files: dict[str, Path],
) -> None:
    """--json prints the local record's fields, the host's sha256 and remote cost."""
    ref = "hf://o/minilm/model.safetensors"
    result = CliRunner().invoke(cli, ["fingerprint", "--json", ref])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    local = fingerprint(model_files["minilm"]).to_json()
    for key in ("format", "size", "sha256", "autov1", "structure_id", "metadata"):
        assert record[key] == local[key], key
    assert record["parameter_count"] == local["parameter_count"]
    assert [t["shape"] for t in record["tensors"]] == [
        t["shape"] for t in local["tensors"]
    ]
    assert record["remote"]["url"] == ref
    assert record["remote"]["requests"] <= 40
    assert record["content_id"] is None


def test_text_summary_names_the_cost() -> None:
    """The text form shows format, structure and the requests and bytes spent."""
    result = CliRunner().invoke(cli, ["fingerprint", "hf://o/smol/model.gguf"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("hf://o/smol/model.gguf\n")
    assert "gguf (272 tensors" in result.stdout
    assert "structure_id" in result.stdout
    assert "remote       " in result.stdout
    assert "requests" in result.stdout


def test_server_without_range_gives_the_one_line_error(hub: RangeServer) -> None:
    """Exit 1 and exactly `modelscan: error: URL: the server ignores Range ...`."""
    hub.ignore_range = True
    ref = "hf://o/minilm/model.safetensors"
    result = CliRunner().invoke(cli, ["fingerprint", ref])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"modelscan: error: {ref}: {IGNORES_RANGE}"
    assert "Traceback" not in result.output


def test_civitai_version(hub: RangeServer) -> None:
    """civitai://VERSION reads the primary file; the sha256 is Civitai's."""
    result = CliRunner().invoke(cli, ["fingerprint", "--json", "civitai://7"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["sha256"] == hub.files["o/smol/model.gguf"].sha256
    assert record["format"] == "gguf"


def test_save_marks_the_blob_remote_and_local_save_replaces_it(
    tmp_path: Path, model_files: dict[str, Path]
) -> None:
    """--save stores blob and tensors marked remote; a local save then wins."""
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    ref = "hf://o/minilm/model.safetensors"
    saved = CliRunner().invoke(cli, ["fingerprint", "--save", "--db", db, ref])
    assert saved.exit_code == 0, saved.output
    engine = create_engine(db)
    with engine.connect() as conn:
        blob = conn.execute(select(BLOBS)).one()
        assert blob.remote["url"] == ref
        assert blob.structure_id is not None
        assert blob.content_id is None
        digests = conn.execute(select(TENSORS.c.digest)).scalars().all()
        assert len(digests) == 104
        assert set(digests) == {None}
        assert conn.execute(select(FILES.c.path)).scalars().all() == [ref]
        repo = conn.execute(select(REPOS.c.host, REPOS.c.host_id)).one()
        assert tuple(repo) == ("remote", "hf://o/minilm")
    local = CliRunner().invoke(
        cli, ["fingerprint", "--save", "--db", db, str(model_files["minilm"])]
    )
    assert local.exit_code == 0, local.output
    again = CliRunner().invoke(cli, ["fingerprint", "--save", "--db", db, ref])
    assert again.exit_code == 0, again.output
    with engine.connect() as conn:
        blob = conn.execute(select(BLOBS)).one()
        assert blob.remote is None
        assert blob.content_id is not None
        assert None not in conn.execute(select(TENSORS.c.digest)).scalars().all()
    engine.dispose()


def test_save_needs_a_stated_sha256(hub: RangeServer, tmp_path: Path) -> None:
    """A plain URL whose host states no sha256 cannot be saved: usage error."""
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    url = hub.direct_url("o/minilm", "model.safetensors")
    result = CliRunner().invoke(cli, ["fingerprint", "--save", "--db", db, url])
    assert result.exit_code == 2
    assert "states no sha256" in result.output
