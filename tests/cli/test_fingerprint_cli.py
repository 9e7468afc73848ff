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


_LOGGING_AT_EXIT = """
import atexit, sys
def report():
    if "logging" not in sys.modules:
        print("LOGGING none")
        return
    import logging
    root = logging.getLogger()
    formats = [h.formatter._fmt for h in root.handlers if h.formatter]
    print("LOGGING", logging.getLevelName(root.level), formats)
atexit.register(report)
from modelscan.cli import main
sys.argv = ["modelscan", *{args!r}]
main()
"""


def _logging_after(args: list[str]) -> str:
    code = _LOGGING_AT_EXIT.format(args=args)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.splitlines()[-1]


def test_logging_is_set_up_where_something_logs(tmp_path: Path) -> None:
    """A local fingerprint imports no logging; -v and other commands log as before."""
    path = tmp_path / "m.safetensors"
    _small_model(path)
    form = "['%(levelname)s %(name)s: %(message)s']"
    assert _logging_after(["fingerprint", "--json", str(path)]) == "LOGGING none"
    verbose = ["-v", "fingerprint", "--json", str(path)]
    assert _logging_after(verbose) == f"LOGGING INFO {form}"
    assert _logging_after(["-vv", "status", "--help"]) == f"LOGGING DEBUG {form}"
    assert _logging_after(["status", "--help"]) == f"LOGGING WARNING {form}"


def test_every_command_reports_failures_with_the_same_prefix(tmp_path: Path) -> None:
    """A failing command other than fingerprint also prints 'modelscan: error: ...'."""
    db = f"sqlite:///{tmp_path / 'index.sqlite'}"
    CliRunner().invoke(cli, ["db", "upgrade", "--db", db])
    result = CliRunner().invoke(cli, ["lineage", "--db", db, "0" * 64])
    assert result.exit_code == 1
    assert result.stderr.startswith("modelscan: error: ")
    assert len(result.stderr.strip().splitlines()) == 1


# --- pickle verdicts from the command line ------------------------------------------


def _hostile(marker: Path) -> bytes:
    cmd = f"touch {marker}".encode()
    return b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R."


def test_a_directory_of_pickles_in_one_process(tmp_path: Path) -> None:
    """200 small pickles (one hostile) in one run: one record each, danger named."""
    import pickle
    import time

    marker = tmp_path / "pwned"
    models = tmp_path / "models"
    models.mkdir()
    for i in range(199):
        (models / f"m{i:03}.pkl").write_bytes(pickle.dumps({"i": i}, protocol=i % 6))
    (models / "evil.bin").write_bytes(_hostile(marker))
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["fingerprint", "--json", str(models)])
    elapsed = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 200
    evil = next(r for r in records if r["path"].endswith("evil.bin"))
    assert evil["pickle_safety"]["dangerous"] == ["os.system"]
    assert all(r["pickle_safety"]["verdict"] == "safe" for r in records if r != evil)
    assert not marker.exists()
    assert elapsed < 20  # well under 0.1 s a file even on a loaded machine


def test_broken_pickle_prints_its_verdict_and_exits_1(tmp_path: Path) -> None:
    """A pickle cut after its call: the verdict is printed, the cut on stderr, 1."""
    path = tmp_path / "cut.pkl"
    path.write_bytes(_hostile(tmp_path / "pwned")[:-1])
    result = CliRunner().invoke(cli, ["fingerprint", str(path)])
    assert result.exit_code == 1
    assert "DANGEROUS: os.system" in result.stdout
    assert "pickle error" in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"modelscan: error: {path}: broken pickle: ")


def test_summary_tells_the_three_levels_apart(tmp_path: Path) -> None:
    """safe, unsafe with names to review, unsafe with the dangerous call named."""
    import argparse
    import pickle

    safe, review, danger = (tmp_path / n for n in ("a.pkl", "b.pkl", "c.pkl"))
    safe.write_bytes(pickle.dumps({"lr": 0.1}))
    review.write_bytes(pickle.dumps(argparse.Namespace(lr=0.1)))
    danger.write_bytes(_hostile(tmp_path / "pwned"))
    out = CliRunner().invoke(cli, ["fingerprint", str(safe), str(review), str(danger)])
    blocks = out.stdout.split(str(tmp_path))[1:]
    assert "pickle       safe: 0 globals" in blocks[0]
    assert "not on the allowlist: argparse.Namespace" in blocks[1]
    assert "DANGEROUS: os.system" in blocks[2]
    assert "os.system: runs a command or a process" in blocks[2]


def test_look_alikes_in_a_directory_are_skipped_but_refused_by_name(
    tmp_path: Path,
) -> None:
    """A gzip of text found by a walk is skipped; named on the command line, refused."""
    import gzip

    (tmp_path / "log.gz").write_bytes(gzip.compress(b"plain text\n" * 20))
    _small_model(tmp_path / "m.safetensors")
    result = CliRunner().invoke(cli, ["fingerprint", "--json", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    named = CliRunner().invoke(cli, ["fingerprint", str(tmp_path / "log.gz")])
    assert named.exit_code == 1
    assert "holding no pickle or array" in named.stderr


def test_cut_plain_pickle_points_to_its_error(tmp_path: Path) -> None:
    """A cut pickle of plain data: unsafe, and the summary points to the error."""
    import pickle

    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"lr": [0.1] * 20}, protocol=4)[:-3])
    result = CliRunner().invoke(cli, ["fingerprint", str(path)])
    assert result.exit_code == 1
    assert "unsafe: 0 globals; see the pickle error and notes" in result.stdout
