"""Read pickles without executing them: a bounded stack machine over inert records.

Nothing here imports, calls or builds anything a pickle names. Every opcode of
protocols 0-5 is simulated: GLOBAL, STACK_GLOBAL, INST and EXT* push a
:class:`Global` record (and add its ``module.name`` to the globals a real load
would import); REDUCE, NEWOBJ(_EX), INST and OBJ push a :class:`Call` record;
BUILD, SETITEM(S) and APPEND(S) on a call are stored on it; persistent ids become
:class:`PersistentRef`. Dicts become :class:`PickledDict` (keys need not be
hashable), lists and tuples stay lists and tuples.

Bounds: every opcode pushes at most one value, so ``MAX_OPCODES`` also bounds
the stack, the memo and every container; MARK nesting, byte lengths (against
the bytes that remain) and total pickle bytes have their own caps. The memo is
a dict, so a LONG_BINPUT of 2**32 allocates nothing.

Example:
    >>> import pickle
    >>> result = walk_pickle(pickle.dumps({"a": [1, 2]}), path="x.pkl")
    >>> as_dict(result.root), result.globals
    ([('a', [1, 2])], ())
    >>> safety(["collections.OrderedDict", "posix.system"]).dangerous
    ('posix.system',)
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from modelscan.errors import FormatError, HeaderTooLarge, InvalidHeader, TruncatedFile
from modelscan.records import PickleSafety
from modelscan.scanner.layout import Layout, RangeReader

MAX_PICKLE_BYTES = 256 * 1024 * 1024  # state-dict pickles are KBs: tensors live outside
MAX_OPCODES = 5_000_000  # ~30 per tensor: a 100k-tensor checkpoint needs ~3M
MAX_MARK_DEPTH = 1000  # real checkpoints nest a dozen levels
MAX_TOP_LEVEL_KEYS = 64  # kept in metadata (a bare state dict has thousands)
_FIRST_FETCH = 64 * 1024  # grows x4 per refill: few reads for tiny and huge pickles
_MAX_FETCH = 16 * 1024 * 1024
_HIGHEST_PROTOCOL = 5


@dataclass(frozen=True, slots=True)
class Global:
    """A module attribute the pickle names; a real unpickler would import it."""

    module: str
    name: str

    @property
    def qualname(self) -> str:
        """``module.name``, the spelling used in globals lists."""
        return f"{self.module}.{self.name}"


@dataclass(eq=False, slots=True)
class Call:
    """``func(*args, **kwargs)`` as REDUCE/NEWOBJ/INST/OBJ would run it, never run.

    ``state`` is what BUILD would pass to ``__setstate__``; ``items`` and
    ``appends`` are what SETITEM(S) and APPEND(S)/ADDITEMS would add to the result.
    """

    func: Any
    args: Any
    kwargs: Any = None
    state: Any = None
    items: list[tuple[Any, Any]] = field(default_factory=list)
    appends: list[Any] = field(default_factory=list)


@dataclass(frozen=True, eq=False, slots=True)
class PersistentRef:
    """A PERSID/BINPERSID: torch's ``('storage', type, key, location, numel)``."""

    pid: Any


@dataclass(eq=False, slots=True)
class PickledDict:
    """A dict as (key, value) pairs in insertion order; keys may be any record."""

    items: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class PickledSet:
    """A set or frozenset as a list of its items."""

    items: list[Any] = field(default_factory=list)
    frozen: bool = False


@dataclass(frozen=True, eq=False, slots=True)
class PickleResult:
    """What :func:`walk_pickle` found: the inert root, its globals, where it ended."""

    root: Any
    globals: tuple[str, ...]  # sorted unique module.name
    end: int  # offset just after the STOP opcode
    protocol: int  # from PROTO, 0 or 1 when absent (as pickle itself assumes)


# --- safety -------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


