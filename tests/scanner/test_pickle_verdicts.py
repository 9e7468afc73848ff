"""Pickle verdicts: every stream a loader would run gets one, the danger named.

Every hostile stream here is built byte by byte; the live-payload tests prove
that a real ``pickle.loads`` runs it (a marker file appears), and the verdict
tests prove that scanning the same bytes names the danger and runs nothing.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import pickle
import struct
from contextlib import suppress
from pathlib import Path

import pytest

from modelscan.records import Fingerprint
from modelscan.scanner.fingerprint import fingerprint
from modelscan.scanner.formats import pickle_danger
from modelscan.scanner.sniff import Format, detect_format


def su(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def call_p4(module: str, name: str, arg: str) -> bytes:
    """Protocol 4: ``module.name(arg)`` through STACK_GLOBAL and REDUCE."""
    return b"\x80\x04" + su(module) + su(name) + b"\x93" + su(arg) + b"\x85R."


def call_p0(module: str, name: str, arg: str) -> bytes:
    """Protocol 0: ``module.name(arg)`` through GLOBAL, a MARKed tuple and REDUCE."""
    return f"c{module}\n{name}\n(V{arg}\ntR.".encode()


def touch(marker: Path) -> str:
    return f"touch {marker}"


def scan(tmp_path: Path, data: bytes, name: str = "f.bin") -> Fingerprint:
    path = tmp_path / name
    path.write_bytes(data)
    return fingerprint(path)


# --- protocol 0 streams start with any opcode a stream can start with -----------------

# A first value of each kind, then POP: the hostile call follows it.
STARTS = {
    "NONE N": b"N",
    "INT I": b"I7\n",
    "bool as INT": b"I01\n",
    "LONG L": b"L12345678901234567890L\n",
    "FLOAT F": b"F1.5\n",
    "STRING S": b"S'text'\n",
    "UNICODE V": b"Vtext\n",
    "MARK (": b"(I1\nI2\nt",
    "EMPTY_LIST ]": b"]",
    "EMPTY_DICT }": b"}",
    "EMPTY_TUPLE )": b")",
    "GLOBAL c": b"ccollections\nOrderedDict\n",
    "PERSID P": b"P0\n",
    "BININT1 K": b"K\x07",
    "BININT J": b"J\x07\x00\x00\x00",
    "BININT2 M": b"M\x07\x00",
    "BINFLOAT G": b"G" + struct.pack(">d", 1.5),
    "BINSTRING T": b"T\x04\x00\x00\x00text",
    "SHORT_BINSTRING U": b"U\x04text",
    "BINUNICODE X": b"X\x04\x00\x00\x00text",
    "SHORT_BINBYTES C": b"C\x04text",
    "BINBYTES B": b"B\x04\x00\x00\x00text",
}


class _NoPersist(pickle.Unpickler):
    def persistent_load(self, pid: object) -> object:
        return pid


@pytest.mark.parametrize("start", sorted(STARTS))
def test_every_first_opcode_is_live(start: str, tmp_path: Path) -> None:
    """Each stream really runs its command under a real Unpickler: payloads live."""
    import io

    marker = tmp_path / "pwned"
    data = STARTS[start] + b"0" + call_p0("os", "system", touch(marker))
    with suppress(Exception):
        _NoPersist(io.BytesIO(data)).load()
    assert marker.exists()


@pytest.mark.parametrize("start", sorted(STARTS))
def test_every_first_opcode_sniffs_as_a_pickle(start: str, tmp_path: Path) -> None:
    """A stream starting with any value opcode is a pickle, its os.system named."""
    marker = tmp_path / "pwned"
    data = STARTS[start] + b"0" + call_p0("os", "system", touch(marker))
    assert detect_format(data, len(data)) is Format.PICKLE
    fp = scan(tmp_path, data)
    assert fp.format == "pickle"
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.verdict == "unsafe"
    assert "os.system" in fp.pickle_safety.dangerous
    assert not marker.exists()


@pytest.mark.parametrize("start", sorted(STARTS))
def test_benign_streams_of_every_start_name_no_danger(
    start: str, tmp_path: Path
) -> None:
    """The same starts followed by plain data are pickles with no named danger."""
    fp = scan(tmp_path, STARTS[start] + b"0N.")
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.dangerous == ()


def test_text_files_are_still_refused(tmp_path: Path) -> None:
    """Text that starts with an opcode letter (I, V, c, S) is refused, not a pickle."""
    from modelscan.errors import UnknownFormat

    for text in (b"Introduction\nmore\n", b"Very long\nline", b"config\nvalue\nx\n"):
        with pytest.raises(UnknownFormat, match="text"):
            scan(tmp_path, text)


# --- odd and broken streams -----------------------------------------------------------


def test_stack_global_on_a_computed_string_is_named(tmp_path: Path) -> None:
    """STACK_GLOBAL on a string a call returns: an import computed at load time."""
    marker = tmp_path / "pwned"
    # module = operator.concat("o", "s"), computed by a REDUCE while loading
    module = b"\x80\x04" + su("operator") + su("concat") + b"\x93" + su("o") + su("s")
    module += b"\x86R"
    data = module + su("system") + b"\x93" + su(touch(marker)) + b"\x85R."
    with suppress(Exception):
        pickle.loads(data)
    assert marker.exists()  # live
    marker.unlink()
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert "<computed>.system" in safety.dangerous
    assert any("import computed at load time" in n for n in safety.notes)
    assert not marker.exists()


def test_stack_global_on_memoised_strings_is_static(tmp_path: Path) -> None:
    """Strings fetched back from the memo are known statically: named as they are."""
    data = b"\x80\x04" + su("os") + b"\x94" + su("system") + b"\x94"
    data += b"h\x00h\x01\x93" + su("true") + b"\x85R."
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert safety.dangerous == ("os.system",)


def test_truncated_right_after_the_call_keeps_its_verdict(tmp_path: Path) -> None:
    """A stream cut after REDUCE (no STOP): os.system named, the cut as error."""
    fp = scan(tmp_path, call_p0("os", "system", "true")[:-1])
    assert fp.format == "pickle"
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.verdict == "unsafe"
    assert fp.pickle_safety.dangerous == ("os.system",)
    assert "no STOP" in (fp.pickle_safety.error or "")
    assert fp.to_json()["pickle_safety"]["error"] == fp.pickle_safety.error


def test_broken_after_the_call_keeps_its_verdict(tmp_path: Path) -> None:
    """Garbage after the hostile call: the call is named, the fault is the error."""
    data = call_p4("posix", "system", "true")[:-1] + b"\xff\xfe"
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert safety.dangerous == ("posix.system",)
    assert "unknown opcode 0xff" in (safety.error or "")


def test_broken_benign_stream_is_never_safe(tmp_path: Path) -> None:
    """A plain dict cut short is unsafe (nothing vouches for the rest), no danger."""
    data = pickle.dumps({"a": list(range(50))}, protocol=4)[:-5]
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert safety.verdict == "unsafe"
    assert safety.dangerous == ()
    assert safety.error


def _framed(n: int, body: bytes) -> bytes:
    return b"\x80\x04\x95" + struct.pack("<Q", n) + body


@pytest.mark.parametrize("declared", [0, 1, 3, 1000])
def test_frames_never_stop_the_walk(declared: int, tmp_path: Path) -> None:
    """A FRAME shorter or longer than its data: the call after it is still named."""
    marker = tmp_path / "pwned"
    body = call_p4("os", "system", touch(marker))[2:]
    data = _framed(declared, body)
    with suppress(Exception):
        pickle._loads(data)  # type: ignore[attr-defined]  # the pure-Python loader
    if declared != 3:  # 3 cuts an opcode: that one loader refuses, C's reads on
        assert marker.exists()
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert "os.system" in safety.dangerous
    assert (declared == 1000) == any("FRAME" in n for n in safety.notes)


def test_reference_expansion_bomb_is_named(tmp_path: Path) -> None:
    """Lists of the list before, 40 times: 2**40 elements when expanded, named."""
    data = b"\x80\x02]q\x00"
    for level in range(1, 41):
        data += b"(h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"lq"
        data += bytes([level])
    data += b"."
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert pickle_danger.BOMB in safety.dangerous
    assert safety.verdict == "unsafe"


def test_a_large_honest_list_is_no_bomb(tmp_path: Path) -> None:
    """100k distinct items: big, but no shared-reference growth: nothing named."""
    data = pickle.dumps([[i] for i in range(100_000)], protocol=4)
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert safety.dangerous == ()


# --- the danger families --------------------------------------------------------------

FAMILY_SAMPLES = [
    ("os", "system"),
    ("posix", "system"),
    ("nt", "system"),
    ("subprocess", "Popen"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "compile"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("runpy", "run_path"),
    ("importlib", "import_module"),
    ("ctypes", "CDLL"),
    ("pty", "spawn"),
    ("socket", "create_connection"),
    ("smtplib", "SMTP"),
    ("imaplib", "IMAP4"),
    ("ftplib", "FTP"),
    ("poplib", "POP3"),
    ("telnetlib", "Telnet"),
    ("nntplib", "NNTP"),
    ("webbrowser", "open"),
    ("multiprocessing", "Process"),
    ("marshal", "loads"),
    ("types", "FunctionType"),
    ("types", "CodeType"),
    ("code", "InteractiveInterpreter"),
    ("pip", "main"),
    ("setuptools.sandbox", "run_setup"),
    ("pkg_resources", "load_entry_point"),
    ("torch", "load"),
    ("numpy", "load"),
    ("pickle", "loads"),
    ("_io", "FileIO"),
    ("pathlib", "os.system"),  # a dotted name through pathlib's own `os`
    ("pathlib", "Path.write_text"),
    ("_xxsubinterpreters", "run_string"),
    ("builtins", "object.__subclasses__"),
    ("torch.serialization", "pickle.loads"),
]


@pytest.mark.parametrize(("module", "name"), FAMILY_SAMPLES)
def test_each_danger_family_is_named(module: str, name: str, tmp_path: Path) -> None:
    """A call of each family's names is unsafe with the name and family given."""
    safety = scan(tmp_path, call_p4(module, name, "x")).pickle_safety
    assert safety is not None
    assert safety.verdict == "unsafe"
    assert f"{module}.{name}" in safety.dangerous
    assert any(n.startswith(f"{module}.{name}: ") for n in safety.notes)


