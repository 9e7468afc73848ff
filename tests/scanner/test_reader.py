"""The single read feeding every digest, through fingerprint(), format by format.

Each file is written by the format's own library (safetensors, gguf's writer,
torch.save); every digest fingerprint() reports is recomputed independently
with hashlib, blake3 and zlib over the same bytes, for files shorter than one
buffer, tensors spanning buffer boundaries, files big enough for the threaded
lanes, with and without ``--all-hashes``, and overlapping torch views.
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import blake3
import numpy as np
import pytest

from modelscan.records import Fingerprint
from modelscan.scanner import identity, reader
from modelscan.scanner.fingerprint import THREADED_MIN_SIZE, fingerprint

# Odd element counts, so tensors start and end at odd places in the buffers;
# the last size makes the file pass THREADED_MIN_SIZE (one thread per lane).
SIZES = {
    "tiny": [(3, 5), (40, 40)],
    "boundaries": [(1021, 1031), (7, 3), (1500, 1499)],
    "threaded": [(2049, 1537), (3001, 1013), (1024, 2048)],
}


def _arrays(kind: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(len(kind))
    return {
        f"layers.{i}.weight": rng.standard_normal(shape).astype(np.float32)
        for i, shape in enumerate(SIZES[kind])
    }


def _check(fp: Fingerprint, path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Every digest equals hashlib/blake3/zlib over the same bytes."""
    data = path.read_bytes()
    assert fp.sha256 == hashlib.sha256(data).hexdigest()
    assert fp.autov1 == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    if fp.blake3 is not None:
        assert fp.blake3 == blake3.blake3(data).hexdigest()
        assert fp.crc32 == zlib.crc32(data)
    got = {t.name: t for t in fp.tensors}
    assert set(got) == set(arrays)
    for name, arr in arrays.items():
        assert got[name].digest == blake3.blake3(arr.tobytes()).hexdigest(), name
        start = identity.sketch_start(arr.size)
        want = None
        if start is not None:
            want = identity.to_sketch(arr.reshape(-1)[start : start + 256])
        assert got[name].sketch == want, name


@pytest.mark.parametrize("all_hashes", [False, True])
@pytest.mark.parametrize("kind", list(SIZES))
def test_safetensors_digests_match_independent_hashes(
    tmp_path: Path, kind: str, all_hashes: bool
) -> None:
    """sha256, AutoV3, BLAKE3/CRC32 and every tensor digest equal hashlib/blake3."""
    from safetensors.numpy import save_file

    arrays = _arrays(kind)
    path = tmp_path / "m.safetensors"
    save_file(arrays, str(path))
    fp = fingerprint(path, all_hashes=all_hashes)
    _check(fp, path, arrays)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert fp.autov3 == hashlib.sha256(data[8 + n :]).hexdigest()
    if kind == "threaded":
        assert path.stat().st_size >= THREADED_MIN_SIZE
    if kind == "tiny":
        assert path.stat().st_size < reader.BUFFER_SIZE


@pytest.mark.parametrize("all_hashes", [False, True])
@pytest.mark.parametrize("kind", list(SIZES))
def test_gguf_digests_match_independent_hashes(
    tmp_path: Path, kind: str, all_hashes: bool
) -> None:
    """A GGUF written by llama.cpp's writer: file and tensor digests from its bytes."""
    import gguf

    arrays = _arrays(kind)
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    for name, arr in arrays.items():
        writer.add_tensor(name, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    fp = fingerprint(path, all_hashes=all_hashes)
    assert fp.format == "gguf"
    assert fp.autov3 is None
    _check(fp, path, arrays)


@pytest.mark.parametrize("kind", list(SIZES))
def test_torch_zip_digests_match_independent_hashes(tmp_path: Path, kind: str) -> None:
    """torch.save's zip: the same digests as the arrays' bytes, all hashes on."""
    torch = pytest.importorskip("torch")
    arrays = _arrays(kind)
    path = tmp_path / "m.pt"
    torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, path)
    fp = fingerprint(path, all_hashes=True)
    assert fp.format == "torch-zip"
    _check(fp, path, arrays)


def test_overlapping_torch_views_across_buffers(tmp_path: Path) -> None:
    """Views sharing one storage larger than the threaded threshold digest alone."""
    torch = pytest.importorskip("torch")
    base = torch.randn(3000, 2000)  # 24 MB: several buffers, threaded lanes
    state = {
        "base": base,
        "rows": base[700:2300],  # contiguous, overlaps base across buffers
        "tail": base[2999:],
        "t": base.t(),  # strided: gathered apart from the single read
    }
    path = tmp_path / "views.pt"
    torch.save(state, path)
    fp = fingerprint(path, all_hashes=True)
    got = {t.name: t for t in fp.tensors}
    for name, tensor in state.items():
        arr = tensor.contiguous().numpy()
        assert got[name].digest == blake3.blake3(arr.tobytes()).hexdigest(), name
        start = identity.sketch_start(arr.size)
        want = identity.to_sketch(arr.reshape(-1)[start : start + 256])
        assert got[name].sketch == want, name
    assert fp.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


_PEAK = """
import sys
{work}
status = open("/proc/self/status").read()
print(next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM")))
"""


def _peak_kib(work: str) -> int:
    """Peak RSS (VmHWM, this process only) of a fresh interpreter doing ``work``."""
    out = subprocess.run(
        [sys.executable, "-c", _PEAK.format(work=work)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.split()[-1])


@pytest.mark.slow
def test_memory_stays_flat_on_a_1_gib_file(tmp_path: Path) -> None:
    """Fingerprinting 1 GiB (all hashes) adds tens of MB of RSS, not the file."""
    count, per = 64, 16 << 20
    header = {
        f"w{i}": {
            "dtype": "F16",
            "shape": [per // 2],
            "data_offsets": [i * per, (i + 1) * per],
        }
        for i in range(count)
    }
    raw = json.dumps(header).encode()
    path = tmp_path / "big.safetensors"
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + count * per)  # zeros, no disk blocks needed
    size = path.stat().st_size
    assert size > 1 << 30
    imports = "from modelscan.scanner.fingerprint import fingerprint"
    idle = _peak_kib(imports)
    busy = _peak_kib(
        f"{imports}\nfp = fingerprint({str(path)!r}, all_hashes=True)\n"
        "assert len(fp.tensors) == 64 and fp.blake3"
    )
    assert (busy - idle) * 1024 < 64 << 20  # the ring is 8 MiB
    assert busy * 1024 < size // 8


def test_lanes_balance_the_digests_over_the_cores() -> None:
    """Two cores: a lone SHA-256 gets its own thread, two SHA-256s one each."""
    sha, tensors, body, windows = "sha", "tensor blake3s", "body sha", "windows"
    plan = reader.plan_lanes
    work = [(0.61, sha), (0.17, tensors)]
    assert plan(work, cores=2, read_cost=0.08, with_reader=[windows]) == [
        [windows, tensors],
        [sha],
    ]
    work.append((0.61, body))
    lanes = plan(work, cores=2, read_cost=0.08, with_reader=[windows])
    assert len(lanes) == 2
    assert all({sha, body} & set(lane) for lane in lanes)
    assert plan(work, cores=4, read_cost=0.08) == [[], [sha], [body], [tensors]]
    assert plan(work, cores=1, read_cost=0.08) == [[sha, body, tensors]]
