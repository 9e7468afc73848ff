"""fingerprint() on real published files, and cross-container ground truth.

The MiniLM weights (byte-identical to Hugging Face's all-MiniLM-L6-v2) are
re-saved with torch (zip and legacy), written as GGUF with llama.cpp's writer,
cast to float16, perturbed and shuffled; the identities must follow.
"""

from __future__ import annotations

import hashlib
import statistics
import struct
from collections.abc import Callable
from functools import partial
from pathlib import Path

import blake3
import numpy as np
import pytest

from modelscan.errors import FormatError, UnknownFormat, UnreadableFile
from modelscan.records import Fingerprint
from modelscan.scanner import identity
from modelscan.scanner.fingerprint import fingerprint

MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(scope="module")
def minilm(model_files: dict[str, Path]) -> Path:
    return model_files["minilm"]


@pytest.fixture(scope="module")
def minilm_fp(minilm: Path) -> Fingerprint:
    return fingerprint(minilm, all_hashes=True)


@pytest.fixture(scope="module")
def minilm_arrays(minilm: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(minilm))


def _sketches(fp: Fingerprint) -> list[tuple[str, tuple[int, ...], bytes | None]]:
    return [(t.name, t.shape, t.sketch) for t in fp.tensors]


def _median_r(a: Fingerprint, b: Fingerprint) -> float:
    return statistics.median(
        identity.compare_sketches(_sketches(a), _sketches(b)).values()
    )


def test_minilm_file_hashes_match_published_and_independent(
    minilm: Path, minilm_fp: Fingerprint
) -> None:
    """sha256 is the HF LFS oid; other hashes equal hashlib/blake3/zlib on the bytes."""
    import zlib

    data = minilm.read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    assert minilm_fp.sha256 == MINILM_SHA256 == hashlib.sha256(data).hexdigest()
    assert minilm_fp.autov2 == MINILM_SHA256[:10]
    assert minilm_fp.autov1 == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    assert minilm_fp.autov3 == hashlib.sha256(data[8 + n :]).hexdigest()
    assert minilm_fp.blake3 == blake3.blake3(data).hexdigest()
    assert minilm_fp.crc32 == zlib.crc32(data)
    civ = minilm_fp.civitai_hashes()
    assert civ["AutoV3"] == minilm_fp.autov3[:12].upper()
    assert civ["CRC32"] == zlib.crc32(data).to_bytes(4, "little").hex().upper()


def test_minilm_tensor_digests_are_blake3_of_the_arrays(
    minilm_fp: Fingerprint, minilm_arrays: dict[str, np.ndarray]
) -> None:
    """Each tensor digest is BLAKE3 of the array bytes safetensors itself loads."""
    assert minilm_fp.format == "safetensors"
    assert len(minilm_fp.tensors) == 104
    assert minilm_fp.metadata == {"format": "pt"}
    for t in minilm_fp.tensors:
        arr = minilm_arrays[t.name]
        assert t.shape == arr.shape
        assert (
            t.digest == blake3.blake3(np.ascontiguousarray(arr).tobytes()).hexdigest()
        )
    assert minilm_fp.parameter_count == sum(a.size for a in minilm_arrays.values())


def test_small_file_autov1_is_empty_hash(model_files: dict[str, Path]) -> None:
    """A file under 1 MiB gets A1111's e3b0c442, and Civitai's AutoV1 is left empty."""
    fp = fingerprint(model_files["silero_ggml"])
    assert fp.size < 1 << 20
    assert fp.autov1 == "e3b0c442"
    assert fp.civitai_hashes()["AutoV1"] is None
    assert fp.format == "ggml"
    assert fp.tensors == ()


@pytest.fixture(scope="module")
def torch_mod():
    import os

    try:
        import torch as t
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("torch (test extra) is not installed")
        pytest.skip("torch not installed")
    return t