def test_python2_names_are_judged_as_python3_maps_them(tmp_path: Path) -> None:
    """Protocol 0's __builtin__.eval is builtins.eval, the name a load imports."""
    safety = scan(tmp_path, call_p0("__builtin__", "eval", "1")).pickle_safety
    assert safety is not None
    assert safety.dangerous == ("builtins.eval",)


# --- benign controls ------------------------------------------------------------------

BENIGN = {
    "plain containers": {"a": [1, 2.5, None], "t": (1, "x"), "s": {1, 2}},
    "bytes via _codecs.encode": b"\x00\xffraw bytes",
    "OrderedDict": collections.OrderedDict(a=1, b=[2]),
    "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "argparse.Namespace": argparse.Namespace(lr=0.1, name="run"),
}


@pytest.mark.parametrize("key", sorted(BENIGN))
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_benign_controls_name_no_danger(
    key: str, protocol: int, tmp_path: Path
) -> None:
    """Ordinary data in any protocol: a verdict with no named danger, no error."""
    fp = scan(tmp_path, pickle.dumps(BENIGN[key], protocol=protocol))
    assert fp.format == "pickle"
    assert fp.pickle_safety is not None
    assert fp.pickle_safety.dangerous == ()
    assert fp.pickle_safety.error is None
    on_allowlist = key in (
        "plain containers",
        "OrderedDict",
        "bytes via _codecs.encode",
    )
    assert (fp.pickle_safety.verdict == "safe") == on_allowlist


