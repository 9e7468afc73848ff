"""The cron wrapper: runs never overlap, failures exit non-zero and are logged."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

JOB = Path(__file__).resolve().parents[2] / "cron" / "modelscan-job"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MODELSCAN_STATE_DIR": str(tmp_path / "state")}


def test_second_overlapping_run_exits_at_once(tmp_path: Path) -> None:
    """While one run holds the lock, a second exits 75 with a clear message."""
    env = _env(tmp_path)
    marker = tmp_path / "started"
    first = subprocess.Popen(
        [str(JOB), "crawl-x", "bash", "-c", f"touch {marker}; sleep 5"], env=env
    )
    try:
        for _ in range(100):
            if marker.exists():
                break
            time.sleep(0.05)
        second = subprocess.run(
            [str(JOB), "crawl-x", "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=3,
        )
        assert second.returncode == 75
        assert "another run holds" in second.stderr
    finally:
        first.kill()
        first.wait()


def test_failing_job_exits_non_zero_and_logs_why(tmp_path: Path) -> None:
    """A failing command's status is passed on and its output lands in the log."""
    env = _env(tmp_path)
    result = subprocess.run(
        [str(JOB), "crawl-y", "bash", "-c", "echo 'civitai: HTTP 503' >&2; exit 3"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 3
    log = (tmp_path / "state" / "log" / "crawl-y.log").read_text()
    assert "civitai: HTTP 503" in log
    assert "FAILED with status 3" in log
    ok = subprocess.run([str(JOB), "crawl-y", "true"], env=env)
    assert ok.returncode == 0