_STORAGE_KINDS = _words(
    "BFloat16 Bool Byte Char ComplexDouble ComplexFloat Double Float Half Int Long "
    "Short"
)
_TENSOR_KINDS = _words("BFloat16 Bool Byte Char Double Float Half Int Long Short")
_SPARSE_KINDS = _words("BFloat16 Byte Char Double Float Half Int Long Short")
_DTYPES = _words(
    "bfloat16 bits16 bits1x8 bits2x4 bits4x2 bits8 bool complex128 complex32 "
    "complex64 float16 float32 float4_e2m1fn_x2 float64 float8_e4m3fn float8_e4m3fnuz "
    "float8_e5m2 float8_e5m2fnuz float8_e8m0fnu int16 int32 int64 int8 qint32 qint8 "
    "quint2x4 quint4x2 quint8 uint16 uint32 uint64 uint8"
)
_REBUILDS = _words(
    "device_tensor_from_cpu_tensor device_tensor_from_numpy meta_tensor_no_storage "
    "nested_tensor parameter parameter_with_state qtensor sparse_tensor tensor "
    "tensor_v2 tensor_v3 wrapper_subclass"
)
_QSCHEMES = _words(
    "per_channel_affine per_channel_affine_float_qparams per_channel_symmetric "
    "per_tensor_affine per_tensor_symmetric"
)

# Exactly what torch 2.13's weights_only unpickler accepts by default
# (torch/_weights_only_unpickler.py, _get_allowed_globals); a test keeps it in sync.
SAFE_GLOBALS: frozenset[str] = frozenset(
    [
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.set",
        "collections.Counter",
        "collections.OrderedDict",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch._tensor._rebuild_from_type_v2",
    ]
    + [f"torch.{k}Storage" for k in _STORAGE_KINDS]
    + [f"torch.cuda.{k}Storage" for k in _STORAGE_KINDS]
    + [f"torch.Q{k}Storage" for k in ("Int32", "Int8", "UInt2x4", "UInt4x2", "UInt8")]
    + [f"torch.{k}Tensor" for k in _TENSOR_KINDS]
    + [f"torch.cuda.{k}Tensor" for k in _TENSOR_KINDS]
    + [f"torch.sparse.{k}Tensor" for k in _SPARSE_KINDS]
    + [f"torch.cuda.sparse.{k}Tensor" for k in _SPARSE_KINDS]
    + [f"torch.{d}" for d in _DTYPES]
    + [f"torch.int{n}" for n in range(1, 8)]
    + [f"torch.uint{n}" for n in range(1, 8)]
    + [f"torch.{q}" for q in _QSCHEMES]
    + [f"torch._utils._rebuild_{r}" for r in _REBUILDS]
)

# Globals known to run code, spawn processes or touch files and sockets. An entry
# matches itself and anything below it ("os" matches "os.system", "os.path.join").
DANGEROUS_GLOBALS: tuple[str, ...] = tuple(
    _words(
        "os posix nt subprocess _posixsubprocess pty socket shutil sys runpy importlib "
        "ctypes webbrowser code pdb multiprocessing commands popen2 asyncio.subprocess "
        "timeit cProfile.run profile.run platform.popen marshal.loads types.CodeType "
        "types.FunctionType pickle.load pickle.loads pickle.Unpickler _pickle.load "
        "_pickle.loads _pickle.Unpickler dill.load dill.loads operator.attrgetter "
        "operator.methodcaller numpy.testing._private.utils.runstring torch.load "
        "torch.jit.load builtins.eval builtins.exec builtins.compile builtins.getattr "
        "builtins.setattr builtins.delattr builtins.__import__ builtins.open "
        "builtins.apply builtins.breakpoint builtins.input builtins.globals "
        "builtins.locals builtins.vars"
    )
)


def _is_dangerous(qualname: str) -> bool:
    return any(qualname == d or qualname.startswith(d + ".") for d in DANGEROUS_GLOBALS)


def safety(globals_: Iterable[str], *, notes: Iterable[str] = ()) -> PickleSafety:
    """Judge what loading would import: safe only if every global is allowlisted.

    Args:
        globals_: ``module.name`` strings, as :func:`walk_pickle` reports them.
        notes: extra facts to keep with the verdict.

    Returns:
        A :class:`PickleSafety` with sorted unique globals and dangerous ones.
    """
    names = tuple(sorted(set(globals_)))
    all_safe = all(g in SAFE_GLOBALS for g in names)
    return PickleSafety(
        verdict="safe" if all_safe else "unsafe",
        globals=names,
        dangerous=tuple(g for g in names if _is_dangerous(g)),
        notes=tuple(notes),
    )


