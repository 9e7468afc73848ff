"""The inert pickle walk: a real load's data, no code run, bounded on hostile input."""

from __future__ import annotations

import _compat_pickle
import argparse
import ast
import collections
import io
import pickle
import struct
import tracemalloc
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelscan.errors import FormatError, HeaderTooLarge, InvalidHeader, TruncatedFile
from modelscan.scanner.fingerprint import open_reader
from modelscan.scanner.formats import pickle_safe, pickle_vm
from modelscan.scanner.formats.pickle_safe import (
    Call,
    PickledDict,
    PickledSet,
    walk_pickle,
)

FORMATS_DIR = Path(pickle_safe.__file__).parent


def to_python(obj: Any) -> Any:
    """Turn inert containers back into Python ones (test data is shallow)."""
    if isinstance(obj, PickledDict):
        return {to_python(k): to_python(v) for k, v in obj.items}
    if isinstance(obj, PickledSet):
        items = {to_python(v) for v in obj.items}
        return frozenset(items) if obj.frozen else items
    if isinstance(obj, list):
        return [to_python(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_python(v) for v in obj)
    return obj


# --- hostile payloads: each would run code under pickle.loads -------------------------


def _binunicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _short_unicode(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def os_system_global(cmd: str, code: str) -> bytes:
    return b"\x80\x02cos\nsystem\n" + _binunicode(cmd) + b"\x85R."


def posix_system_protocol0(cmd: str, code: str) -> bytes:
    return b"cposix\nsystem\n(S" + repr(cmd).encode() + b"\ntR."


def exec_stack_global(cmd: str, code: str) -> bytes:
    head = b"\x80\x04" + _short_unicode("builtins") + _short_unicode("exec") + b"\x93"
    return head + _binunicode(code) + b"\x85R."


def inst_protocol0(cmd: str, code: str) -> bytes:
    return b"(S" + repr(cmd).encode() + b"\nios\nsystem\n."


def obj_protocol1(cmd: str, code: str) -> bytes:
    return b"(cos\nsystem\nS" + repr(cmd).encode() + b"\no."


def py2_builtin_eval(cmd: str, code: str) -> bytes:
    return b"\x80\x02c__builtin__\neval\n" + _binunicode(code) + b"\x85R."


PAYLOADS: dict[str, tuple[Callable[[str, str], bytes], str]] = {
    "os.system GLOBAL": (os_system_global, "os.system"),
    "posix.system protocol 0": (posix_system_protocol0, "posix.system"),
    "builtins.exec STACK_GLOBAL": (exec_stack_global, "builtins.exec"),
    "os.system INST": (inst_protocol0, "os.system"),
    "os.system OBJ": (obj_protocol1, "os.system"),
    "__builtin__.eval (Python 2 name)": (py2_builtin_eval, "builtins.eval"),
}


def payload(name: str, marker: Path) -> bytes:
    build, _ = PAYLOADS[name]
    return build(f"touch {marker}", f"open({str(marker)!r}, 'w').close()")


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_is_live_under_a_real_load(name: str, tmp_path: Path) -> None:
    """Each hostile pickle really runs code under pickle.loads: payloads are live."""
    marker = tmp_path / "pwned"
    with suppress(Exception):  # what the call returns does not matter, its effect does
        pickle.loads(payload(name, marker))
    assert marker.exists()


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_hostile_pickle_is_flagged_and_never_run(name: str, tmp_path: Path) -> None:
    """walk_pickle names the dangerous global, the verdict is unsafe, nothing runs."""
    marker = tmp_path / "pwned"
    result = walk_pickle(payload(name, marker), path="evil.pkl")
    verdict = pickle_safe.safety(result.globals)
    assert not marker.exists()
    assert verdict.verdict == "unsafe"
    assert PAYLOADS[name][1] in verdict.dangerous
    assert isinstance(result.root, Call)


def test_plain_read_layout_flags_hostile_file(tmp_path: Path) -> None:
    """A file whose 2nd pickle is hostile is unsafe: pickle.load in a loop runs it."""
    marker = tmp_path / "pwned"
    path = tmp_path / "two.pkl"
    path.write_bytes(
        pickle.dumps({"a": 1}, protocol=4) + payload("os.system GLOBAL", marker)
    )
    with open_reader(path) as reader:
        layout = pickle_safe.read_layout(reader)
    assert layout.format == "pickle"
    assert layout.metadata["pickles"] == 2
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.dangerous == ("os.system",)
    assert not marker.exists()


# --- faithful to a real load ----------------------------------------------------------

PLAIN: dict[str, Any] = {
    "ints": [0, 1, -1, 255, 65535, 2**31 - 1, -(2**31), 2**64, -(2**100)],
    "floats": [0.0, -1.5, 1e300],
    "text": ["", "ascii", "ünïcödé", "line\nbreak", "quote'\""],
    "tuples": [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)],
    "nested": {"a": {"b": [None, True, False]}},
    "shared": [[7]] * 3,
}


@pytest.mark.parametrize("protocol", range(6))
def test_plain_objects_rebuild_as_a_real_load(protocol: int) -> None:
    """Dicts, lists, tuples, text and numbers equal pickle.loads's in every protocol."""
    data = pickle.dumps(PLAIN, protocol=protocol)
    result = walk_pickle(data, path="plain.pkl")
    assert to_python(result.root) == pickle.loads(data)
    assert result.globals == ()
    assert result.end == len(data)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_bytes_and_sets_rebuild_from_protocol_3(protocol: int) -> None:
    """Bytes (protocol 3+) and sets (protocol 4+) need no global and come out equal."""
    value: dict[str, Any] = {"b": b"\x00\xffraw", "big": b"x" * 300}
    if protocol >= 4:
        value.update(s={1, 2}, f=frozenset({"x"}))
    data = pickle.dumps(value, protocol=protocol)
    assert to_python(walk_pickle(data, path="b.pkl").root) == value


def _loaded_globals(data: bytes, protocol: int) -> set[str]:
    """What a real Unpickler asks find_class for, spelled as after fix_imports."""
    asked: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if protocol < 3:
                key = (module, name)
                if key in _compat_pickle.NAME_MAPPING:
                    module, name = _compat_pickle.NAME_MAPPING[key]
                elif module in _compat_pickle.IMPORT_MAPPING:
                    module = _compat_pickle.IMPORT_MAPPING[module]
            asked.add(f"{module}.{name}")
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return asked


@pytest.mark.parametrize("protocol", range(6))
def test_globals_are_what_a_real_load_imports(protocol: int) -> None:
    """The globals equal the classes a real Unpickler looks up, in every protocol."""
    value = {
        "ns": argparse.Namespace(lr=0.1, name="run"),
        "od": collections.OrderedDict(a=1),
        "dd": collections.defaultdict(list, {"k": [1]}),
        "set": {1, 2},
        "bytes": b"abc",
        "ba": bytearray(b"xyz"),
        "cplx": 1 + 2j,
    }
    data = pickle.dumps(value, protocol=protocol)
    assert set(walk_pickle(data, path="g.pkl").globals) == _loaded_globals(
        data, protocol
    )


def test_protocol0_persistent_ids_and_memo_are_kept() -> None:
    """PERSID and BINPERSID ids and memo references come out as inert records."""

    class Saver(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return ("storage", "key0") if obj == "STORAGE" else None

    for protocol in (0, 2):
        buf = io.BytesIO()
        Saver(buf, protocol=protocol).dump({"w": "STORAGE", "tied": ["STORAGE"]})
        pairs = dict(
            pickle_safe.as_dict(walk_pickle(buf.getvalue(), path="p").root) or []
        )
        assert isinstance(pairs["w"], pickle_safe.PersistentRef)
        assert isinstance(pairs["tied"][0], pickle_safe.PersistentRef)


def test_allowlist_is_torch_weights_only_allowlist() -> None:
    """SAFE_GLOBALS is exactly what torch's weights_only unpickler accepts."""
    from torch import _weights_only_unpickler

    assert (
        set(_weights_only_unpickler._get_allowed_globals()) == pickle_safe.SAFE_GLOBALS
    )


def test_dangerous_matching_respects_name_boundaries() -> None:
    """A deny entry matches itself and names below it, not names sharing a prefix."""
    verdict = pickle_safe.safety(
        [
            "os.path.join",
            "osx.thing",
            "builtins.evaluate",
            "builtins.eval",
            "sys.modules",
        ]
    )
    assert verdict.dangerous == ("builtins.eval", "os.path.join", "sys.modules")
    assert verdict.verdict == "unsafe"
    assert pickle_safe.safety(["torch._utils._rebuild_tensor_v2"]).verdict == "safe"


def test_extension_codes_count_as_unknown_globals() -> None:
    """EXT1/EXT2/EXT4 (copyreg extension codes) count as unknown globals: unsafe."""
    for op in (b"\x82\x07", b"\x83\x07\x01", b"\x84\x07\x01\x00\x00"):
        result = walk_pickle(b"\x80\x02" + op + b".", path="ext.pkl")
        assert len(result.globals) == 1
        assert result.globals[0].startswith("copyreg.<extension")
        assert pickle_safe.safety(result.globals).verdict == "unsafe"


def test_looks_like_pickle_for_sniffing() -> None:
    """looks_like_pickle: true for whole protocol 0/1 pickles, false for text, cuts."""
    data = pickle.dumps({"a": [1, 2]}, protocol=0)
    assert pickle_safe.looks_like_pickle(data)
    assert pickle_safe.looks_like_pickle(pickle.dumps([1], protocol=1))
    assert not pickle_safe.looks_like_pickle(data[:-1])
    assert not pickle_safe.looks_like_pickle(b"(hello world\n")
    assert not pickle_safe.looks_like_pickle(b"")


def test_plain_pickle_layout_of_a_real_training_args_file(
    model_files: dict[str, Path],
) -> None:
    """The real training_args.bin (an argparse.Namespace) reads as an unsafe pickle."""
    with open_reader(model_files["rxn_training_args"]) as reader:
        layout = pickle_safe.read_layout(reader)
    assert layout.format == "pickle"
    assert layout.tensors == ()
    assert layout.metadata["top_level_type"] == "argparse.Namespace"
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "unsafe"
    assert "argparse.Namespace" in layout.pickle_safety.globals
    assert layout.pickle_safety.dangerous == ()


def test_plain_pickle_layout_of_a_dict(tmp_path: Path) -> None:
    """A protocol-4 dict pickle reports its keys and is safe (it imports nothing)."""
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps({"epoch": 3, "lr": 0.1}, protocol=4))
    with open_reader(path) as reader:
        layout = pickle_safe.read_layout(reader)
    assert layout.metadata["top_level_keys"] == ["epoch", "lr"]
    assert layout.pickle_safety is not None
    assert layout.pickle_safety.verdict == "safe"


def test_package_never_calls_a_real_unpickler() -> None:
    """No format module imports pickle or torch or names a loading entry point."""
    banned_names = {
        "loads",
        "load",
        "Unpickler",
        "__import__",
        "import_module",
        "eval",
        "exec",
    }
    for name in (
        "pickle_vm.py",
        "pickle_source.py",
        "pickle_walk.py",
        "pickle_safe.py",
        "torch_pickle.py",
        "torch_zip.py",
        "torch_legacy.py",
        "pickle_danger.py",
        "joblib_arrays.py",
        "npy.py",
        "archives.py",
        "checkpoints.py",
    ):
        tree = ast.parse((FORMATS_DIR / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] + [
                    getattr(node, "module", "") or ""
                ]
                assert not {"pickle", "torch", "importlib", "_pickle"} & set(modules), (
                    name
                )
            if isinstance(node, ast.Attribute | ast.Name):
                ident = node.attr if isinstance(node, ast.Attribute) else node.id
                assert ident not in banned_names, f"{name}: {ident}"


# --- bounds on hostile input ----------------------------------------------------------


def test_memo_index_2_to_32_allocates_nothing() -> None:
    """LONG_BINPUT/LONG_BINGET of 0xffffffff work without a 4-billion-slot memo."""
    data = b"\x80\x02N" + b"r\xff\xff\xff\xff" + b"j\xff\xff\xff\xff" + b"\x86."
    tracemalloc.start()
    try:
        result = walk_pickle(data, path="memo.pkl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.root == (None, None)
    assert peak < 1 << 20


def test_get_of_missing_memo_is_invalid() -> None:
    """A BINGET of a never-stored memo slot is an InvalidHeader, not a KeyError."""
    with pytest.raises(InvalidHeader, match="memo index 5 was never stored"):
        walk_pickle(b"\x80\x02h\x05.", path="m.pkl")


def test_huge_binbytes8_claim_is_refused_before_reading() -> None:
    """A BINBYTES8 claiming 2**63 bytes fails fast as truncated, naming the claim."""
    data = b"\x80\x04\x8e" + struct.pack("<Q", 2**63) + b"abc."
    with pytest.raises(TruncatedFile, match=str(2**63)):
        walk_pickle(data, path="big.pkl")


def test_deep_mark_nesting_is_capped() -> None:
    """A million nested MARK/LIST opcodes stop at the nesting cap: HeaderTooLarge."""
    data = b"(" * 10**6 + b"l" * 10**6 + b"."
    with pytest.raises(HeaderTooLarge, match="MARK nesting"):
        walk_pickle(data, path="marks.pkl")


def test_million_deep_tuples_walk_without_recursion(tmp_path: Path) -> None:
    """A million nested 1-tuples walk iteratively; the plain reader reports a tuple."""
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x02)" + b"\x85" * 10**6 + b".")
    with open_reader(path) as reader:
        layout = pickle_safe.read_layout(reader)
    assert layout.metadata["top_level_type"] == "tuple"


def test_opcode_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """More opcodes than MAX_OPCODES is HeaderTooLarge (cap lowered to stay fast)."""
    monkeypatch.setattr(pickle_vm, "MAX_OPCODES", 1000)
    with pytest.raises(HeaderTooLarge, match="over 1000 opcodes"):
        walk_pickle(pickle.dumps(list(range(2000)), protocol=2), path="ops.pkl")


def test_byte_cap() -> None:
    """A pickle longer than the byte cap is HeaderTooLarge, not a read of everything."""
    data = pickle.dumps("x" * 10_000, protocol=4)
    with pytest.raises(HeaderTooLarge, match="cap"):
        walk_pickle(data, path="cap.pkl", cap=1000)


def test_every_cut_of_a_pickle_is_truncated() -> None:
    """Every strict prefix of a real pickle raises TruncatedFile naming the file."""
    data = pickle.dumps(PLAIN, protocol=2)
    for cut in range(len(data)):
        with pytest.raises(TruncatedFile, match="cut.pkl"):
            walk_pickle(data[:cut], path="cut.pkl")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x80\x06N.", "unsupported pickle protocol 6"),
        (b"\x80\x05\x97.", "out-of-band buffers"),
        (b"\x80\x02\xff.", "unknown opcode 0xff"),
        (b"\x80\x02R.", "stack underflow"),
        (b"\x80\x02N\x85u.", "needs a MARK"),
        (b"\x80\x02Ns.", "stack underflow"),
        (b"\x80\x02(K\x01d.", "odd number"),
        (b"\x80\x02K\x01K\x02a.", "APPEND on a int"),
        (b"\x80\x02K\x01\x93.", "stack underflow"),
        (b"\x80\x02K\x01K\x02\x93.", "STACK_GLOBAL needs two strings"),
        (b"\x80\x02X\x02\x00\x00\x00\xff\xfe.", "not UTF-8"),
        (b"Ix\n.", "bad argument"),
        (b"S'unquoted\n.", "bad argument"),
    ],
)
def test_malformed_pickles_are_invalid(data: bytes, reason: str) -> None:
    """Malformed opcodes give InvalidHeader with a one-line reason naming the file."""
    with pytest.raises(InvalidHeader, match=reason) as info:
        walk_pickle(data, path="bad.pkl")
    assert str(info.value).startswith("bad.pkl: invalid header:")
    assert "\n" not in str(info.value)


def test_walk_partial_keeps_globals_seen_before_the_break() -> None:
    """A hostile pickle broken after its REDUCE still reports the global it used."""
    data = payload("os.system GLOBAL", Path("/nonexistent"))[:-1] + b"\xff"
    result, seen, reason = pickle_safe.walk_partial(data, path="broken.pkl")
    assert result is None
    assert "os.system" in seen
    assert "unknown opcode" in reason


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_format_errors(data: bytes) -> None:
    """Any byte string either walks or raises a FormatError: never another exception."""
    with suppress(FormatError):
        walk_pickle(data, path="fuzz.pkl")


_SEED = pickle.dumps(
    {"a": [1, 2.5, "x", (None, True)], "n": argparse.Namespace(x=1), "b": b"zz"},
    protocol=2,
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_pickles_raise_only_format_errors(edits: list[tuple[int, int]]) -> None:
    """A real pickle with a few bytes changed walks or raises FormatError only."""
    data = bytearray(_SEED)
    for pos, value in edits:
        data[pos] = value
    with suppress(FormatError):
        walk_pickle(bytes(data), path="mut.pkl")
