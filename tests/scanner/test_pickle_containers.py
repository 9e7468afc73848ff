"""Pickles inside containers: npy/npz object arrays, zips, tars, 7z, joblib, nested.

Each container is built in the test (byte by byte, or by the library that
writes that format) around a hostile pickle whose payload would create a
marker file; the scan must name ``os.system`` and never create the marker.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pickle
import tarfile
import zipfile
import zlib
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelscan.errors import UnknownFormat
from modelscan.records import Fingerprint
from modelscan.scanner.fingerprint import fingerprint
from modelscan.scanner.formats import archives


def hostile(marker: Path) -> bytes:
    """A protocol 2 pickle calling os.system("touch MARKER")."""
    cmd = f"touch {marker}".encode()
    return b"\x80\x02cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"\x85R."


def npy_bytes(payload: bytes, descr: str = "|O", shape: str = "(1,)") -> bytes:
    """A version 1.0 .npy file whose data is ``payload``."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    pad = 64 - (10 + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin-1")
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + payload


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def scan(tmp_path: Path, data: bytes, name: str = "archive") -> Fingerprint:
    path = tmp_path / name
    path.write_bytes(data)
    return fingerprint(path)


def assert_flagged(fp: Fingerprint, marker: Path) -> None:
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.verdict == "unsafe"
    # os.system pickles under its real module: posix on POSIX systems
    assert {"os.system", "posix.system"} & set(fp.pickle_safety.dangerous)
    assert not marker.exists()


def test_hostile_payload_is_live(tmp_path: Path) -> None:
    """The payload used below really runs under pickle.loads."""
    marker = tmp_path / "pwned"
    pickle.loads(hostile(marker))
    assert marker.exists()


def test_object_npy_runs_its_pickle_under_numpy_load(tmp_path: Path) -> None:
    """numpy.load(allow_pickle=True) of the built .npy runs the payload: live."""
    marker = tmp_path / "pwned"
    path = tmp_path / "a.npy"
    path.write_bytes(npy_bytes(hostile(marker)))
    with suppress(Exception):  # os.system returns an int, not an array
        np.load(path, allow_pickle=True)
    assert marker.exists()


def test_object_npy_is_flagged(tmp_path: Path) -> None:
    """An object-array .npy built byte by byte: format npy, os.system named."""
    marker = tmp_path / "pwned"
    fp = scan(tmp_path, npy_bytes(hostile(marker)), "weights.bin")
    assert fp.format == "npy"
    assert fp.metadata["npy.descr"] == "|O"
    assert_flagged(fp, marker)


def test_real_object_array_is_unsafe_without_named_danger(tmp_path: Path) -> None:
    """An object array numpy wrote: off-allowlist numpy globals, nothing dangerous."""
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}, "x"], dtype=object), allow_pickle=True)
    fp = fingerprint(path)
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.verdict == "unsafe"
    assert fp.pickle_safety.dangerous == ()
    assert any(g.startswith("numpy.") for g in fp.pickle_safety.globals)


def test_numeric_npy_has_no_pickle(tmp_path: Path) -> None:
    """A float .npy is an array file: its header read, no pickle verdict."""
    path = tmp_path / "f.npy"
    np.save(path, np.arange(6, dtype=np.float32).reshape(2, 3))
    fp = fingerprint(path)
    assert fp.format == "npy"
    assert fp.metadata["npy.shape"] == [2, 3]
    assert fp.pickle_safety is None


def test_npz_with_an_object_array_is_flagged(tmp_path: Path) -> None:
    """An .npz (a zip of .npy) with one object array: format npz, danger named."""
    marker = tmp_path / "pwned"
    numeric = npy_bytes(b"\x00" * 16, descr="<f4", shape="(4,)")
    data = zip_bytes({"w.npy": numeric, "obj.npy": npy_bytes(hostile(marker))})
    fp = scan(tmp_path, data, "model.npz")
    assert fp.format == "npz"
    assert fp.metadata["archive.arrays"] == 2
    assert_flagged(fp, marker)


def test_numeric_npz_is_an_array_file(tmp_path: Path) -> None:
    """numpy.savez of float arrays: format npz, nothing to judge."""
    path = tmp_path / "w.npz"
    np.savez(path, a=np.ones(3), b=np.zeros((2, 2)))
    fp = fingerprint(path)
    assert fp.format == "npz"
    assert fp.pickle_safety is None


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_pickle_under_any_member_name_of_a_plain_zip(
    method: int, tmp_path: Path
) -> None:
    """A zip that is no checkpoint, its pickle named like a text file: flagged."""
    marker = tmp_path / "pwned"
    data = zip_bytes(
        {"readme.txt": b"hello", "notes/info.txt": hostile(marker)}, method
    )
    fp = scan(tmp_path, data, "bundle.zip")
    assert fp.format == "zip"
    assert fp.metadata["archive.pickles"] == ["notes/info.txt"]
    assert_flagged(fp, marker)


