"""Benchmark: pickle verdicts for a directory of small files, one process vs. many.

Generates (in a temporary folder, or ``--dir``) ``--files`` (default 300) small
files of the kinds a pickle scanner meets: plain pickles of every protocol,
hostile ones (os.system through GLOBAL, STACK_GLOBAL, INST, a cut stream, a
short FRAME), object-array ``.npy``, a pickle in a zip, in a zip inside a zip,
in a tar, in a gzip stream, in a 7z archive, and joblib-style inline arrays,
round-robin. Then prints, per file:

- one process: ``modelscan fingerprint --json DIR`` (start-up paid once);
- one process per file: ``modelscan fingerprint --json FILE`` for a sample of
  ``--sample`` files (default 30), scaled to the per-file cost;
- in process: ``fingerprint()`` over every file, no start-up at all.

Each figure is the median of ``--runs`` (3). The machine is shared: the load
average is printed first; quote figures taken when it is low.

    python bench/pickle_scan.py [--files 300] [--runs 3] [--sample 30] [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import pickle
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path


def _su(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _npy(payload: bytes) -> bytes:
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    text = (header + " " * (63 - (10 + len(header)) % 64) + "\n").encode()
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + payload


def _seven_zip(name: str, data: bytes) -> bytes:
    import py7zr

    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(data, name)
    return buf.getvalue()


def _kinds() -> list[tuple[str, Callable[[int], bytes]]]:
    evil = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
    stack = b"\x80\x04" + _su("os") + _su("system") + b"\x93" + _su("true") + b"\x85R."
    frame = b"\x80\x04\x95" + struct.pack("<Q", 1) + stack[2:]
    return [
        ("plain", lambda i: pickle.dumps({"i": i, "w": [0.5] * 50}, protocol=i % 6)),
        ("global", lambda i: evil),
        ("stack_global", lambda i: stack),
        ("inst", lambda i: b"(S'true'\nios\nsystem\n."),
        ("cut", lambda i: evil[:-1]),
        ("short_frame", lambda i: frame),
        ("npy", lambda i: _npy(evil)),
        ("zip", lambda i: _zip({"a/info.txt": evil, "readme": b"hi"})),
        ("zip_in_zip", lambda i: _zip({"inner.zip": _zip({"x.bin": evil})})),
        ("tar", lambda i: _tar("m.ckpt", evil)),
        ("gzip", lambda i: zlib.compress(evil)),
        ("7z", lambda i: _seven_zip("m.bin", evil)),
    ]


def make_files(folder: Path, count: int) -> list[Path]:
    """Write ``count`` small files, the kinds round-robin; return their paths."""
    kinds = _kinds()
    paths = []
    for i in range(count):
        name, build = kinds[i % len(kinds)]
        path = folder / f"{i:04}_{name}.bin"
        path.write_bytes(build(i))
        paths.append(path)
    return paths


def _run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _median(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def _in_process(paths: list[Path]) -> float:
    from modelscan.errors import FormatError
    from modelscan.scanner.fingerprint import fingerprint

    start = time.perf_counter()
    for p in paths:
        with contextlib.suppress(FormatError):  # none expected: all are scanned
            fingerprint(p)
    return time.perf_counter() - start


def main() -> None:
    """Print the per-file cost of each way of scanning the directory."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sample", type=int, default=30)
    ap.add_argument("--dir", type=Path)
    opts = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} (2 cores)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = opts.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = make_files(folder, opts.files)
        cmd = [sys.executable, "-m", "modelscan", "fingerprint", "--json"]
        one = _median(opts.runs, lambda: _run([*cmd, str(folder)]))
        sample = paths[:: max(1, len(paths) // opts.sample)][: opts.sample]
        each = _median(
            opts.runs, lambda: sum(_run([*cmd, str(p)]) for p in sample) / len(sample)
        )
        inproc = _median(opts.runs, lambda: _in_process(paths))
    n = len(paths)
    print(f"{n} files, {len(_kinds())} kinds, median of {opts.runs} runs")
    print(f"one process for the directory: {one:7.2f} s  {1000 * one / n:7.2f} ms/file")
    print(
        f"one process per file:          {each * n:7.2f} s  {1000 * each:7.2f} ms/file"
        f"  (sample of {len(sample)}, scaled)"
    )
    print(
        f"in process, no start-up:       {inproc:7.2f} s  {1000 * inproc / n:7.2f} "
        "ms/file"
    )
    print(f"one process vs. one per file:  {each * n / one:7.1f}x faster")


if __name__ == "__main__":
    main()
