"""`modelscan where`, `sql` and `db`, run through click against real index files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from safetensors.numpy import save_file

from modelscan.cli import cli
from modelscan.db.engine import open_store
from modelscan.db.migrate import head_revision
from modelscan.records import Fingerprint
from modelscan.scanner.fingerprint import fingerprint


@pytest.fixture
def db_url(db_url: str) -> str:
    """The shared empty index, with a password in PostgreSQL URLs.

    Trust auth ignores the password: it is there to prove it is never shown.
    """
    return db_url.replace("postgres@", "postgres:s3cret@", 1)


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, Fingerprint]:
    """A real safetensors file and its fingerprint."""
    rng = np.random.default_rng(3)
    path = tmp_path / "m" / "model.safetensors"
    path.parent.mkdir()
    save_file({"w": rng.standard_normal((32, 32)).astype(np.float32)}, str(path))
    return path, fingerprint(path, all_hashes=True)


@pytest.fixture
def saved(db_url: str, model: tuple[Path, Fingerprint]) -> tuple[Path, Fingerprint]:
    """The model saved in the index at ``db_url``."""
    store = open_store(db_url)
    store.save_fingerprint(model[1], location=str(model[0]))
    store.close()
    return model


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """Invoke the real command group."""
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


def test_where_by_hash_prints_kind_status_and_place(
    db_url: str, saved: tuple[Path, Fingerprint]
) -> None:
    """`where AUTOV2` prints one line: the kind of match, live, and the local path."""
    path, fp = saved
    result = run("where", fp.autov2.upper(), "--db", db_url)
    assert result.exit_code == 0
    assert result.stdout.split() == ["autov2", "live", f"local:{path}"]


def test_where_a_file_fingerprints_it_first(
    db_url: str, saved: tuple[Path, Fingerprint], tmp_path: Path
) -> None:
    """`where FILE --json` finds the index's copy of a file copied elsewhere."""
    path, fp = saved
    copy = tmp_path / "elsewhere.safetensors"
    copy.write_bytes(path.read_bytes())
    result = run("where", str(copy), "--db", db_url, "--json")
    assert result.exit_code == 0
    (line,) = result.stdout.splitlines()
    record = json.loads(line)
    assert (record["kind"], record["sha256"], record["path"]) == (
        "sha256",
        fp.sha256,
        str(path),
    )


def test_where_unknown_hash_exits_1(
    db_url: str, saved: tuple[Path, Fingerprint]
) -> None:
    """A hash the index does not know prints a message and exits 1."""
    result = run("where", "0" * 64, "--db", db_url)
    assert result.exit_code == 1
    assert "no known occurrence" in result.stderr


def test_where_bad_hash_is_one_line(
    db_url: str, saved: tuple[Path, Fingerprint]
) -> None:
    """Something that is neither a hash nor a file is a one-line error."""
    result = run("where", "hello", "--db", db_url)
    assert result.exit_code == 1
    hint = "give a hex hash or an existing file path"
    assert result.stderr.strip().splitlines() == [
        f"modelscan: error: not a hash: 'hello'; {hint}"
    ]


def test_sql_prints_table_csv_and_json(
    db_url: str, saved: tuple[Path, Fingerprint]
) -> None:
    """`sql` prints an aligned table, or CSV, or JSON, from the views."""
    _, fp = saved
    query = "SELECT sha256, live_copies FROM blob_copies"
    table = run("sql", query, "--db", db_url).stdout.splitlines()
    assert table[0].split() == ["sha256", "live_copies"]
    assert table[2].split() == [fp.sha256, "1"]
    assert run("sql", query, "--db", db_url, "--csv").stdout.splitlines() == [
        "sha256,live_copies",
        f"{fp.sha256},1",
    ]
    objects = json.loads(run("sql", query, "--db", db_url, "--json").stdout)
    assert objects == [{"sha256": fp.sha256, "live_copies": 1}]