@pytest.fixture(scope="module")
def converted(tmp_path_factory, torch_mod, minilm_arrays) -> dict[str, Path]:
    """MiniLM re-saved in other containers and precisions, and perturbed copies."""
    import gguf

    out = tmp_path_factory.mktemp("converted")
    state = {k: torch_mod.from_numpy(v.copy()) for k, v in minilm_arrays.items()}
    torch_mod.save(state, out / "zip.bin")
    torch_mod.save(state, out / "legacy.bin", _use_new_zipfile_serialization=False)
    writer = gguf.GGUFWriter(str(out / "f32.gguf"), "bert")
    for name, arr in minilm_arrays.items():
        writer.add_tensor(name, np.ascontiguousarray(arr))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    floats = {k: v for k, v in minilm_arrays.items() if v.dtype == np.float32}
    save_file(
        {k: v.astype(np.float16) for k, v in floats.items()},
        str(out / "f16.safetensors"),
    )
    noisy = {
        k: (v + 0.05 * v.std() * rng.standard_normal(v.shape)).astype(np.float32)
        for k, v in floats.items()
    }
    save_file(noisy, str(out / "finetune.safetensors"))
    shuffled = {
        k: rng.permutation(v.reshape(-1)).reshape(v.shape) for k, v in floats.items()
    }
    save_file(shuffled, str(out / "other.safetensors"))
    return {p.stem: p for p in out.iterdir()}


def test_torch_copies_share_content_id(minilm_fp: Fingerprint, converted) -> None:
    """torch.save (zip and legacy) of the same state dict gives the same content_id."""
    for key, fmt in (("zip", "torch-zip"), ("legacy", "torch-legacy")):
        fp = fingerprint(converted[key])
        assert fp.format == fmt
        assert fp.sha256 != minilm_fp.sha256
        assert fp.content_id == minilm_fp.content_id
        assert fp.weights_id == minilm_fp.weights_id
        assert fp.structure_id == minilm_fp.structure_id
        assert fp.pickle_safety is not None
        assert fp.pickle_safety.verdict == "safe"


def test_gguf_copy_shares_weights_id(minilm_fp: Fingerprint, converted) -> None:
    """The same weights written as unquantized GGUF give the same weights_id."""
    fp = fingerprint(converted["f32"])
    assert fp.format == "gguf"
    assert fp.weights_id == minilm_fp.weights_id
    assert sorted(t.shape for t in fp.tensors) == sorted(
        t.shape for t in minilm_fp.tensors
    )


def test_sketch_correlations_separate_related_from_unrelated(
    minilm_fp: Fingerprint, converted
) -> None:
    """f16 cast > 0.99, simulated fine-tune > 0.95, shuffled weights |r| < 0.2."""
    f16 = fingerprint(converted["f16"])
    assert f16.content_id != minilm_fp.content_id
    assert (
        min(identity.compare_sketches(_sketches(minilm_fp), _sketches(f16)).values())
        > 0.99
    )
    assert _median_r(minilm_fp, fingerprint(converted["finetune"])) > 0.95
    assert abs(_median_r(minilm_fp, fingerprint(converted["other"]))) < 0.2


def test_noncontiguous_view_is_digested_over_its_own_elements(
    tmp_path: Path, torch_mod
) -> None:
    """A transposed view and a shared-storage slice digest like contiguous copies."""
    base = torch_mod.arange(64 * 48, dtype=torch_mod.float32).reshape(64, 48)
    state = {"t": base.t(), "slice": base[10:20], "base": base}
    torch_mod.save(state, tmp_path / "views.pt")
    fp = fingerprint(tmp_path / "views.pt")
    got = {t.name: t for t in fp.tensors}
    for name, tensor in state.items():
        want = blake3.blake3(tensor.contiguous().numpy().tobytes()).hexdigest()
        assert got[name].digest == want, name
        assert got[name].shape == tuple(tensor.shape)


def test_gguf_quantized_sketch_from_dequantized_blocks(
    model_files: dict[str, Path],
) -> None:
    """SmolLM2 Q4_1: 272 tensors; quantized sketches equal gguf's own dequantization."""
    import gguf

    fp = fingerprint(model_files["smollm_gguf"])
    assert fp.format == "gguf"
    assert len(fp.tensors) == 272
    reader = gguf.GGUFReader(str(model_files["smollm_gguf"]))
    rt = {t.name: t for t in reader.tensors}
    checked = 0
    for t in fp.tensors:
        if t.dtype != "Q4_1" or t.sketch is None:
            continue
        values = gguf.quants.dequantize(
            rt[t.name].data, rt[t.name].tensor_type
        ).reshape(-1)
        start = identity.sketch_start(values.size)
        want = identity.to_sketch(values[start : start + 256])
        assert t.sketch == want
        checked += 1
    assert checked > 100


