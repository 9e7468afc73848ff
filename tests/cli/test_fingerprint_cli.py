"""The fingerprint command as a user runs it: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from safetensors.numpy import save_file

from modelscan.cli import cli


def _small_model(path: Path) -> None:
    save_file({"w": np.arange(4096, dtype=np.float32).reshape(64, 64)}, str(path))


def test_json_lines_one_record_per_file(tmp_path: Path) -> None:
    """--json prints one parseable object per file with the documented fields."""
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _small_model(a)
    shutil.copy(a, b)
    result = CliRunner().invoke(cli, ["fingerprint", "--json", str(a), str(b)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["path"] for r in records] == [str(a), str(b)]
    assert records[0]["sha256"] == records[1]["sha256"]
    documented = "autov1 autov2 autov3 civitai content_id weights_id structure_id"
    documented += " tensors claims pickle_safety metadata"
    for key in documented.split():
        assert key in records[0]
    assert records[0]["tensors"][0]["shape"] == [64, 64]
    assert "tensors" not in json.loads(
        CliRunner()
        .invoke(cli, ["fingerprint", "--json", "--no-tensors", str(a)])
        .output
    )


def test_bad_file_gives_one_line_and_exit_1_others_still_print(tmp_path: Path) -> None:
    """A truncated file fails as "modelscan: error: PATH: ..."; others still print."""
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    _small_model(good)
    bad.write_bytes(good.read_bytes()[:-10])
    result = CliRunner().invoke(cli, ["fingerprint", "--json", str(bad), str(good)])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line]
    assert len(errors) == 1
    assert errors[0].startswith(f"modelscan: error: {bad}: ")
    assert "Traceback" not in result.output
    assert json.loads(result.stdout.strip())["path"] == str(good)


def test_directory_walk_skips_non_model_files(tmp_path: Path) -> None:
    """A directory argument fingerprints model files found by magic, not configs."""
    _small_model(tmp_path / "weights.bin")  # safetensors content under another name
    (tmp_path / "config.json").write_text('{"hidden_size": 64}')
    (tmp_path / "README.md").write_text("# model card\n")
    result = CliRunner().invoke(cli, ["fingerprint", "--json", str(tmp_path)])
    assert result.exit_code == 0, result.output
    paths = [json.loads(line)["path"] for line in result.output.splitlines()]
    assert paths == [str(tmp_path / "weights.bin")]


def test_usage_error_exits_2() -> None:
    """No path at all is a usage error (exit 2)."""
    assert CliRunner().invoke(cli, ["fingerprint"]).exit_code == 2


def test_readable_summary_names_hashes(tmp_path: Path) -> None:
    """The default output shows the hashes and the Civitai spellings."""
    path = tmp_path / "m.safetensors"
    _small_model(path)
    out = CliRunner().invoke(cli, ["fingerprint", "--all-hashes", str(path)]).output
    assert "sha256" in out
    assert "content_id" in out
    assert "AutoV3" in out
    assert "CRC32" in out


def test_help_and_version_do_not_import_heavy_modules() -> None:
    """`modelscan --help` loads no numpy, torch, sqlalchemy or huggingface_hub."""
    code = (
        "import sys\nfrom modelscan.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "names = 'numpy torch sqlalchemy huggingface_hub gguf requests'.split()\n"
        "print('HEAVY', [m for m in names if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out


def test_every_command_reports_failures_with_the_same_prefix(tmp_path: Path) -> None:
    """A failing command other than fingerprint also prints 'modelscan: error: ...'."""
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    CliRunner().invoke(cli, ["db", "upgrade", "--db", db])
    result = CliRunner().invoke(cli, ["lineage", "--db", db, "0" * 64])
    assert result.exit_code == 1
    assert result.stderr.startswith("modelscan: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
