"""Concurrent and killed writers: nothing lost, nothing doubled, on both databases."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dbfiles import write_model
from sqlalchemy import func, select, text

from modelscan.db.engine import make_engine, open_store
from modelscan.db.store import Store
from modelscan.db.tables import BLOBS, EVENTS, FILES, TENSORS


def _save_all(url: str, paths: list[str], barrier: Any, results: Any) -> None:
    """Worker: fingerprint and save every path, as `fingerprint --save` does."""
    from modelscan.scanner.fingerprint import fingerprint

    try:
        store = open_store(url)
        barrier.wait(timeout=60)
        for p in paths:
            store.save_fingerprint(fingerprint(p), location=p)
        store.close()
        results.put("ok")
    except BaseException as exc:  # report anything to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def _consistency(store: Store) -> dict[str, int]:
    """Counts that must agree in a consistent index, and duplicate checks."""

    def check(conn: Any) -> dict[str, int]:
        per_blob = conn.execute(
            select(BLOBS.c.tensor_count, func.count(TENSORS.c.position))
            .outerjoin(TENSORS, TENSORS.c.blob_id == BLOBS.c.id)
            .group_by(BLOBS.c.id, BLOBS.c.tensor_count)
        ).all()
        assert all(expected == got for expected, got in per_blob), "partial tensor sets"
        dup = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT repo_id, path FROM files "
                "GROUP BY repo_id, path "
                "HAVING count(*) > 1) AS d"
            )
        ).scalar()
        orphan = conn.execute(
            text(
                "SELECT count(*) FROM files f LEFT JOIN blobs b ON b.sha256 = f.sha256 "
                "WHERE b.id IS NULL"
            )
        ).scalar()
        n = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar()
            for t in (FILES, BLOBS, EVENTS)
        }
        return {**n, "duplicate_paths": dup, "orphans": orphan}

    return store.execute(check)  # type: ignore[no-any-return]


def test_two_processes_saving_at_once_lose_nothing(db_url: str, tmp_path: Path) -> None:
    """Two processes fingerprinting and saving into one index at once both succeed."""
    open_store(db_url).close()
    own = [
        str(write_model(tmp_path / f"p{w}" / f"m{i}.safetensors", seed=100 * w + i))
        for w in (1, 2)
        for i in range(40)
    ]
    shared = [
        str(write_model(tmp_path / "shared" / f"s{i}.safetensors", seed=999 + i))
        for i in range(20)
    ]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    jobs = [own[:40] + shared, shared[::-1] + own[40:]]
    procs = [
        ctx.Process(target=_save_all, args=(db_url, j, barrier, results)) for j in jobs
    ]
    for p in procs:
        p.start()
    outcome = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert outcome == ["ok", "ok"]
    store = open_store(db_url)
    try:
        counts = _consistency(store)
    finally:
        store.close()
    assert counts == {
        "files": 100,
        "blobs": 100,
        "events": 100,
        "duplicate_paths": 0,
        "orphans": 0,
    }


def _fingerprint_save(url: str, folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MODELSCAN_DATABASE_URL": url}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelscan",
            "fingerprint",
            "--save",
            "--no-progress",
            str(folder),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_killed_fingerprint_save_leaves_a_consistent_index(
    db_url: str, tmp_path: Path
) -> None:
    """SIGKILL mid-way through `fingerprint --save`; a rerun completes, no doubles."""
    total = 300
    for i in range(total):
        write_model(tmp_path / "models" / f"m{i:03}.safetensors", seed=5000 + i)
    open_store(db_url).close()
    engine = make_engine(db_url)
    count = select(func.count()).select_from(FILES)
    proc = _fingerprint_save(db_url, tmp_path / "models")
    seen = 0
    deadline = time.monotonic() + 120
    while seen < 20 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        with engine.connect() as conn:
            seen = conn.execute(count).scalar_one()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    engine.dispose()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it was killed"
    store = open_store(db_url)
    try:
        partial = _consistency(store)
        assert 20 <= partial["files"] < total
        assert partial["files"] == partial["blobs"] == partial["events"]
        assert (partial["duplicate_paths"], partial["orphans"]) == (0, 0)
        if db_url.startswith("sqlite"):
            ok = store.execute(
                lambda c: c.exec_driver_sql("PRAGMA integrity_check").scalar()
            )
            assert ok == "ok"
        rerun = _fingerprint_save(db_url, tmp_path / "models")
        assert rerun.wait(timeout=300) == 0, rerun.stderr.read() if rerun.stderr else ""
        final = _consistency(store)
    finally:
        store.close()
    assert final == {
        "files": total,
        "blobs": total,
        "events": total,
        "duplicate_paths": 0,
        "orphans": 0,
    }