def test_zip_in_zip_is_opened(tmp_path: Path) -> None:
    """A pickle in a zip inside a zip is found and named with its member path."""
    marker = tmp_path / "pwned"
    inner = zip_bytes({"model/data.bin": hostile(marker)})
    fp = scan(tmp_path, zip_bytes({"inner.zip": inner}), "outer.zip")
    assert fp.metadata["archive.pickles"] == ["inner.zip:model/data.bin"]
    assert_flagged(fp, marker)


def test_nesting_past_the_depth_cap_is_unsafe(tmp_path: Path) -> None:
    """Zips nested past MAX_DEPTH are not opened; the verdict says so, unsafe."""
    data = b"N."
    for level in range(archives.MAX_DEPTH + 2):
        data = zip_bytes({f"level{level}.zip": data})
    fp = scan(tmp_path, data, "deep.zip")
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.verdict == "unsafe"
    assert "nested deeper" in (fp.pickle_safety.error or "")


def test_zip_without_pickles_is_still_refused(tmp_path: Path) -> None:
    """A zip of text files is no model file: refused with its reason."""
    with pytest.raises(UnknownFormat, match="not a PyTorch checkpoint"):
        scan(tmp_path, zip_bytes({"a.txt": b"hello", "b.json": b"{}"}), "docs.zip")


def test_tar_member_is_flagged(tmp_path: Path) -> None:
    """A tar holding a pickle (any name) is format tar with the danger named."""
    marker = tmp_path / "pwned"
    data = tar_bytes({"config.json": b"{}", "weights/model.ckpt": hostile(marker)})
    fp = scan(tmp_path, data, "model.tar")
    assert fp.format == "tar"
    assert fp.metadata["archive.pickles"] == ["weights/model.ckpt"]
    assert_flagged(fp, marker)


@pytest.mark.parametrize(
    ("kind", "compress"),
    [
        ("gzip", gzip.compress),
        ("bz2", bz2.compress),
        ("xz", lzma.compress),
        ("zlib", zlib.compress),
    ],
)
def test_compressed_tar_and_pickle_are_opened(
    kind: str, compress: Any, tmp_path: Path
) -> None:
    """gzip/bz2/xz/zlib streams are opened: a .tar.gz and a compressed pickle."""
    marker = tmp_path / "pwned"
    fp = scan(tmp_path, compress(tar_bytes({"m.pkl": hostile(marker)})), "a.tgz")
    assert fp.format == f"{kind}+tar"
    assert_flagged(fp, marker)
    fp = scan(tmp_path, compress(hostile(marker)), "m.pkl.z")
    assert fp.format == f"{kind}+pickle"
    assert_flagged(fp, marker)


def test_compressed_text_is_refused(tmp_path: Path) -> None:
    """A gzip of plain text holds no pickle: refused, saying what it is."""
    with pytest.raises(UnknownFormat, match="gzip"):
        scan(tmp_path, gzip.compress(b"just some text\n" * 10), "log.gz")


def test_seven_zip_member_is_flagged(tmp_path: Path) -> None:
    """A 7z archive (written by py7zr) holding a pickle: format 7z, danger named."""
    import py7zr

    marker = tmp_path / "pwned"
    path = tmp_path / "model.7z"
    with py7zr.SevenZipFile(path, "w") as z:
        z.writestr(b"readme", "README.md")
        z.writestr(hostile(marker), "weights/pytorch_model.bin")
    fp = fingerprint(path)
    assert fp.format == "7z"
    assert fp.metadata["archive.pickles"] == ["weights/pytorch_model.bin"]
    assert_flagged(fp, marker)