# --- reading ------------------------------------------------------------------------


class _Source:
    """Sequential, bounded reads over one pickle; bytes are fetched lazily."""

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        *,
        start: int,
        end: int,
        path: str,
        cap: int = MAX_PICKLE_BYTES,
        preloaded: bytes | None = None,
    ) -> None:
        self._fetch = fetch
        self._data_end = end
        self._end = min(end, start + cap)
        self._cap = cap
        # Bytes already in memory are used in place and never fetched again.
        self._buf = b"" if preloaded is None else preloaded
        self._base = start if preloaded is None else 0
        self._window = _FIRST_FETCH
        self.pos = start
        self.path = path

    def remaining(self) -> int:
        """Bytes left before the data ends or the cap is reached."""
        return self._end - self.pos

    def short(self, n: int, what: str) -> FormatError:
        """The error for ``n`` bytes wanted where fewer remain: truncation or cap."""
        if self.pos + n > self._data_end:
            have = self._data_end - self.pos
            return TruncatedFile(
                self.path, f"{what} at offset {self.pos} needs {n} bytes, {have} remain"
            )
        return HeaderTooLarge(self.path, f"pickle longer than the {self._cap}-byte cap")

    def _fill(self, n: int, what: str) -> None:
        if n > self.remaining():
            raise self.short(n, what)
        if self.pos + n > self._base + len(self._buf):
            self._buf = self._fetch(
                self.pos, min(max(n, self._window), self.remaining())
            )
            self._base = self.pos
            self._window = min(self._window * 4, _MAX_FETCH)

    def read(self, n: int, what: str = "pickle opcode") -> bytes:
        """Return the next ``n`` bytes; a length beyond the data is refused first."""
        self._fill(n, what)
        i = self.pos - self._base
        self.pos += n
        return self._buf[i : i + n]

    def byte(self) -> int:
        """Return the next byte."""
        self._fill(1, "next opcode (no STOP yet)")
        b = self._buf[self.pos - self._base]
        self.pos += 1
        return b

    def line(self) -> bytes:
        """Return bytes up to the next newline (excluded), growing the window."""
        while True:
            i = self.pos - self._base
            stop = min(len(self._buf), self._end - self._base)
            j = self._buf.find(b"\n", i, stop)
            if j >= 0:
                self.pos = self._base + j + 1
                return self._buf[i:j]
            self._fill(2 * (stop - i) + 64, "text line without newline")


def _intline(line: bytes) -> int:
    # int() refuses over 4300 digits (CPython's str-to-int limit): a ValueError.
    return int(line.rstrip(b"L"))


def _string_line(line: bytes) -> bytes:
    if len(line) < 2 or line[0] not in b"'\"" or line[-1] != line[0]:
        raise ValueError("STRING argument is not quoted")
    return codecs.escape_decode(line[1:-1])[0]