def test_legacy_rebuild_tensor_is_safe(tmp_path: Path) -> None:
    """A legacy torch._utils._rebuild_tensor call (allowlisted) is safe."""
    data = b"\x80\x02ctorch._utils\n_rebuild_tensor\nq\x00(K\x00K\x01tR."
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert safety.verdict == "safe"
    assert safety.dangerous == ()


# --- getattr on names known statically ---------------------------------------------

GETATTR = b"\x80\x04" + su("builtins") + su("getattr") + b"\x93"


def _static_getattr(module: str, cls: str, attr: str) -> bytes:
    return su(module) + su(cls) + b"\x93" + su(attr) + b"\x86R"


def test_getattr_of_a_static_name_is_judged_by_that_name(tmp_path: Path) -> None:
    """getattr(cls, "name") as enum members pickle: reviewed, getattr not named."""
    data = GETATTR + _static_getattr("collections", "OrderedDict", "fromkeys") + b"."
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert safety.verdict == "unsafe"
    assert safety.dangerous == ()
    assert "builtins.getattr reaches collections.OrderedDict.fromkeys" in safety.notes


def test_getattr_reaching_a_dangerous_name_names_it(tmp_path: Path) -> None:
    """getattr(pathlib.Path, "write_text"), called and its result dropped: named."""
    reach = _static_getattr("pathlib", "Path", "write_text")
    data = GETATTR + reach + su("/tmp/x") + su("y") + b"\x86R0N."
    safety = scan(tmp_path, data).pickle_safety
    assert safety is not None
    assert safety.dangerous == ("pathlib.Path.write_text",)


@pytest.mark.parametrize(
    "tail",
    [
        su("builtins") + su("str") + b"\x93" + su("x") + b"\x85R" + su("y") + b"\x86R.",
        b".",  # getattr itself handed on as a value
        b"\x94" + _static_getattr("collections", "Counter", "x") + b"0h\x00.",
    ],
    ids=["computed object", "as a value", "memo copy returned"],
)
def test_getattr_on_anything_else_is_named(tail: bytes, tmp_path: Path) -> None:
    """A getattr on computed arguments, or used other than as a static call: named."""
    safety = scan(tmp_path, GETATTR + tail).pickle_safety
    assert safety is not None
    assert "builtins.getattr" in safety.dangerous