def test_broken_seven_zip_is_unsafe_with_error(tmp_path: Path) -> None:
    """A 7z cut short cannot be vouched for: unsafe, the failure as error."""
    import py7zr

    path = tmp_path / "cut.7z"
    with py7zr.SevenZipFile(path, "w") as z:
        z.writestr(pickle.dumps({"a": 1}) * 100, "m.pkl")
    data = path.read_bytes()
    fp = scan(tmp_path, data[: len(data) // 2], "half.7z")
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.verdict == "unsafe"
    assert fp.pickle_safety.error


# --- joblib ------------------------------------------------------------------------


class _Evil:
    """Pickles as os.system(cmd): what a hostile joblib file carries."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (self.cmd,)


def test_joblib_arrays_are_passed_over(tmp_path: Path) -> None:
    """joblib.dump's inline array bytes are skipped as joblib.load reads them."""
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump({"a": np.arange(1000.0), "b": np.ones((3, 3), np.int8)}, path)
    fp = fingerprint(path)
    assert fp.format == "pickle"
    assert fp.metadata["joblib_arrays"] == 2
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.error is None
    assert fp.pickle_safety.dangerous == ()


def test_joblib_call_after_the_arrays_is_named(tmp_path: Path) -> None:
    """os.system pickled after two arrays (and an object array) is still found."""
    import joblib

    marker = tmp_path / "pwned"
    path = tmp_path / "model.joblib"
    objects = np.array([{"k": 1}, None], dtype=object)
    joblib.dump([np.arange(50.0), objects, np.zeros(7), _Evil(f"touch {marker}")], path)
    assert not marker.exists()
    fp = fingerprint(path)
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.error is None
    assert_flagged(fp, marker)
    joblib.load(path)  # live: the real loader runs it
    assert marker.exists()


@pytest.mark.parametrize("compress", [3, ("gzip", 3), ("bz2", 3), ("xz", 3)])
def test_compressed_joblib_is_opened(compress: Any, tmp_path: Path) -> None:
    """Compressed joblib files (zlib, gzip, bz2, xz) are opened and scanned."""
    import joblib

    marker = tmp_path / "pwned"
    path = tmp_path / "model.joblib"
    joblib.dump([np.arange(10.0), _Evil(f"touch {marker}")], path, compress=compress)
    fp = fingerprint(path)
    assert fp.format.endswith("+pickle")
    assert_flagged(fp, marker)


# --- hostile containers raise only FormatError --------------------------------------


def _seeds() -> list[bytes]:
    import py7zr

    seven = io.BytesIO()
    with py7zr.SevenZipFile(seven, "w") as z:
        z.writestr(pickle.dumps({"k": [1, 2]}), "m.pkl")
    tar = tar_bytes({"x.pkl": pickle.dumps([1, 2, 3])})
    return [
        zip_bytes({"a.pkl": pickle.dumps({"a": 1}), "b.txt": b"hi"}),
        tar,
        gzip.compress(tar),
        seven.getvalue(),
        npy_bytes(pickle.dumps([1])),
    ]


SEEDS = _seeds()


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, len(SEEDS) - 1),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    st.integers(0, 10**6),
)
def test_mutated_containers_raise_only_format_errors(
    seed: int, edits: list[tuple[int, int]], cut: int
) -> None:
    """A container with bytes changed or cut gives a layout or a FormatError only."""
    from modelscan.errors import FormatError
    from modelscan.scanner.fingerprint import read_layout
    from modelscan.scanner.layout import BytesReader

    data = bytearray(SEEDS[seed])
    for pos, value in edits:
        data[pos % len(data)] = value
    reader = BytesReader(bytes(data[: max(1, cut % (len(data) + 1))]), "fuzz")
    with suppress(FormatError):
        read_layout(reader)  # type: ignore[arg-type]


@pytest.mark.parametrize("compress", [gzip.compress, lzma.compress, zlib.compress])
def test_cut_compressed_stream_keeps_its_verdict(compress: Any, tmp_path: Path) -> None:
    """A compressed pickle cut short: what decompressed is judged, the cut an error."""
    marker = tmp_path / "pwned"
    data = compress(hostile(marker) + pickle.dumps(list(range(50_000)), protocol=4))
    fp = scan(tmp_path, data[: len(data) // 2], "cut.z")
    assert_flagged(fp, marker)
    assert fp.pickle_safety is not None
    assert "stream ends early" in (fp.pickle_safety.error or "")


def test_structured_npy_is_judged_by_its_field_types(tmp_path: Path) -> None:
    """A field named like "Offset" is no object; a nested object field is."""
    path = tmp_path / "s.npy"
    np.save(path, np.zeros(2, dtype=[("Offset", "<i4"), ("x", "<f8")]))
    assert fingerprint(path).pickle_safety is None
    nested = np.zeros(1, dtype=[("a", [("b", "O")])])
    np.save(path, nested, allow_pickle=True)
    fp = fingerprint(path)
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.error is None


def test_object_npy_without_data_is_never_safe(tmp_path: Path) -> None:
    """An object-array header with no pickle after it: unsafe, the gap as error."""
    fp = scan(tmp_path, npy_bytes(b""), "empty.npy")
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.verdict == "unsafe"
    assert "no pickle" in (fp.pickle_safety.error or "")
