"""Torch zip checkpoints and TorchScript archives: tensors located, pickles judged."""

from __future__ import annotations

import math
import pickle
import struct
import sys
import tracemalloc
import types
import zipfile
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_helpers import DTYPES, assert_matches, logical_bytes, tensor_bytes

from modelscan.errors import (
    FormatError,
    HeaderTooLarge,
    InvalidHeader,
    UnknownFormat,
)
from modelscan.scanner.fingerprint import open_reader
from modelscan.scanner.formats import torch_zip
from modelscan.scanner.layout import DTYPE_SIZES, BytesReader, Layout


def read(path: Path, **kwargs: Any) -> Layout:
    with open_reader(path) as reader:
        return torch_zip.read_layout(reader, **kwargs)


def rewrite_zip(
    src: Path,
    dst: Path,
    *,
    drop: tuple[str, ...] = (),
    replace: dict[str, bytes] | None = None,
    add: dict[str, bytes] | None = None,
    deflate: tuple[str, ...] = (),
) -> Path:
    """Copy a zip, dropping, replacing, adding or deflating members."""
    replace, add = replace or {}, add or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = replace.get(info.filename, zin.read(info.filename))
            method = (
                zipfile.ZIP_DEFLATED if info.filename in deflate else zipfile.ZIP_STORED
            )
            zout.writestr(info.filename, data, compress_type=method)
        for name, data in add.items():
            method = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            zout.writestr(name, data, compress_type=method)
    return dst


def os_system(cmd: str, module: str = "os") -> bytes:
    raw = cmd.encode()
    head = b"\x80\x02c" + module.encode() + b"\nsystem\n"
    return head + b"X" + struct.pack("<I", len(raw)) + raw + b"\x85R."


@pytest.fixture
def small_ckpt(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    sd = {
        "enc.weight": torch.randn(4, 3),
        "enc.bias": torch.randn(4),
        "step": torch.tensor(7),
    }
    path = tmp_path / "small.pt"
    torch.save(sd, path)
    return path, sd


# --- generated checkpoints ------------------------------------------------------------


def test_state_dict_names_shapes_and_bytes(
    small_ckpt: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    """A torch.save state dict gives exactly its keys, shapes, dtypes, bytes; safe."""
    path, sd = small_ckpt
    layout = read(path)
    assert layout.format == "torch-zip"
    assert_matches(layout, path, sd)
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "safe"
    assert layout.metadata["torch.byteorder"] == "little"


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_every_dtype(dtype: torch.dtype, tmp_path: Path) -> None:
    """Every storage type and dtype maps to its safetensors name, with exact bytes."""
    torch.manual_seed(1)
    values = torch.randn(5, 3) * 50
    t = values > 0 if dtype == torch.bool else values.to(dtype)
    path = tmp_path / "d.pt"
    torch.save({"t": t, "scalar": t[0, 0].clone()}, path)
    layout = read(path)
    assert_matches(layout, path, {"t": t, "scalar": t[0, 0].clone()})
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "safe"


def test_views_share_one_storage_with_offsets_and_strides(tmp_path: Path) -> None:
    """Views of one storage keep their offsets; transposed ones report strides."""
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = {"base": base, "t": base.t(), "row": base[1], "col": base[:, 2]}
    path = tmp_path / "views.pt"
    torch.save(sd, path)
    layout = read(path)
    assert_matches(layout, path, sd)
    spans = {s.name: s for s in layout.tensors}
    assert spans["base"].strides is None
    assert spans["t"].strides == (1, 4)
    assert spans["col"].strides == (4,)
    assert spans["row"].offset == spans["base"].offset + 4 * 4
    assert spans["col"].offset == spans["base"].offset + 2 * 4


def test_lightning_style_checkpoint_uses_state_dict_keys(tmp_path: Path) -> None:
    """{"state_dict": ...} names tensors by the state dict; scalars go to metadata."""
    torch.manual_seed(2)
    sd = {"layer.weight": torch.randn(2, 2), "layer.bias": torch.randn(2)}
    opt = {"state": {0: {"exp_avg": torch.zeros(2, 2)}}}
    ckpt = {"epoch": 3, "pytorch-lightning_version": "2.0.1", "state_dict": sd}
    path = tmp_path / "lightning.ckpt"
    torch.save({**ckpt, "optimizer_states": [opt]}, path)
    layout = read(path)
    assert_matches(layout, path, sd)
    assert layout.metadata["state_dict_key"] == "state_dict"
    assert layout.metadata["tensors_outside_state_dict"] == 1
    assert layout.metadata["pickle_top_level_values"] == {
        "epoch": 3,
        "pytorch-lightning_version": "2.0.1",
    }


def test_nested_dicts_join_key_paths(tmp_path: Path) -> None:
    """Without a wrapper, names are key paths joined with dots, lists indexed."""
    torch.manual_seed(3)
    w, b = torch.randn(2), torch.randn(3)
    path = tmp_path / "nested.pt"
    torch.save({"model": {"enc": {"w": torch.nn.Parameter(w)}}, "extra": [b]}, path)
    layout = read(path)
    assert_matches(layout, path, {"model.enc.w": w, "extra.0": b})


def test_whole_module_pickle_names_like_its_state_dict(tmp_path: Path) -> None:
    """torch.save(module) names tensors as module.state_dict() does; verdict unsafe."""
    torch.manual_seed(4)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)
    )
    path = tmp_path / "module.pt"
    torch.save(model, path)
    layout = read(path)
    assert_matches(layout, path, dict(model.state_dict()))
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "unsafe"
    assert "torch.nn.modules.linear.Linear" in layout.pickle_safety.globals
    assert layout.pickle_safety.dangerous == ()


