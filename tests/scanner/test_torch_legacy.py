"""Legacy (non-zip) torch files: storages located by walking their headers."""

from __future__ import annotations

import io
import pickle
import struct
import time
from contextlib import suppress
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch_helpers import DTYPES, assert_matches

from modelscan.errors import FormatError, InvalidHeader, TruncatedFile
from modelscan.scanner.fingerprint import open_reader
from modelscan.scanner.formats import pickle_safe, torch_legacy
from modelscan.scanner.layout import Layout


def read(path: Path) -> Layout:
    with open_reader(path) as reader:
        return torch_legacy.read_layout(reader)


def save_legacy(obj: object, path: Path) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def legacy_bytes(obj_pickle: bytes, keys: list[str], storages: bytes = b"") -> bytes:
    """Assemble a legacy file by hand from its five pickles and storage records."""
    magic = pickle.dumps(torch_legacy.MAGIC_NUMBER, protocol=2)
    version = pickle.dumps(torch_legacy.PROTOCOL_VERSION, protocol=2)
    sys_info = pickle.dumps(
        {"protocol_version": 1001, "little_endian": True}, protocol=2
    )
    return (
        magic
        + version
        + sys_info
        + obj_pickle
        + pickle.dumps(keys, protocol=2)
        + storages
    )


# --- real published files -------------------------------------------------------------


@pytest.mark.parametrize("key", ["lpips_alex", "rxn_bin"])
def test_real_legacy_files_match_torch_load(
    model_files: dict[str, Path], key: str
) -> None:
    """The lpips and rxnmapper legacy files give torch.load's tensors, byte for byte."""
    path = model_files[key]
    layout = read(path)
    expected = torch.load(path, map_location="cpu", weights_only=True)
    assert layout.format == "torch-legacy"
    assert_matches(layout, path, dict(expected))
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "safe"


def test_real_training_args_is_an_unsafe_namespace(
    model_files: dict[str, Path],
) -> None:
    """The real training_args.bin (a saved argparse.Namespace): no tensors, unsafe."""
    layout = read(model_files["rxn_training_args"])
    assert layout.format == "torch-legacy"
    assert layout.tensors == ()
    assert layout.metadata["pickle_top_level_type"] == "argparse.Namespace"
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "unsafe"
    assert "argparse.Namespace" in layout.pickle_safety.globals


# --- generated files ------------------------------------------------------------------


def test_views_and_shared_storage(tmp_path: Path) -> None:
    """Views of one storage keep offsets and strides in the legacy format too."""
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = {
        "base": base,
        "t": base.t(),
        "row": base[1],
        "other": torch.ones(2, dtype=torch.int16),
    }
    path = save_legacy(sd, tmp_path / "views.pt")
    layout = read(path)
    assert_matches(layout, path, sd)
    spans = {s.name: s for s in layout.tensors}
    assert spans["t"].strides == (1, 4)
    assert spans["row"].offset == spans["base"].offset + 16


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
def test_every_dtype(dtype: torch.dtype, tmp_path: Path) -> None:
    """Every dtype torch can save in the legacy format reads back byte for byte."""
    torch.manual_seed(5)
    values = torch.randn(4, 3) * 50
    t = values > 0 if dtype == torch.bool else values.to(dtype)
    path = save_legacy({"t": t, "u": torch.ones(2)}, tmp_path / "d.pt")
    assert_matches(read(path), path, {"t": t, "u": torch.ones(2)})


def test_whole_module_names_like_its_state_dict(tmp_path: Path) -> None:
    """A legacy torch.save(module) names tensors as its state_dict(); verdict unsafe."""
    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    path = save_legacy(model, tmp_path / "module.pt")
    layout = read(path)
    assert_matches(layout, path, dict(model.state_dict()))
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "unsafe"


# --- hostile and broken files ---------------------------------------------------------


def test_hostile_object_pickle_is_flagged_not_run(tmp_path: Path) -> None:
    """A legacy file whose object pickle calls os.system is unsafe; nothing runs."""
    marker = tmp_path / "pwned"
    cmd = f"touch {marker}".encode()
    evil = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."
    path = tmp_path / "evil.pt"
    path.write_bytes(legacy_bytes(evil, []))
    layout = read(path)
    assert not marker.exists()
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.dangerous == ("os.system",)


def test_not_a_legacy_file(tmp_path: Path) -> None:
    """A pickle without torch's magic number is an InvalidHeader."""
    path = tmp_path / "x.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(InvalidHeader, match="no magic number"):
        read(path)


def test_big_endian_file_is_refused(tmp_path: Path) -> None:
    """sys_info little_endian False is refused rather than read with swapped bytes."""
    data = legacy_bytes(pickle.dumps({}, protocol=2), [])
    data = data.replace(b"\x88", b"\x89", 1)  # NEWTRUE -> NEWFALSE in sys_info
    path = tmp_path / "be.pt"
    path.write_bytes(data)
    with pytest.raises(InvalidHeader, match="big-endian"):
        read(path)