def test_claims_are_checked_against_computed_hashes(tmp_path: Path) -> None:
    """sshs_model_hash is checked against AutoV3; base hashes stay unverified."""
    from safetensors.numpy import save_file

    arrays = {"w": np.arange(2048, dtype=np.float32).reshape(32, 64)}
    path = tmp_path / "lora.safetensors"
    save_file(arrays, str(path), metadata={"ss_sd_model_hash": "925997e9"})
    body = fingerprint(path).autov3
    assert body is not None
    claimed = {
        "sshs_model_hash": body,
        "modelspec.hash_sha256": "0x" + "0" * 64,
        "ss_sd_model_hash": "925997e9",
    }
    save_file(arrays, str(path), metadata=claimed)
    claims = {c.key: c for c in fingerprint(path).claims}
    # the body (tensor bytes) does not change when only metadata does
    assert claims["sshs_model_hash"].verified is True
    assert claims["modelspec.hash_sha256"].verified is False
    assert claims["ss_sd_model_hash"].verified is None
    assert claims["ss_sd_model_hash"].meaning == "autov1-of-base"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 3\n",
            "LFS pointer",
        ),
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
    ],
)
def test_not_a_model_file_reasons(tmp_path: Path, content: bytes, reason: str) -> None:
    """Files that are not weights are refused with a reason a user can act on."""
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(UnknownFormat, match=reason):
        fingerprint(path)
    assert fingerprint(path, any_file=True).format == "unknown"


def test_fifo_and_directory_are_refused_without_hanging(tmp_path: Path) -> None:
    """A FIFO or a directory gives a clear error instead of blocking or a traceback."""
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(UnreadableFile, match="FIFO"):
        fingerprint(fifo)
    with pytest.raises(UnreadableFile, match="directory"):
        fingerprint(tmp_path)
    with pytest.raises(FormatError, match="no such file"):
        fingerprint(tmp_path / "missing")


def test_gguf_type_gguf_cannot_dequantize_gets_no_sketch(tmp_path: Path) -> None:
    """A Q8_1 tensor (no dequantizer in gguf) is digested, with no sketch, no crash."""
    import gguf

    block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_1]
    rows, cols = 8, 4 * block
    raw = np.random.default_rng(0).integers(
        0, 255, size=(rows, cols // block * type_size), dtype=np.uint8
    )
    path = tmp_path / "q8_1.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("w", raw, raw_dtype=gguf.GGMLQuantizationType.Q8_1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (t,) = fingerprint(path).tensors
    assert t.dtype == "Q8_1"
    assert t.shape == (rows, cols)
    assert t.sketch is None
    assert t.digest == blake3.blake3(raw.tobytes()).hexdigest()


@pytest.mark.parametrize("dtype", ["F64", "F32", "F16", "BF16"])
def test_numpy_free_sketch_equals_numpy_decode(dtype: str) -> None:
    """The struct decode of a window is numpy's, byte for byte, specials included."""
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [
            rng.standard_normal(200) * 10.0 ** rng.integers(-9, 9, 200),
            [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 65504.0, 65519.0],
            [65520.0, -1e6, 6.0e-8, -3.0e-8, 1e-45, 2.0**-24, 2.0**-25, 1e300],
            rng.standard_normal(40) * 1e-6,
        ]
    )
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN on purpose
        if dtype == "BF16":
            raw = (values.astype(np.float32).view(np.uint32) >> 16).astype("<u2")
        else:
            raw = values.astype({"F64": "<f8", "F32": "<f4", "F16": "<f2"}[dtype])
        want = identity.to_sketch(identity.decode_floats(raw.tobytes(), dtype))
    assert identity.sketch_of_floats(raw.tobytes(), dtype) == want