# --- real published files -------------------------------------------------------------


class _Stub:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def trusted_load(path: Path) -> tuple[Any, set[str]]:
    """torch.load a trusted file whose classes are missing; record what it asks."""
    asked: set[str] = set()

    class Unpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            asked.add(f"{module}.{name}")
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):
                return _Stub

    module = types.SimpleNamespace(
        Unpickler=Unpickler, load=pickle.load, __name__="pickle"
    )
    obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    return obj, asked


def test_whisperx_lightning_checkpoint(model_files: dict[str, Path]) -> None:
    """The real pyannote checkpoint: torch.load's state dict, its globals, no import."""
    path = model_files["whisperx_bin"]
    layout = read(path)
    assert "pyannote" not in sys.modules
    ckpt, asked = trusted_load(path)
    assert layout.format == "torch-zip"
    assert_matches(layout, path, dict(ckpt["state_dict"]))
    safety = layout.pickle_safety
    assert safety is not None
    assert safety.verdict == "unsafe"
    assert safety.dangerous == ()
    ours = {g for g in safety.globals if g.startswith("pyannote.")}
    assert ours
    assert ours == {g for g in asked if g.startswith("pyannote.")}
    assert (
        layout.metadata["pickle_top_level_values"]["pytorch-lightning_version"]
        == (ckpt["pytorch-lightning_version"])
    )


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_silero_torchscript_archive(model_files: dict[str, Path]) -> None:
    """The real TorchScript file (prefix not archive/) gives its module tensors."""
    path = model_files["silero_jit"]
    layout = read(path)
    assert layout.format == "torchscript"
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "unsafe"
    assert any("TorchScript" in n for n in layout.pickle_safety.notes)
    state = dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    spans = {s.name: s for s in layout.tensors}
    assert set(state) <= set(spans)
    data = path.read_bytes()
    for name, t in state.items():
        assert spans[name].shape == tuple(t.shape)
        assert logical_bytes(data, spans[name]) == tensor_bytes(t), name


def test_global_module_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A global of an importable trap module is listed; the module never loads."""
    trap = "modelscan_trap_module"
    marker = tmp_path / "imported"
    (tmp_path / f"{trap}.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Thing:\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    src = tmp_path / "src.pt"
    torch.save({"w": torch.zeros(2)}, src)
    evil = b"\x80\x02}X\x01\x00\x00\x00wc" + trap.encode() + b"\nThing\n)Rs."
    path = rewrite_zip(src, tmp_path / "trap.pt", replace={"src/data.pkl": evil})
    layout = read(path)
    assert trap not in sys.modules
    assert not marker.exists()
    assert layout.pickle_safety is not None
    assert f"{trap}.Thing" in layout.pickle_safety.globals
    pickle.loads(evil)  # the trap is live: a real load imports it
    assert marker.exists()
    sys.modules.pop(trap, None)


# --- hostile archives -----------------------------------------------------------------


def test_hostile_data_pkl_is_flagged_not_run(tmp_path: Path) -> None:
    """A data.pkl whose REDUCE calls os.system is unsafe and the command never runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", os_system(f"touch {marker}"))
        z.writestr("archive/version", "3\n")
    layout = read(path)
    assert not marker.exists()
    assert layout.tensors == ()
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.dangerous == ("os.system",)


