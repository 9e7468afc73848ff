"""Benchmark: ``modelscan fingerprint`` against one hashlib SHA-256 pass over the file.

Makes (once, cached) 1 GiB files of 64 float16 matrices in three containers
(safetensors, GGUF F16, a torch zip of the same tensors), then for each prints:

- whole process, as a user meets it: ``modelscan fingerprint --json FILE`` as a
  process against a Python process hashing the same cached file with
  ``hashlib.sha256`` in 1 MiB reads; runs alternate A B A B, the ratio is taken
  pair by pair, median of ``--runs`` (5); the fingerprint's user and system CPU
  seconds and peak RSS (``os.wait4`` of the child);
- in process: ``fingerprint()`` against the same hashlib loop in this process,
  alternating, median of ``--runs``;
- first, start-up: ``modelscan fingerprint --json`` of a 64x64 float16
  safetensors file against ``python -c pass`` (median of at least 10).

The children reuse bytecode (kept under ``--dir``), as an installed package or
an editable checkout after its first run does, even when PYTHONDONTWRITEBYTECODE
is set here; ``--compile-each-run`` compiles modelscan's modules in every run
instead (25-35 ms more start-up), as that variable makes a fresh checkout do.

``--explore`` also times the read pipeline's alternatives on the safetensors
file (buffer sizes and counts, threads or not, ``posix_fadvise`` SEQUENTIAL,
blake3's own threads, ``readinto`` against ``os.preadv``).

Targets on the 2-core machine (issue 11): safetensors <= 1.3x, GGUF <= 1.05x,
torch zip <= 1.05x, whole process. The machine is shared: the load average is
printed first; quote figures taken when it is low.

    python bench/fingerprint.py [--size-gib 1] [--runs 5] [--dir DIR] [--explore]
        [--compile-each-run]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

SHAPE = (4096, 2048)  # 16 MiB of F16 per matrix: 64 of them in 1 GiB
SHA256_CHILD = (
    "import hashlib,sys\n"
    "h=hashlib.sha256(); b=bytearray(1<<20); v=memoryview(b)\n"
    "with open(sys.argv[1],'rb',buffering=0) as f:\n"
    "    while n:=f.readinto(b): h.update(v[:n])\n"
    "print(h.hexdigest())\n"
)


def _count(total: int) -> int:
    return max(1, total // (SHAPE[0] * SHAPE[1] * 2))


def _random_matrices(total: int, seed: int = 0) -> list[bytes]:
    """The same float16 matrices for every container (finite values, reproducible)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal(SHAPE, dtype=np.float32).astype("<f2").tobytes()
        for _ in range(_count(total))
    ]


def make_safetensors(
    path: Path, mats: list[bytes], shape: tuple[int, int] = SHAPE
) -> None:
    per = len(mats[0])
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    for i in range(len(mats)):
        header[f"layers.{i}.weight"] = {
            "dtype": "F16",
            "shape": list(shape),
            "data_offsets": [i * per, (i + 1) * per],
        }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for m in mats:
            f.write(m)


def _gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def make_gguf(path: Path, mats: list[bytes]) -> None:
    per = len(mats[0])
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(mats), 1))
    out += _gguf_str("general.architecture") + struct.pack("<I", 8) + _gguf_str("llama")
    for i in range(len(mats)):
        out += _gguf_str(f"blk.{i}.ffn.weight") + struct.pack("<I", 2)
        out += struct.pack("<QQ", SHAPE[1], SHAPE[0])
        out += struct.pack("<IQ", 1, i * per)  # type 1 = F16
    out += b"\0" * (-len(out) % 32)
    with path.open("wb") as f:
        f.write(out)
        for m in mats:
            f.write(m)


def make_torch_zip(path: Path, mats: list[bytes]) -> None:
    import torch

    state = {
        f"layers.{i}.weight": torch.frombuffer(bytearray(m), dtype=torch.float16)
        .reshape(SHAPE)
        .clone()
        for i, m in enumerate(mats)
    }
    torch.save(state, path)


MAKERS: dict[str, tuple[str, Callable[[Path, list[bytes]], None]]] = {
    "safetensors": ("safetensors", make_safetensors),
    "gguf F16": ("gguf", make_gguf),
    "torch zip": ("pt", make_torch_zip),
}


