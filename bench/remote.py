"""Benchmark: requests and bytes per remote fingerprint, for each real file format.

Serves the real published test files (tests/fetch_models.py) and the tests' own
conversions of the MiniLM weights from tests/rangeserver.py (a Hub-like
``/resolve/`` origin that redirects to a second, CDN origin) on 127.0.0.1, then
fingerprints each through ``hf://`` and prints, as the server counted them:
requests (the resolve included), bytes sent, the file's metadata bytes, bytes
past the metadata, sketches read, whether the file was read whole, and wall
time. The budget is 40 requests and metadata + 1 MiB per file. A last row
shows what a server that ignores Range costs before it is refused.

    python bench/remote.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fetch_models  # noqa: E402
from rangeserver import RangeServer, minilm_conversions  # noqa: E402

from modelscan.errors import ModelscanError  # noqa: E402
from modelscan.registry.remote import fetch_remote_fingerprint  # noqa: E402
from modelscan.scanner.fingerprint import open_reader, read_layout  # noqa: E402
from modelscan.scanner.formats.torch_zip import _eocd, read_members  # noqa: E402

ROWS = [
    ("minilm", "safetensors, MiniLM-L6 (real)"),
    ("minilm_f16", "safetensors F16 (MiniLM cast)"),
    ("silero_safetensors", "safetensors, silero VAD (real)"),
    ("smollm_gguf", "GGUF Q4_1, SmolLM2-135M (real)"),
    ("minilm_gguf_f32", "GGUF F32 (MiniLM conversion)"),
    ("minilm_gguf_q8_0", "GGUF Q8_0 (MiniLM conversion)"),
    ("whisperx_bin", "torch zip, whisperx Lightning (real)"),
    ("minilm_torch_zip", "torch zip (MiniLM torch.save)"),
    ("silero_jit", "TorchScript, silero VAD (real)"),
    ("rxn_bin", "torch legacy, rxnmapper (real)"),
    ("minilm_torch_legacy", "torch legacy (MiniLM)"),
    ("lpips_alex", "torch legacy, lpips (real, small)"),
    ("silero_ggml", "GGML, silero (real, small)"),
    ("rxn_training_args", "pickle, training_args (real)"),
]


def metadata_bytes(path: Path) -> int:
    """Header, key-values, zip directory and pickles: what the budget allows whole."""
    with open_reader(path) as reader:
        layout = read_layout(reader)
        if layout.format == "safetensors":
            return layout.body_offset or 0
        if layout.format in ("torch-zip", "torchscript"):
            members = sorted(read_members(reader), key=lambda m: m.header_offset)
            cd = _eocd(reader)[3]
            ends = [m.header_offset for m in members[1:]] + [cd]
            meta = sum(
                e - m.header_offset
                for m, e in zip(members, ends, strict=True)
                if "/data/" not in m.name
            )
            return meta + reader.size - cd
        if layout.format == "ggml":
            return 8  # magic and version: the rest is hashed at file level only
        starts = [t.offset for t in layout.tensors]
        return min(starts) if starts else reader.size  # a plain pickle: all of it


def main() -> None:
    """Print the table."""
    files = fetch_models.fetch_all()
    with tempfile.TemporaryDirectory() as tmp:
        files.update(minilm_conversions(files["minilm"], Path(tmp)))
        with RangeServer() as server:
            for key, path in files.items():
                server.add(f"o/{key}", path.name, path)
            _table(server, files)
            _no_range(server, files)


def _table(server: RangeServer, files: dict[str, Path]) -> None:
    env = {"HF_ENDPOINT": server.url}
    head = f"{'file':<38}{'size':>12}{'meta':>11}{'req':>5}{'bytes':>11}"
    print(head + f"{'past meta':>11}{'sketch':>8}{'whole':>7}{'ms':>7}")
    for key, label in ROWS:
        path = files[key]
        server.reset()
        start = time.perf_counter()
        fp = fetch_remote_fingerprint(f"hf://o/{key}/{path.name}", env=env)
        ms = (time.perf_counter() - start) * 1000
        sent, requests = server.bytes_sent(), server.count()
        meta = metadata_bytes(path)
        sketches = sum(1 for t in fp.tensors if t.sketch is not None)
        whole = "yes" if fp.remote and fp.remote.whole else ""
        print(
            f"{label:<38}{fp.size:>12,}{meta:>11,}{requests:>5}{sent:>11,}"
            f"{max(0, sent - meta):>11,}{sketches:>8}{whole:>7}{ms:>7.0f}"
        )


def _no_range(server: RangeServer, files: dict[str, Path]) -> None:
    server.reset()
    server.ignore_range = True
    path = files["minilm"]
    try:
        fetch_remote_fingerprint(
            f"hf://o/minilm/{path.name}", env={"HF_ENDPOINT": server.url}
        )
    except ModelscanError as exc:
        print(f"\nno-Range server, {path.stat().st_size:,}-byte file: {exc}")
        print(
            f"  refused after {server.count()} requests, {server.bytes_sent():,} bytes"
        )
    finally:
        server.ignore_range = False


if __name__ == "__main__":
    main()