@pytest.mark.parametrize("deflated", [False, True])
@pytest.mark.parametrize("member", ["archive/extra.pkl", "archive/blob"])
def test_hostile_extra_member_is_flagged(
    tmp_path: Path, member: str, deflated: bool
) -> None:
    """A payload in another member (.pkl or sniffed, stored or deflated) counts."""
    marker = tmp_path / "pwned"
    src = tmp_path / "archive.pt"
    torch.save({"w": torch.ones(3)}, src)
    payload = os_system(f"touch {marker}", module="posix")
    path = rewrite_zip(
        src,
        tmp_path / "evil.pt",
        add={member: payload},
        deflate=(member,) if deflated else (),
    )
    layout = read(path)
    assert not marker.exists()
    assert [s.name for s in layout.tensors] == ["w"]
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "unsafe"
    assert layout.pickle_safety.dangerous == ("posix.system",)


def test_missing_storage(
    small_ckpt: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    """A pickle that names a storage member the archive lacks is an InvalidHeader."""
    path = rewrite_zip(small_ckpt[0], tmp_path / "m.pt", drop=("small/data/0",))
    with pytest.raises(InvalidHeader, match="storage small/data/0 is missing"):
        read(path)


def test_storage_too_short_for_the_tensor(
    small_ckpt: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    """A storage shorter than offset + extent of its tensor is refused, as in torch."""
    path = rewrite_zip(
        small_ckpt[0], tmp_path / "s.pt", replace={"small/data/0": b"\0" * 8}
    )
    with pytest.raises(
        InvalidHeader, match="needs 48 bytes of storage '0', which holds 8"
    ):
        read(path)


def test_compressed_storage_is_refused(
    small_ckpt: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    """A deflated storage member is refused with a reason, never inflated."""
    path = rewrite_zip(small_ckpt[0], tmp_path / "c.pt", deflate=("small/data/1",))
    with pytest.raises(InvalidHeader, match="compressed"):
        read(path)


def test_zip_without_data_pkl_is_not_a_checkpoint(tmp_path: Path) -> None:
    """A zip archive with no data.pkl is UnknownFormat, saying why."""
    path = tmp_path / "plain.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(UnknownFormat, match="not a PyTorch checkpoint"):
        read(path)


def test_duplicate_member_names_are_refused(tmp_path: Path) -> None:
    """Two members with one name (which one would torch read?) is an InvalidHeader."""
    path = tmp_path / "dup.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))
        with pytest.warns(UserWarning, match="Duplicate"):
            z.writestr("archive/data.pkl", os_system("true"))
    with pytest.raises(InvalidHeader, match="appears twice"):
        read(path)


def test_big_endian_archive_is_refused(
    small_ckpt: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    """A byteorder of 'big' is refused clearly rather than read with swapped bytes."""
    path = rewrite_zip(
        small_ckpt[0], tmp_path / "be.pt", replace={"small/byteorder": b"big"}
    )
    with pytest.raises(InvalidHeader, match="byteorder 'big'"):
        read(path)


def test_eocd_claiming_65535_entries_in_a_tiny_file() -> None:
    """An end record claiming 2**16-1 entries in 100 bytes is refused up front."""
    eocd = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 100, 0, 0)
    with pytest.raises(InvalidHeader, match="cannot hold 65535 entries"):
        torch_zip.read_layout(BytesReader(b"\0" * 100 + eocd))


def _zip64(entries: int, cd_size: int, record_at: int) -> bytes:
    record = b"PK\x06\x06" + struct.pack(
        "<QHHIIQQQQ", 44, 45, 45, 0, 0, 1, entries, cd_size, 0
    )
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, record_at, 1)
    eocd = b"PK\x05\x06" + struct.pack(
        "<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
    )
    return record + locator + eocd


def test_zip64_huge_counts_are_capped() -> None:
    """zip64 fields claiming 2**60 entries and 2**62 bytes are HeaderTooLarge."""
    with pytest.raises(HeaderTooLarge, match="zip claims"):
        torch_zip.read_layout(BytesReader(_zip64(2**60, 2**62, 0)))


def test_zip64_record_offset_past_the_file() -> None:
    """A zip64 locator pointing past the archive is InvalidHeader, not a huge read."""
    with pytest.raises(InvalidHeader, match="zip64 record offset"):
        torch_zip.read_layout(BytesReader(_zip64(1, 46, 2**62)))


def test_zip_bomb_member_is_not_inflated_past_the_cap(tmp_path: Path) -> None:
    """A 10 MB pickle deflated to ~10 KB stops at the cap: noted, unsafe, low memory."""
    src = tmp_path / "a.pt"
    torch.save({"w": torch.ones(2)}, src)
    big = b"\x80\x04\x8e" + struct.pack("<Q", 10_000_000) + b"\0" * 10_000_000 + b"."
    bomb = "a/bomb.pkl"
    path = rewrite_zip(src, tmp_path / "bomb.pt", add={bomb: big}, deflate=(bomb,))
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        layout = read(path, max_pickle_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    assert [s.name for s in layout.tensors] == ["w"]
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "unsafe"
    assert any("bomb.pkl' inflates past the" in n for n in layout.pickle_safety.notes)


def test_data_pkl_over_the_cap_is_refused(
    small_ckpt: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    """A data.pkl larger than the pickle cap is HeaderTooLarge."""
    with pytest.raises(HeaderTooLarge, match="data.pkl' is over the 100-byte cap"):
        read(small_ckpt[0], max_pickle_bytes=100)


def test_deeply_nested_objects_stop_the_tensor_search(tmp_path: Path) -> None:
    """A data.pkl of a million nested tuples is HeaderTooLarge, not RecursionError."""
    path = tmp_path / "deep.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02)" + b"\x85" * 10**6 + b".")
    with pytest.raises(HeaderTooLarge, match="nested deeper than"):
        read(path)


def test_truncated_archive(small_ckpt: tuple[Path, dict[str, torch.Tensor]]) -> None:
    """A checkpoint cut anywhere raises a FormatError naming the file."""
    data = small_ckpt[0].read_bytes()
    for cut in range(0, len(data), max(1, len(data) // 50)):
        with pytest.raises(FormatError, match="cut.pt"):
            torch_zip.read_layout(BytesReader(data[:cut], "cut.pt"))


def _seed_archive() -> bytes:
    import io

    buf = io.BytesIO()
    torch.save({"a": torch.arange(4, dtype=torch.int16), "b": torch.ones(2, 2)}, buf)
    return buf.getvalue()


_SEED = _seed_archive()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_archives_raise_only_format_errors(
    edits: list[tuple[int, int]],
) -> None:
    """A real archive with bytes changed anywhere reads or raises FormatError only."""
    data = bytearray(_SEED)
    for pos, value in edits:
        data[pos] = value
    with suppress(FormatError):
        layout = torch_zip.read_layout(BytesReader(bytes(data)))
        for span in layout.tensors:
            itemsize = DTYPE_SIZES[span.dtype]
            strides = span.strides or (1,) * len(span.shape)
            last = sum((d - 1) * s for d, s in zip(span.shape, strides, strict=True))
            assert span.numel == 0 or span.offset + (last + 1) * itemsize <= len(data)
            assert span.nbytes == math.prod(span.shape) * itemsize


def test_raw_member_that_only_looks_like_a_pickle_is_noted(
    small_ckpt: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    """An unnamed member starting like a pickle but not one is noted; still safe."""
    junk = b"\x80\x02" + bytes(range(200, 256))
    path = rewrite_zip(small_ckpt[0], tmp_path / "j.pt", add={"small/blob": junk})
    layout = read(path)
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "safe"
    assert any(
        n.startswith("small/blob: not a pickle") for n in layout.pickle_safety.notes
    )