def _modelscan() -> list[str]:
    script = Path(sys.executable).with_name("modelscan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "modelscan"]


# The children's environment: with PYTHONDONTWRITEBYTECODE set (as in some shells
# and containers), a checkout's modules are compiled again by every run, 25-35 ms
# of start-up a user's installed package (or editable checkout) does not pay.
# The children keep their bytecode under the bench directory (PYTHONPYCACHEPREFIX,
# nothing written into the checkout); --compile-each-run removes the checkout's
# part of it and forbids writing, so the standard library's and the installed
# packages' bytecode is used and modelscan's modules are compiled every run.
CHILD_ENV = dict(os.environ)
REPO = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = ("modelscan", "scanner", "registry", "db")  # pyproject's package-dir


def _child_bytecode(cache: Path, files: list[Path], *, compile_each_run: bool) -> None:
    CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(cache)
    CHILD_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    if not compile_each_run:
        return
    # Bytecode for everything the runs import, then none for the checkout's files.
    for path in files:
        _child([*_modelscan(), "fingerprint", "--json", str(path)])
    _child([sys.executable, "-c", SHA256_CHILD, str(files[0])])
    mirror = cache / REPO.relative_to(REPO.anchor)
    for package in PACKAGE_DIRS:  # not .venv: the installed packages keep theirs
        shutil.rmtree(mirror / package, ignore_errors=True)
    CHILD_ENV["PYTHONDONTWRITEBYTECODE"] = "1"


def _child(cmd: list[str]) -> tuple[float, float, float, float]:
    """Run ``cmd``; return (wall s, user s, sys s, peak RSS MiB) from wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=CHILD_ENV)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd} exited {proc.returncode}")
    return wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024


def _sha256_here(path: Path) -> float:
    start = time.perf_counter()
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return time.perf_counter() - start


def _fingerprint_here(path: Path) -> float:
    from modelscan.scanner.fingerprint import fingerprint

    start = time.perf_counter()
    fingerprint(path)
    return time.perf_counter() - start


def whole_process(path: Path, runs: int) -> dict[str, float]:
    a_cmd = [*_modelscan(), "fingerprint", "--json", str(path)]
    b_cmd = [sys.executable, "-c", SHA256_CHILD, str(path)]
    _child(a_cmd), _child(b_cmd)  # warm the page cache and the imports
    pairs = [(_child(a_cmd), _child(b_cmd)) for _ in range(runs)]
    return {
        "ratio": statistics.median(a[0] / b[0] for a, b in pairs),
        "fp_wall": statistics.median(a[0] for a, _ in pairs),
        "sha_wall": statistics.median(b[0] for _, b in pairs),
        "fp_user": statistics.median(a[1] for a, _ in pairs),
        "fp_sys": statistics.median(a[2] for a, _ in pairs),
        "fp_rss": max(a[3] for a, _ in pairs),
        "sha_cpu": statistics.median(b[1] + b[2] for _, b in pairs),
    }


def start_up(path: Path, runs: int) -> tuple[float, float, float]:
    """Median wall s of ``fingerprint --json`` of a tiny file, of ``python -c pass``."""
    a_cmd = [*_modelscan(), "fingerprint", "--json", str(path)]
    b_cmd = [sys.executable, "-c", "pass"]
    _child(a_cmd), _child(b_cmd)
    pairs = [(_child(a_cmd), _child(b_cmd)) for _ in range(runs)]
    return (
        statistics.median(a[0] for a, _ in pairs),
        statistics.median(a[1] + a[2] for a, _ in pairs),
        statistics.median(b[0] for _, b in pairs),
    )


def in_process(path: Path, runs: int) -> float:
    _fingerprint_here(path)
    pairs = [(_fingerprint_here(path), _sha256_here(path)) for _ in range(runs)]
    return statistics.median(a / b for a, b in pairs)


def explore(path: Path, runs: int) -> None:
    """Time the read pipeline's alternatives on one file (module docstring)."""
    from modelscan.scanner import hashing, reader
    from modelscan.scanner.fingerprint import open_reader, read_layout

    with open_reader(path) as r:
        layout = read_layout(r)
        spans = [(t.offset, t.offset + t.nbytes) for t in layout.tensors]
        body = layout.body_offset or 0

        def lanes(b3_threads: bool = False) -> list[list[hashing.Sink]]:
            digests = hashing.SpanDigestSink(spans)
            if b3_threads:
                digests = _AutoThreadsSpans(spans)
            return [[hashing.Sha256Sink()], [digests], [hashing.Sha256Sink(body)]]

        def timed(label: str, run: Callable[[], None]) -> None:
            run()
            t = statistics.median(_timed(run) for _ in range(runs))
            print(f"  {label:<44}{t:>7.3f} s")

        print(f"read pipeline on {path.name} (sha256 + body sha256 + tensor BLAKE3s):")
        for size in (1 << 20, 4 << 20, 16 << 20):
            for count in (4, 16):
                for inline in (True, False):
                    where = "reader hashes lane 0" if inline else "a thread per lane"
                    timed(
                        f"{size >> 20} MiB x {count}, {where}",
                        lambda s=size, c=count, i=inline: reader.pump(
                            r.fd,
                            r.size,
                            lanes(),
                            threaded=True,
                            buffer_size=s,
                            buffers=c,
                            inline_first=i,
                        ),
                    )
        timed(
            "default, no threads",
            lambda: reader.pump(r.fd, r.size, lanes(), threaded=False),
        )
        timed("default + posix_fadvise SEQUENTIAL", lambda: _fadvised(r, lanes()))
        timed(
            "default + blake3 max_threads=AUTO",
            lambda: reader.pump(r.fd, r.size, lanes(True), threaded=True),
        )
        timed("read only, readinto 4 MiB", lambda: _read_only(path, os_preadv=False))
        timed("read only, os.preadv 4 MiB", lambda: _read_only(path, os_preadv=True))


class _AutoThreadsSpans:
    """Per-tensor BLAKE3 with blake3's own Rayon threads (an alternative measured)."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        import blake3

        self._spans = spans
        self._h = [blake3.blake3(max_threads=blake3.blake3.AUTO) for _ in spans]

    def feed(self, offset: int, data: memoryview) -> None:
        end = offset + len(data)
        for (lo, hi), h in zip(self._spans, self._h, strict=True):
            a, b = max(lo, offset), min(hi, end)
            if a < b:
                h.update(data[a - offset : b - offset])


def _timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _fadvised(r: object, lanes: list) -> None:
    from modelscan.scanner import reader

    fd, size = r.fd, r.size  # type: ignore[attr-defined]
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    reader.pump(fd, size, lanes, threaded=True)


def _read_only(path: Path, *, os_preadv: bool) -> None:
    buf = bytearray(4 << 20)
    with path.open("rb", buffering=0) as f:
        if os_preadv:
            pos = 0
            while n := os.preadv(f.fileno(), [buf], pos):
                pos += n
        else:
            while f.readinto(buf):
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument(
        "--dir", type=Path, default=Path.home() / ".cache" / "modelscan-bench"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--formats", nargs="*", default=list(MAKERS))
    parser.add_argument("--explore", action="store_true")
    parser.add_argument(
        "--compile-each-run",
        action="store_true",
        help="children compile modelscan's modules every run (PYTHONDONTWRITEBYTECODE)",
    )
    parser.add_argument("--make-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    total = int(args.size_gib * (1 << 30))
    paths = {
        label: args.dir / f"bench-{total}-{SHAPE[0]}x{SHAPE[1]}.{ext}"
        for label, (ext, _make) in MAKERS.items()
        if label in args.formats
    }
    if args.make_only:
        mats = _random_matrices(total)
        for label, path in paths.items():
            if not path.exists():
                MAKERS[label][1](path, mats)
        return
    if not all(p.exists() for p in paths.values()):
        # In a child: a child's peak RSS on Linux starts from its parent's.
        subprocess.run([sys.executable, __file__, "--make-only", *sys.argv[1:]])
    small = args.dir / "startup-64x64.safetensors"
    if not small.exists():
        make_safetensors(small, [bytes(64 * 64 * 2)], shape=(64, 64))
    _child_bytecode(
        args.dir / "pycache",
        [small, *paths.values()],
        compile_each_run=args.compile_each_run,
    )
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores); {args.runs} runs")
    how = "compiled every run" if args.compile_each_run else "bytecode cached"
    print(f"children: modelscan's modules {how}")
    wall, cpu, bare = start_up(small, max(args.runs, 10))
    print(
        f"start-up (fingerprint --json, 64x64 F16 safetensors): {wall * 1000:.0f} ms"
        f" wall, {cpu * 1000:.0f} ms CPU; python -c pass {bare * 1000:.0f} ms"
    )
    whole = {label: whole_process(path, args.runs) for label, path in paths.items()}
    head = ("file", "ratio", "fp s", "sha s", "user", "sys", "sha cpu", "RSS MB")
    print("{:<13}{:>7}{:>7}{:>7}{:>7}{:>7}{:>8}{:>8}{:>9}".format(*head, "in-proc"))
    for label, path in paths.items():
        w = whole[label]
        inproc = in_process(path, args.runs)  # after every child: see above
        print(
            f"{label:<13}{w['ratio']:>6.2f}x{w['fp_wall']:>7.2f}{w['sha_wall']:>7.2f}"
            f"{w['fp_user']:>7.2f}{w['fp_sys']:>7.2f}{w['sha_cpu']:>8.2f}"
            f"{w['fp_rss']:>8.0f}"
            f"{inproc:>8.2f}x"
        )
    if args.explore and "safetensors" in paths:
        explore(paths["safetensors"], args.runs)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