def test_sql_refuses_writes_unless_asked(
    db_url: str, saved: tuple[Path, Fingerprint]
) -> None:
    """A write is refused in one line by the connection; --write lets it through."""
    refused = run("sql", "UPDATE repos SET owner = 'x'", "--db", db_url)
    assert refused.exit_code == 1
    assert "refused" in refused.stderr
    assert "--write" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    owners = "SELECT DISTINCT owner FROM repos"
    assert "x" not in run("sql", owners, "--db", db_url, "--csv").stdout.split()
    done = run("sql", "UPDATE repos SET owner = 'x'", "--db", db_url, "--write")
    assert done.stdout.strip() == "1 rows affected"
    assert run("sql", owners, "--db", db_url, "--csv").stdout.split() == ["owner", "x"]


def test_db_info_hides_the_password(
    db_url: str, saved: tuple[Path, Fingerprint]
) -> None:
    """`db info` shows the revision and row counts, never the password."""
    result = run("db", "info", "--db", db_url)
    assert result.exit_code == 0
    assert "s3cret" not in result.stdout
    assert f"revision  {head_revision()} (up to date)" in result.stdout
    counts = dict(line.split() for line in result.stdout.splitlines()[2:])
    assert (counts["files"], counts["blobs"], counts["events"]) == ("1", "1", "1")


def test_db_upgrade_and_env_var(tmp_path: Path) -> None:
    """`db upgrade` creates the index; MODELSCAN_DATABASE_URL replaces --db."""
    url = f"sqlite:///{tmp_path / 'new' / 'index.sqlite'}"
    result = run("db", "upgrade", env={"MODELSCAN_DATABASE_URL": url})
    assert result.stdout.strip() == f"{url}: at revision {head_revision()}"
    info = json.loads(
        run("db", "info", "--json", env={"MODELSCAN_DATABASE_URL": url}).stdout
    )
    assert info["revision"] == head_revision()
    assert info["tables"]["files"] == 0


def test_sql_on_a_missing_index_says_how_to_create_it(tmp_path: Path) -> None:
    """Reading an index that does not exist names the command that creates it."""
    result = run("sql", "SELECT 1", "--db", f"sqlite:///{tmp_path / 'none.sqlite'}")
    assert result.exit_code == 1
    assert "modelscan db upgrade" in result.stderr
    assert not (tmp_path / "none.sqlite").exists()


def test_db_unlock_frees_a_dead_crawls_lock(db_url: str) -> None:
    """`db unlock HOST` removes a crawl lock so a new crawl can start."""
    store = open_store(db_url)
    try:
        run_id = store.start_run("civitai", params={})
        result = run("db", "unlock", "civitai", "--db", db_url)
        assert f"crawl run {run_id} marked abandoned" in result.stdout
        assert store.start_run("civitai", params={}) > run_id
        assert (
            "no crawl lock for replicate"
            in run("db", "unlock", "replicate", "--db", db_url).stdout
        )
    finally:
        store.close()


def test_where_names_host_repo_version_and_since(db_url: str) -> None:
    """A crawled copy that went gone prints its host, repo@version, path and date."""
    from datetime import UTC, datetime

    from modelscan.records import Listing, RemoteFile

    sha = "ab" * 32
    at = datetime(2025, 6, 1, tzinfo=UTC)
    store = open_store(db_url)
    try:
        run_id = store.start_run("civitai", params={})
        files = (RemoteFile("lora.safetensors", 10, sha, "https://civitai.com/d/1"),)
        page = [
            Listing(
                host="civitai",
                host_id="55",
                name="x",
                owner="carol",
                url="u",
                revision="128713",
                updated_at=at,
                files=files,
            )
        ]
        store.save_page(run_id, "civitai", page, next_cursor=None, seen_at=at)
        store.mark_gone(
            "civitai", "55", at=datetime(2025, 7, 2, tzinfo=UTC), status="taken_down"
        )
    finally:
        store.close()
    result = run("where", sha[:10].upper(), "--db", db_url)
    assert result.stdout.split() == [
        "autov2",
        "taken_down",
        "since",
        "2025-07-02",
        "civitai:55@128713",
        "lora.safetensors",
    ]