def _text(raw: bytes) -> str | bytes:
    """Decode a protocol 0-2 byte string as torch.load does (utf-8); keep bytes else."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


@dataclass(slots=True)
class _Machine:
    """The pickle stack machine; values are inert records, nothing is called."""

    src: _Source
    stack: list[Any] = field(default_factory=list)
    marks: list[list[Any]] = field(default_factory=list)
    memo: dict[int, Any] = field(default_factory=dict)
    globals: set[str] = field(default_factory=set)
    proto: int = 0
    opcodes: int = 0

    def run(self) -> Any:
        """Execute opcodes until STOP and return the inert root object."""
        while True:
            self.opcodes += 1
            if self.opcodes > MAX_OPCODES:
                reason = f"pickle has over {MAX_OPCODES} opcodes"
                raise HeaderTooLarge(self.src.path, reason)
            code = self.src.byte()
            if code == 0x2E:  # STOP
                return self.pop()
            op = _OPS.get(code)
            if op is None:
                raise self.fail(f"unknown opcode 0x{code:02x}")
            try:
                op(self)
            except (ValueError, OverflowError, struct.error) as exc:
                raise self.fail(f"bad argument to opcode 0x{code:02x}: {exc}") from exc

    def fail(self, reason: str) -> InvalidHeader:
        return InvalidHeader(self.src.path, f"pickle offset {self.src.pos}: {reason}")

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow")
        return self.stack.pop()

    def top(self) -> Any:
        if not self.stack:
            raise self.fail("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise self.fail("opcode needs a MARK and there is none")
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def uint(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.src.read(struct.calcsize(fmt)))[0]

    def counted(self, fmt: str, what: str) -> bytes:
        n = self.uint(fmt)
        if n < 0:
            raise self.fail(f"{what} with negative length {n}")
        if n > self.src.remaining():
            raise self.src.short(n, f"{what} of {n} bytes")
        return self.src.read(n, what)

    def unicode(self, fmt: str, what: str) -> str:
        try:
            return self.counted(fmt, what).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise self.fail(f"{what} is not UTF-8") from exc

    def add_global(self, module: str, name: str) -> Global:
        if self.proto < 3:  # what pickle's find_class does with fix_imports
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        g = Global(module, name)
        self.globals.add(g.qualname)
        return g

    def global_lines(self) -> Global:
        try:
            module = self.src.line().decode("utf-8")
            name = self.src.line().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail("GLOBAL name is not UTF-8") from exc
        return self.add_global(module, name)

    def pairs(self, items: list[Any]) -> list[tuple[Any, Any]]:
        if len(items) % 2:
            raise self.fail("odd number of items for a dict")
        return list(zip(items[0::2], items[1::2], strict=True))

    def setitems(self, pairs: list[tuple[Any, Any]]) -> None:
        target = self.top()
        if not isinstance(target, PickledDict | Call):
            raise self.fail(f"SETITEM on a {type(target).__name__}")
        target.items.extend(pairs)

    def extend(self, values: list[Any]) -> None:
        target = self.top()
        if isinstance(target, list):
            target.extend(values)
        elif isinstance(target, PickledSet):
            target.items.extend(values)
        elif isinstance(target, Call):
            target.appends.extend(values)
        else:
            raise self.fail(f"APPEND on a {type(target).__name__}")

    # --- opcodes that do more than push one value ---

    def op_mark(self) -> None:
        if len(self.marks) >= MAX_MARK_DEPTH:
            reason = f"MARK nesting deeper than {MAX_MARK_DEPTH}"
            raise HeaderTooLarge(self.src.path, reason)
        self.marks.append(self.stack)
        self.stack = []

    def op_pop(self) -> None:
        if self.stack:
            self.stack.pop()
        else:
            self.pop_mark()

    def op_proto(self) -> None:
        self.proto = self.src.read(1)[0]
        if self.proto > _HIGHEST_PROTOCOL:
            raise self.fail(f"unsupported pickle protocol {self.proto}")

    def op_frame(self) -> None:
        n = self.uint("<Q")
        if n > self.src.remaining():
            raise self.src.short(n, f"FRAME of {n} bytes")

    def op_put(self, index: int) -> None:
        if index < 0:
            raise self.fail("negative memo index")
        self.memo[index] = self.top()

    def op_get(self, index: int) -> None:
        if index not in self.memo:
            raise self.fail(f"memo index {index} was never stored")
        self.push(self.memo[index])

    def op_stack_global(self) -> None:
        name, module = self.pop(), self.pop()
        if not isinstance(module, str) or not isinstance(name, str):
            raise self.fail("STACK_GLOBAL needs two strings")
        self.push(self.add_global(module, name))

    def op_inst(self) -> None:
        cls = self.global_lines()
        self.push(Call(cls, tuple(self.pop_mark())))

    def op_obj(self) -> None:
        items = self.pop_mark()
        if not items:
            raise self.fail("OBJ without a class")
        self.push(Call(items[0], tuple(items[1:])))

    def op_reduce(self) -> None:  # also NEWOBJ: cls.__new__(cls, *args), never run
        args = self.pop()
        self.push(Call(self.pop(), args))

    def op_newobj_ex(self) -> None:
        kwargs, args = self.pop(), self.pop()
        self.push(Call(self.pop(), args, kwargs))

    def op_build(self) -> None:
        state = self.pop()
        target = self.top()
        if isinstance(target, Call):
            target.state = state

    def op_ext(self, fmt: str) -> None:
        code = self.uint(fmt)
        # copyreg's extension registry is empty unless a program fills it: unknown name
        self.push(self.add_global("copyreg", f"<extension {code}>"))

    def op_tuple(self, n: int) -> None:
        if len(self.stack) < n:
            raise self.fail("stack underflow")
        items = tuple(self.stack[len(self.stack) - n :])
        del self.stack[len(self.stack) - n :]
        self.push(items)

    def op_int(self) -> None:
        line = self.src.line()
        if line in (b"00", b"01"):  # protocol 0 spells False and True as INT
            self.push(line == b"01")
        else:
            self.push(_intline(line))

    def op_setitem(self) -> None:
        value, key = self.pop(), self.pop()
        self.setitems([(key, value)])

    def op_append(self) -> None:
        self.extend([self.pop()])

    def op_next_buffer(self) -> None:
        raise self.fail("out-of-band buffers (protocol 5 NEXT_BUFFER) are refused")


def _push(make: Callable[[_Machine], Any]) -> Callable[[_Machine], None]:
    return lambda m: m.push(make(m))


def _long(m: _Machine, fmt: str) -> int:
    return int.from_bytes(m.counted(fmt, "LONG"), "little", signed=True)


_M = _Machine
_OPS: dict[int, Callable[[_Machine], object]] = {
    ord("("): _M.op_mark,
    ord("0"): _M.op_pop,
    ord("1"): _M.pop_mark,
    ord("2"): _push(_M.top),
    ord("F"): _push(lambda m: float(m.src.line())),
    ord("I"): _M.op_int,
    ord("L"): _push(lambda m: _intline(m.src.line())),
    ord("N"): _push(lambda m: None),
    ord("P"): _push(lambda m: PersistentRef(_text(m.src.line()))),
    ord("Q"): _push(lambda m: PersistentRef(m.pop())),
    ord("R"): _M.op_reduce,
    ord("S"): _push(lambda m: _text(_string_line(m.src.line()))),
    ord("V"): _push(lambda m: m.src.line().decode("raw-unicode-escape")),
    ord("a"): _M.op_append,
    ord("b"): _M.op_build,
    ord("c"): _push(_M.global_lines),
    ord("d"): _push(lambda m: PickledDict(m.pairs(m.pop_mark()))),
    ord("g"): lambda m: m.op_get(_intline(m.src.line())),
    ord("i"): _M.op_inst,
    ord("l"): _push(_M.pop_mark),
    ord("p"): lambda m: m.op_put(_intline(m.src.line())),
    ord("s"): _M.op_setitem,
    ord("t"): _push(lambda m: tuple(m.pop_mark())),
    ord("G"): _push(lambda m: m.uint(">d")),
    ord("J"): _push(lambda m: m.uint("<i")),
    ord("K"): _push(lambda m: m.uint("<B")),
    ord("M"): _push(lambda m: m.uint("<H")),
    ord("T"): _push(lambda m: _text(m.counted("<i", "BINSTRING"))),
    ord("U"): _push(lambda m: _text(m.counted("<B", "SHORT_BINSTRING"))),
    ord("X"): _push(lambda m: m.unicode("<I", "BINUNICODE")),
    ord("e"): lambda m: m.extend(m.pop_mark()),
    ord("h"): lambda m: m.op_get(m.uint("<B")),
    ord("j"): lambda m: m.op_get(m.uint("<I")),
    ord("}"): _push(lambda m: PickledDict()),
    ord("]"): _push(lambda m: []),
    ord(")"): _push(lambda m: ()),
    ord("o"): _M.op_obj,
    ord("q"): lambda m: m.op_put(m.uint("<B")),
    ord("r"): lambda m: m.op_put(m.uint("<I")),
    ord("u"): lambda m: m.setitems(m.pairs(m.pop_mark())),
    ord("B"): _push(lambda m: m.counted("<I", "BINBYTES")),
    ord("C"): _push(lambda m: m.counted("<B", "SHORT_BINBYTES")),
    0x80: _M.op_proto,
    0x81: _M.op_reduce,  # NEWOBJ
    0x82: lambda m: m.op_ext("<B"),
    0x83: lambda m: m.op_ext("<H"),
    0x84: lambda m: m.op_ext("<i"),
    0x85: lambda m: m.op_tuple(1),
    0x86: lambda m: m.op_tuple(2),
    0x87: lambda m: m.op_tuple(3),
    0x88: _push(lambda m: True),
    0x89: _push(lambda m: False),
    0x8A: _push(lambda m: _long(m, "<B")),
    0x8B: _push(lambda m: _long(m, "<i")),
    0x8C: _push(lambda m: m.unicode("<B", "SHORT_BINUNICODE")),
    0x8D: _push(lambda m: m.unicode("<Q", "BINUNICODE8")),
    0x8E: _push(lambda m: m.counted("<Q", "BINBYTES8")),
    0x8F: _push(lambda m: PickledSet()),
    0x90: lambda m: m.extend(m.pop_mark()),  # ADDITEMS
    0x91: _push(lambda m: PickledSet(m.pop_mark(), frozen=True)),
    0x92: _M.op_newobj_ex,
    0x93: _M.op_stack_global,
    0x94: lambda m: m.op_put(len(m.memo)),  # MEMOIZE
    0x95: _M.op_frame,
    0x96: _push(lambda m: m.counted("<Q", "BYTEARRAY8")),
    0x97: _M.op_next_buffer,
    0x98: lambda m: m.push(m.pop()),  # READONLY_BUFFER: in-band bytes stay as they are
}


def _bytes_source(data: bytes, start: int, path: str, cap: int) -> _Source:
    return _Source(
        lambda off, n: data[off : off + n],
        start=start,
        end=len(data),
        path=path,
        cap=cap,
        preloaded=data,
    )


def _run(src: _Source) -> PickleResult:
    m = _Machine(src)
    root = m.run()
    return PickleResult(root, tuple(sorted(m.globals)), src.pos, m.proto)


def walk_pickle(
    data: bytes, *, path: str, start: int = 0, cap: int = MAX_PICKLE_BYTES
) -> PickleResult:
    """Simulate the pickle starting at ``data[start]`` up to its STOP, inertly.

    Args:
        data: bytes holding the pickle (bytes after STOP are ignored).
        path: file name for error messages.
        start: offset of the pickle's first opcode in ``data``.
        cap: most bytes the pickle may span.

    Returns:
        The inert root object, the sorted globals a load would import, and the
        offset just after STOP.

    Raises:
        TruncatedFile: the data ends before STOP or inside an opcode.
        HeaderTooLarge: a cap on opcodes, MARK nesting or bytes was exceeded.
        InvalidHeader: an unknown opcode, stack underflow, bad argument, ...
    """
    return _run(_bytes_source(data, start, path, cap))


def walk_pickle_at(
    reader: RangeReader, offset: int, *, cap: int = MAX_PICKLE_BYTES
) -> PickleResult:
    """Like :func:`walk_pickle`, reading the file lazily from ``offset``."""
    src = _Source(
        reader.read_at, start=offset, end=reader.size, path=reader.name, cap=cap
    )
    return _run(src)


def walk_partial(
    data: bytes, *, path: str
) -> tuple[PickleResult | None, set[str], str]:
    """Walk ``data``; on failure keep the globals seen before it, and the reason.

    A loader would already have imported those globals (and run any REDUCE)
    before it met the broken opcode, so they still count for safety.
    """
    m = _Machine(_bytes_source(data, 0, path, MAX_PICKLE_BYTES))
    try:
        root = m.run()
    except FormatError as exc:
        return None, m.globals, exc.reason
    return (
        PickleResult(root, tuple(sorted(m.globals)), m.src.pos, m.proto),
        m.globals,
        "",
    )


def looks_like_pickle(head: bytes) -> bool:
    """True only when ``head`` parses as one complete pickle up to its STOP."""
    if not head:
        return False
    try:
        walk_pickle(head, path="<head>")
    except FormatError:
        return False
    return True


# --- the inert object graph -----------------------------------------------------------

DICT_TYPES = frozenset(
    {"collections.OrderedDict", "builtins.dict", "collections.Counter"}
)
_SCALAR_KEYS = (str, int, float, bytes, bool, type(None))


def _dedupe(pairs: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Later values win, first positions stay: what building a real dict gives."""
    out: dict[Any, tuple[Any, Any]] = {}
    for k, v in pairs:
        out[k if isinstance(k, _SCALAR_KEYS) else ("<object>", id(k))] = (k, v)
    return list(out.values())


