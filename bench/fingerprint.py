"""Benchmark: ``modelscan fingerprint`` against one hashlib SHA-256 pass over the file.

Makes (once, cached) a 2 GiB safetensors file of F16/BF16 tensors and a 2 GiB GGUF
file of F16 tensors, then for each prints, measured in this run on the same cached
file: hashlib.sha256 wall time (the baseline: OpenSSL SHA-256 over 1 MiB reads),
fingerprint wall time, their ratio, and the fingerprint's peak RSS (in a child
process, so the parent's own memory does not count).

Targets on the 2-core machine: GGUF <= 1.05x, safetensors (with AutoV3) <= 1.3x,
peak RSS < 150 MB.

    python bench/fingerprint.py [--size-gib 2] [--dir ~/.cache/modelscan-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import struct
import subprocess
import sys
import time
from pathlib import Path

TENSOR_SHAPE = (4096, 4096)  # 32 MiB of F16 per tensor


def _write_random(f, nbytes: int) -> None:
    left = nbytes
    while left:
        n = min(left, 8 << 20)
        f.write(os.urandom(n))
        left -= n


def make_safetensors(path: Path, total: int) -> None:
    per = TENSOR_SHAPE[0] * TENSOR_SHAPE[1] * 2
    count = max(1, total // per)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    for i in range(count):
        dtype = "F16" if i % 2 == 0 else "BF16"
        header[f"layers.{i}.weight"] = {
            "dtype": dtype,
            "shape": list(TENSOR_SHAPE),
            "data_offsets": [i * per, (i + 1) * per],
        }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        _write_random(f, count * per)


def _gguf_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def make_gguf(path: Path, total: int) -> None:
    per = TENSOR_SHAPE[0] * TENSOR_SHAPE[1] * 2
    count = max(1, total // per)
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, count, 1))
    out += _gguf_str("general.architecture") + struct.pack("<I", 8) + _gguf_str("llama")
    for i in range(count):
        out += _gguf_str(f"blk.{i}.ffn.weight") + struct.pack("<I", 2)
        out += struct.pack("<QQ", TENSOR_SHAPE[1], TENSOR_SHAPE[0])
        out += struct.pack("<IQ", 1, i * per)  # type 1 = F16
    out += b"\0" * (-len(out) % 32)
    with path.open("wb") as f:
        f.write(out)
        _write_random(f, count * per)


def sha256_time(path: Path) -> float:
    start = time.perf_counter()
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return time.perf_counter() - start


def fingerprint_child(path: Path) -> tuple[float, float]:
    """Run fingerprint() in a child; return (wall seconds, peak RSS MB)."""
    code = (
        "import sys,time,resource\n"
        "from modelscan.scanner.fingerprint import fingerprint\n"
        "t=time.perf_counter(); fp=fingerprint(sys.argv[1]); t=time.perf_counter()-t\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(t, rss, len(fp.tensors))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument(
        "--dir", type=Path, default=Path.home() / ".cache" / "modelscan-bench"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    total = int(args.size_gib * (1 << 30))
    files = {
        "safetensors (F16/BF16, with AutoV3)": (
            args.dir / f"bench-{total}.safetensors",
            make_safetensors,
        ),
        "gguf (F16)": (args.dir / f"bench-{total}.gguf", make_gguf),
    }
    print(f"{'file':<38}{'sha256 s':>10}{'fp s':>8}{'ratio':>8}{'peak RSS MB':>13}")
    for label, (path, make) in files.items():
        if not path.exists():
            make(path, total)
        sha256_time(path)  # warm the page cache
        base = min(sha256_time(path) for _ in range(args.repeat))
        runs = [fingerprint_child(path) for _ in range(args.repeat)]
        wall = min(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        print(f"{label:<38}{base:>10.2f}{wall:>8.2f}{wall / base:>8.2f}{rss:>13.0f}")
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"(bench process peak RSS {self_rss:.0f} MB; "
        f"file size {total / (1 << 30):.2f} GiB)"
    )


if __name__ == "__main__":
    main()