def test_finite_float16_sketch_is_the_window_itself() -> None:
    """A window of finite float16 values (subnormals, -0.0, the largest) is kept."""
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [rng.standard_normal(248), [0.0, -0.0, 6.0e-8, -6.0e-8, 65504.0, -65504.0]]
    ).astype("<f2")
    raw = values.tobytes()
    want = identity.to_sketch(identity.decode_floats(raw, "F16"))
    assert identity.sketch_of_floats(raw, "F16") == want == raw


_HEAVY = (
    "numpy",
    "tqdm",
    "gguf",
    "sqlalchemy",
    "requests",
    "huggingface_hub",
    "torch",
    "logging",  # the scanner never logs: configured only where something does
)
# What only a broken checkpoint or an archive needs, not a torch zip's fingerprint.
_ARCHIVE_MODULES = ("tarfile", "lzma", "bz2", "modelscan.scanner.formats.archives")
_IMPORTS_AT_EXIT = """
import atexit, sys
heavy = {heavy!r}
atexit.register(lambda: print("HEAVY", [m for m in heavy if m in sys.modules]))
from modelscan.cli import main
sys.argv = ["modelscan", "fingerprint", "--json", {path!r}]
main()
"""


def test_fingerprint_json_starts_without_heavy_imports(tmp_path: Path) -> None:
    """`modelscan fingerprint --json` of F16 safetensors and GGUF imports no numpy."""
    import subprocess
    import sys

    import gguf
    from safetensors.numpy import save_file

    arr = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float16)
    save_file({"w": arr}, str(tmp_path / "m.safetensors"))
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    writer.add_tensor("w", arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for name in ("m.safetensors", "m.gguf"):
        code = _IMPORTS_AT_EXIT.format(heavy=_HEAVY, path=str(tmp_path / name))
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        record, heavy = out.splitlines()
        assert '"sketch"' in record or '"tensors"' in record
        assert heavy == "HEAVY []", name


def test_torch_zip_fingerprint_starts_without_archive_modules(
    tmp_path: Path, torch_mod
) -> None:
    """A torch zip's `fingerprint --json` loads no torch, logging or tarfile."""
    import subprocess
    import sys

    path = tmp_path / "m.pt"
    torch_mod.save({"w": torch_mod.zeros(64, 64, dtype=torch_mod.float16)}, path)
    code = _IMPORTS_AT_EXIT.format(heavy=_HEAVY + _ARCHIVE_MODULES, path=str(path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    record, heavy = out.splitlines()
    assert '"torch-zip"' in record
    assert heavy == "HEAVY []"


def _generated_twin(cls: type) -> type:
    """The same fields under dataclasses' own generated methods (frozen, slots)."""
    import dataclasses

    spec = [(f.name, f.type, f) for f in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(cls.__name__, spec, frozen=True, slots=True)


def _outcome(call: Callable[[], object]) -> tuple[str, object]:
    try:
        return "ok", call()
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return type(exc).__name__, None


def test_records_behave_as_generated_frozen_dataclasses(minilm_fp: Fingerprint) -> None:
    """Records print, compare, hash, refuse assignment and copy as dataclasses' own."""
    import dataclasses

    from modelscan.records import Claim, LineageRef, Listing, RemoteFile

    tensor = minilm_fp.tensors[0]
    samples = [
        minilm_fp,
        tensor,
        Claim("ss_sd_model_hash", "abc", "autov1-of-base", None),
        RemoteFile("m.safetensors", 12, None, "https://h/x"),
        LineageRef("hf:org/name", "finetune", "declared-card"),
        Listing("hf", "org/name", "name", "org", "https://h", None, None),
    ]
    for record in samples:
        twin = _generated_twin(type(record))(
            **{f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        )
        assert repr(record) == repr(twin)
        assert _outcome(partial(hash, record))[0] == _outcome(partial(hash, twin))[0]
        copy = dataclasses.replace(record)
        assert copy == record
        assert not copy != record  # noqa: SIM202 - __ne__ is what is checked
        assert record != twin
        assert record.__eq__(twin) is NotImplemented
        assert dataclasses.asdict(record) == dataclasses.asdict(twin)
        name = dataclasses.fields(record)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, name, None)
        assert not hasattr(record, "__dict__")
    twin = _generated_twin(type(tensor))(**dataclasses.asdict(tensor))
    assert hash(tensor) == hash(twin)