def as_dict(obj: Any) -> list[tuple[Any, Any]] | None:
    """Return the (key, value) pairs of a pickled dict or OrderedDict, else None.

    Handles ``{}`` with SETITEMS, ``OrderedDict()`` with SETITEMS, and
    ``OrderedDict([[k, v], ...])`` as old torch versions wrote it.
    """
    if isinstance(obj, PickledDict):
        return _dedupe(obj.items)
    if not isinstance(obj, Call):
        return None
    is_dict_type = isinstance(obj.func, Global) and obj.func.qualname in DICT_TYPES
    if not is_dict_type and not obj.items:
        return None
    pairs: list[tuple[Any, Any]] = []
    args = obj.args if isinstance(obj.args, tuple) else ()
    if is_dict_type and args and isinstance(args[0], list | tuple):
        pairs = [
            tuple(p) for p in args[0] if isinstance(p, list | tuple) and len(p) == 2
        ]
    return _dedupe(pairs + obj.items)


def type_name(obj: Any) -> str:
    """A short name of what a pickled value is: ``dict``, ``argparse.Namespace``, ..."""
    if isinstance(obj, PickledDict):
        return "dict"
    if isinstance(obj, Call):
        return obj.func.qualname if isinstance(obj.func, Global) else "object"
    if isinstance(obj, PickledSet):
        return "frozenset" if obj.frozen else "set"
    if isinstance(obj, Global):
        return obj.qualname
    if isinstance(obj, PersistentRef):
        return "persistent_id"
    return type(obj).__name__