def test_storage_no_pickle_names(tmp_path: Path) -> None:
    """A storage key list naming a storage nothing references is an InvalidHeader."""
    path = tmp_path / "k.pt"
    path.write_bytes(legacy_bytes(pickle.dumps({}, protocol=2), ["123"], b"\0" * 16))
    with pytest.raises(InvalidHeader, match="storage '123': no persistent id names it"):
        read(path)


def test_truncated_storage(tmp_path: Path) -> None:
    """A file cut inside its storage bytes is TruncatedFile naming the storage."""
    path = save_legacy({"w": torch.ones(100)}, tmp_path / "t.pt")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(TruncatedFile, match="claims 400 bytes"):
        read(path)


def test_storage_shorter_than_its_tensor(tmp_path: Path) -> None:
    """A storage whose count is smaller than its tensor's extent is refused."""
    data = save_legacy({"w": torch.ones(4)}, tmp_path / "s.pt").read_bytes()
    head = data[: len(data) - 16 - 8]
    assert struct.unpack("<Q", data[len(head) : len(head) + 8]) == (4,)
    path = tmp_path / "short.pt"
    path.write_bytes(head + struct.pack("<Q", 2) + b"\0" * 8)
    with pytest.raises(InvalidHeader, match="needs 16 bytes of storage"):
        read(path)


def test_every_cut_is_a_format_error(tmp_path: Path) -> None:
    """A legacy file cut at any byte raises a FormatError naming the file."""
    data = save_legacy(
        {"w": torch.ones(3), "b": torch.zeros(2)}, tmp_path / "c.pt"
    ).read_bytes()
    path = tmp_path / "cut.pt"
    for cut in range(0, len(data) - 1, 7):
        path.write_bytes(data[:cut])
        with pytest.raises(FormatError, match="cut.pt"):
            read(path)


def _seed() -> bytes:
    buf = io.BytesIO()
    torch.save(
        {"a": torch.arange(3), "b": torch.ones(2, 2).t()},
        buf,
        _use_new_zipfile_serialization=False,
    )
    return buf.getvalue()


_SEED = _seed()


@settings(max_examples=200, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_files_raise_only_format_errors(
    edits: list[tuple[int, int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A real legacy file with bytes changed reads or raises FormatError only."""
    data = bytearray(_SEED)
    for pos, value in edits:
        data[pos] = value
    path = tmp_path_factory.mktemp("fuzz") / "m.pt"
    path.write_bytes(bytes(data))
    with suppress(FormatError):
        read(path)


def _shared_args_pickle(n: int) -> bytes:
    """A pickle of n calls (memo GETs) all sharing one n-element args tuple."""
    head = b"\x80\x02(" + b"K\x01" * n + b"tr\x00\x00\x00\x00cx\ny\nr\x01\x00\x00\x0000"
    return head + b"(" + b"j\x01\x00\x00\x00j\x00\x00\x00\x00R" * n + b"l."


def test_shared_parts_are_searched_once() -> None:
    """50k calls sharing one 50k-item args tuple are searched in linear time."""
    root = pickle_safe.walk_pickle(_shared_args_pickle(50_000), path="s.pkl").root
    start = time.perf_counter()
    found = torch_legacy.find_tensors(root, where="s.pkl")
    assert found.tensors == []
    assert time.perf_counter() - start < 10


class _Storage:
    """Stands for a storage in a hand-made pickle (saved as a persistent id)."""


class _OldTensor:
    """Pickles as torch._utils._rebuild_tensor, as torch before 0.4 wrote tensors."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (torch._utils._rebuild_tensor, (_Storage(), 1, (2,), (1,)))


class _ViewSaver(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _Storage):  # a 3-element view at element 1 of root "k1"
            return ("storage", torch.FloatStorage, "k1", "cpu", 4, ("k1v", 1, 3))
        return None


def test_old_rebuild_tensor_with_storage_view(tmp_path: Path) -> None:
    """_rebuild_tensor on a legacy storage view reads the elements torch.load reads."""
    buf = io.BytesIO()
    _ViewSaver(buf, protocol=2).dump({"w": _OldTensor()})
    storage = struct.pack("<Q", 4) + struct.pack("<4f", 0.5, 1.5, 2.5, 3.5)
    path = tmp_path / "old.pt"
    path.write_bytes(legacy_bytes(buf.getvalue(), ["k1"], storage))
    layout = read(path)
    expected = torch.load(path, weights_only=False)
    assert_matches(layout, path, {"w": expected["w"]})
    assert expected["w"].tolist() == [2.5, 3.5]
