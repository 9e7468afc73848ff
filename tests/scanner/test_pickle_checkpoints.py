"""Torch checkpoints: broken ones still get a verdict, TorchScript names reported.

The checkpoints are written by torch itself; the hostile ones carry an object
whose ``__reduce__`` is ``os.system``, so ``torch.load(weights_only=False)``
would run it (checked), then are broken the way a cut download or an edited
archive is.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from modelscan.errors import FormatError
from modelscan.records import PickleSafety
from modelscan.scanner.fingerprint import fingerprint


class _Evil:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.cmd,)


def _hostile_state(marker: Path) -> dict[str, Any]:
    return {"w": torch.arange(6.0).reshape(2, 3), "x": _Evil(f"touch {marker}")}


def _system_named(safety: PickleSafety | None) -> bool:
    return safety is not None and bool(
        {"os.system", "posix.system"} & set(safety.dangerous)
    )


def _without(src: Path, dst: Path, drop: str) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if not info.filename.endswith(drop):
                zout.writestr(info, zin.read(info))
    return dst


def test_hostile_checkpoint_is_live(tmp_path: Path) -> None:
    """torch.load without weights_only runs the payload: the checkpoints are live."""
    marker = tmp_path / "pwned"
    path = tmp_path / "a.pt"
    torch.save(_hostile_state(marker), path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_checkpoint_missing_a_storage_keeps_its_verdict(tmp_path: Path) -> None:
    """A zip checkpoint without its storage: no tensors, os.system named, error."""
    marker = tmp_path / "pwned"
    path = tmp_path / "a.pt"
    torch.save(_hostile_state(marker), path)
    broken = _without(path, tmp_path / "b.pt", "/data/0")
    fp = fingerprint(broken)
    assert fp.format == "torch-zip"
    assert fp.tensors == ()
    assert _system_named(fp.pickle_safety)
    assert fp.pickle_safety is not None
    assert "not readable as a checkpoint" in (fp.pickle_safety.error or "")
    assert not marker.exists()


def test_checkpoint_with_broken_data_pkl_keeps_its_verdict(tmp_path: Path) -> None:
    """data.pkl cut after the hostile call: the call is named, the cut the error."""
    marker = tmp_path / "pwned"
    path = tmp_path / "a.pt"
    torch.save(_hostile_state(marker), path)
    out = tmp_path / "cut.pt"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                data = data[:-2]  # drops SETITEMS and STOP
            zout.writestr(info, data)
    fp = fingerprint(out)
    assert _system_named(fp.pickle_safety)
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.verdict == "unsafe"
    assert fp.pickle_safety.error
    assert not marker.exists()


def test_cut_legacy_checkpoint_keeps_its_verdict(tmp_path: Path) -> None:
    """A legacy torch file cut inside its storages: verdict of its five pickles."""
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save(_hostile_state(marker), buf, _use_new_zipfile_serialization=False)
    path = tmp_path / "legacy.bin"
    path.write_bytes(buf.getvalue()[:-8])
    fp = fingerprint(path)
    assert fp.format == "torch-legacy"
    assert fp.tensors == ()
    assert _system_named(fp.pickle_safety)
    assert fp.pickle_safety is not None
    assert "not readable as a checkpoint" in (fp.pickle_safety.error or "")
    assert not marker.exists()


def test_cut_zip_without_a_directory_is_still_refused(tmp_path: Path) -> None:
    """A zip cut before its central directory cannot be listed: a one-line error."""
    path = tmp_path / "a.pt"
    torch.save({"w": torch.ones(4)}, path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(FormatError) as info:
        fingerprint(cut)
    assert "\n" not in str(info.value)


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x))


def test_torchscript_classes_are_reported_as_such(tmp_path: Path) -> None:
    """__torch__ names leave the globals; a note names them and what code/ holds."""
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(_Tiny()), str(path))
    fp = fingerprint(path)
    assert fp.format == "torchscript"
    safety = fp.pickle_safety
    assert safety is not None
    assert not any(g.startswith("__torch__") for g in safety.globals)
    assert safety.dangerous == ()
    assert safety.verdict == "unsafe"  # torch.jit.load compiles and runs code/
    classes = [n for n in safety.notes if n.startswith("TorchScript classes")]
    assert classes
    assert "_Tiny" in classes[0]
    # the module's own class and the Linear it holds, each compiled from code/
    assert any(re.match(r"code/ holds 2 TorchScript sources", n) for n in safety.notes)


def _load_from_bytes_call(payload: bytes) -> bytes:
    """A pickle calling torch.storage._load_from_bytes(PAYLOAD), as torch writes."""
    head = b"\x80\x03ctorch.storage\n_load_from_bytes\n"
    return head + b"B" + len(payload).to_bytes(4, "little") + payload + b"\x85R."


def test_checkpoint_inside_load_from_bytes_is_scanned(tmp_path: Path) -> None:
    """A torch file carried as bytes to _load_from_bytes: its os.system is named."""
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"x": _Evil(f"touch {marker}")}, buf)
    path = tmp_path / "outer.pkl"
    path.write_bytes(_load_from_bytes_call(buf.getvalue()))
    fp = fingerprint(path)
    assert _system_named(fp.pickle_safety)
    assert fp.pickle_safety is not None
    assert any(
        n.startswith("bytes given to torch.storage") for n in fp.pickle_safety.notes
    )
    assert not marker.exists()


def test_plainly_pickled_tensor_names_no_danger(tmp_path: Path) -> None:
    """pickle.dumps of a tensor (storage via _load_from_bytes): reviewed, not named."""
    import pickle

    path = tmp_path / "t.pkl"
    path.write_bytes(pickle.dumps({"t": torch.arange(4.0)}))
    fp = fingerprint(path)
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.dangerous == ()
    assert "torch.storage._load_from_bytes" in fp.pickle_safety.globals
    assert any(n.endswith("bytes): safe") for n in fp.pickle_safety.notes)


def test_protocol0_member_of_a_checkpoint_is_found(tmp_path: Path) -> None:
    """An extra member holding a protocol-0 stream starting with V: named."""
    marker = tmp_path / "pwned"
    path = tmp_path / "a.pt"
    torch.save({"w": torch.ones(3)}, path)
    stream = f"Vhello\n0cos\nsystem\n(Vtouch {marker}\ntR.".encode()
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("a/extra/notes", stream)
    fp = fingerprint(path)
    assert fp.format == "torch-zip"
    assert len(fp.tensors) == 1
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.dangerous == ("os.system",)
    assert not marker.exists()