def top_level_keys(root: Any) -> list[str] | None:
    """The string keys of a dict-like root (at most ``MAX_TOP_LEVEL_KEYS``)."""
    pairs = as_dict(root)
    if pairs is None:
        return None
    return [str(k) for k, _ in pairs[:MAX_TOP_LEVEL_KEYS] if isinstance(k, str | int)]


# --- plain pickle files ---------------------------------------------------------------

_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PICKLES = 5  # magic, protocol version, sys_info, object, storage keys
MAX_PICKLES = 1000  # concatenated pickles walked in one file


def read_layout(reader: RangeReader) -> Layout:
    """Read a plain pickle file: its top-level shape and what loading would import.

    A pickle cannot hold torch storages by itself, so no tensors are reported.
    Pickles that follow the first (``pickle.load`` in a loop reads them) are
    walked too when they start with a PROTO opcode, and their globals join the
    verdict; a torch legacy file (it starts with torch's magic number) is read
    as its five pickles, its object being the fourth.

    Args:
        reader: the file.

    Returns:
        A ``Layout`` with format ``pickle``, metadata ``top_level_type`` (and
        ``top_level_keys`` for a dict) and ``pickle_safety``.

    Raises:
        TruncatedFile, HeaderTooLarge, InvalidHeader: the first pickle is broken.
    """
    results = [walk_pickle_at(reader, 0)]
    legacy = results[0].root == _TORCH_LEGACY_MAGIC
    notes = ["torch legacy file: torch-legacy reads its tensors"] if legacy else []
    while results[-1].end < reader.size and len(results) < MAX_PICKLES:
        pos = results[-1].end
        if legacy and len(results) == _LEGACY_PICKLES:
            break  # storage bytes follow
        if not legacy and reader.read_at(pos, 1) != b"\x80":  # no PROTO: not a pickle
            break
        try:
            results.append(walk_pickle_at(reader, pos))
        except FormatError as exc:
            if legacy:
                raise
            notes.append(
                f"bytes after pickle {len(results)}: not a pickle: {exc.reason}"
            )
            break
    main = results[3].root if legacy and len(results) > 3 else results[0].root
    metadata: dict[str, Any] = {
        "top_level_type": type_name(main),
        "pickles": len(results),
    }
    keys = top_level_keys(main)
    if keys is not None:
        metadata["top_level_keys"] = keys
        metadata["top_level_key_count"] = len(as_dict(main) or [])
    if results[-1].end < reader.size:
        metadata["trailing_bytes"] = reader.size - results[-1].end
    globals_ = [g for r in results for g in r.globals]
    return Layout(
        format="pickle", metadata=metadata, pickle_safety=safety(globals_, notes=notes)
    )
