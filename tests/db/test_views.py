"""The public SQL views (blob_copies, repo_summary, blob_identity) on both databases."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from modelscan.db.query import run_sql
from modelscan.db.store import Store
from modelscan.records import Fingerprint, LineageRef, Listing, RemoteFile

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SHA_A, SHA_B = "a" * 64, "b" * 64


def _ts(value: Any) -> datetime:
    """A timestamp as either database returns it through plain SQL."""
    if isinstance(value, str):  # SQLite stores UTC text
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def _listing(host: str, host_id: str, owner: str, *shas: str, **kw: Any) -> Listing:
    files = tuple(
        RemoteFile(f"f{i}.bin", 10, s, "https://h/f") for i, s in enumerate(shas)
    )
    return Listing(
        host=host,
        host_id=host_id,
        name=host_id,
        owner=owner,
        url="https://h",
        revision="r1",
        updated_at=T0,
        files=files,
        **kw,
    )


@pytest.fixture
def spread(store: Store) -> Store:
    """SHA_A on 2 hosts and 3 accounts, one copy gone later; declared lineage."""
    hf = store.start_run("huggingface", params={})
    civ = store.start_run("civitai", params={})
    parent = LineageRef("hf:org/base", "finetune", "declared-card")
    store.save_page(
        hf,
        "huggingface",
        [
            _listing("huggingface", "org/base", "org", SHA_A, SHA_B),
            _listing("huggingface", "bob/copy", "bob", SHA_A, lineage=(parent,)),
            _listing("huggingface", "eve/tune", "eve", SHA_B, lineage=(parent,)),
        ],
        next_cursor=None,
        seen_at=T0,
    )
    store.save_page(
        civ,
        "civitai",
        [_listing("civitai", "55", "carol", SHA_A)],
        next_cursor=None,
        seen_at=T0 + timedelta(days=10),
    )
    store.mark_gone("huggingface", "bob/copy", at=T0 + timedelta(days=20))
    return store


def test_blob_copies_counts_live_copies_hosts_and_accounts(spread: Store) -> None:
    """blob_copies: 3 copies, 2 live, on 2 hosts, 2 accounts, first/last seen."""
    row = spread.execute(
        lambda c: c.execute(
            text(
                "SELECT live_copies, total_copies, hosts, owners, first_seen, "
                "last_seen "
                "FROM blob_copies WHERE sha256 = :s"
            ),
            {"s": SHA_A},
        ).one()
    )
    assert tuple(row[:4]) == (2, 3, 2, 2)
    assert (_ts(row[4]), _ts(row[5])) == (T0, T0 + timedelta(days=10))


def test_repo_summary_counts_files_parents_children(spread: Store) -> None:
    """repo_summary: live files and blobs, declared parents, children per repo."""
    rows = spread.execute(
        lambda c: c.execute(
            text(
                "SELECT host_id, files, blobs, declared_parents, children, status "
                "FROM repo_summary ORDER BY host_id"
            )
        ).all()
    )
    assert [tuple(r) for r in rows] == [
        ("55", 1, 1, 0, 0, "live"),
        ("bob/copy", 0, 0, 1, 0, "gone"),
        ("eve/tune", 1, 1, 1, 0, "live"),
        ("org/base", 2, 2, 0, 2, "live"),
    ]


def test_blob_identity_pairs_by_hash_content_and_weights(
    store: Store, make_fp: Callable[..., Fingerprint]
) -> None:
    """blob_identity pairs a blob with itself, same-content and same-weights blobs."""
    original = make_fp("a/m.safetensors", seed=1, values_seed=5)
    remeta = make_fp("b/m.safetensors", seed=2, values_seed=5)
    renamed = make_fp("c/m.safetensors", seed=1, values_seed=5, names=("x", "y", "z"))
    for fp in (original, remeta, renamed):
        store.save_fingerprint(fp, location=fp.path)
    rows = store.execute(
        lambda c: c.execute(
            text(
                "SELECT other_sha256, kind FROM blob_identity WHERE sha256 = :s "
                "ORDER BY kind"
            ),
            {"s": original.sha256},
        ).all()
    )
    assert [tuple(r) for r in rows] == [
        (remeta.sha256, "content_id"),
        (original.sha256, "sha256"),
        (renamed.sha256, "weights_id"),
    ]


def test_views_answer_through_read_only_sql(spread: Store, db_url: str) -> None:
    """The views work through `modelscan sql`'s read-only connection."""
    result = run_sql(
        db_url, "SELECT sha256, live_copies FROM blob_copies ORDER BY sha256"
    )
    assert result.columns == ["sha256", "live_copies"]
    assert result.rows == [(SHA_A, 2), (SHA_B, 2)]


@pytest.mark.skipif(
    shutil.which("sqlite3") is None, reason="sqlite3 command not installed"
)
def test_sqlite_file_is_readable_by_the_sqlite3_command(
    spread: Store, db_url: str
) -> None:
    """The file needs no custom function: the stock sqlite3 CLI reads the views."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite file only")
    path = db_url.removeprefix("sqlite:///")
    sql = (
        "SELECT live_copies FROM blob_copies WHERE sha256 = '" + SHA_A + "';"
        "SELECT count(*) FROM repo_summary; SELECT count(*) FROM blob_identity;"
    )
    out = subprocess.run(
        ["sqlite3", "-readonly", path, sql], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["2", "4", "2"]
