"""A bounded pickle stack machine over inert records: reads, never executes.

Nothing here imports, calls or builds anything a pickle names. Every opcode of
protocols 0-5 is simulated: GLOBAL, STACK_GLOBAL, INST and EXT* push a
:class:`Global` record (and add its ``module.name`` to the globals a real load
would import; a STACK_GLOBAL on a string only a call computes is spelled with
``<computed>``); REDUCE, NEWOBJ(_EX), INST and OBJ push a :class:`Call` record;
BUILD, SETITEM(S) and APPEND(S) on a call are stored on it; persistent ids become
:class:`PersistentRef`. Dicts become :class:`PickledDict` (keys need not be
hashable), lists and tuples stay lists and tuples.

A FRAME's length never stops the walk (CPython's unpickler reads on past a
short one); a BUILD hook lets joblib's inline arrays be passed over
(:mod:`.joblib_arrays`). Lenient walks and sniffing are in :mod:`.pickle_walk`.

Bounds: every opcode pushes at most one value, so ``MAX_OPCODES`` also bounds
the stack, the memo and every container; MARK nesting, byte lengths (against
the bytes that remain) and total pickle bytes have their own caps. The memo is
a dict, so a LONG_BINPUT of 2**32 allocates nothing.

Example:
    >>> import pickle
    >>> result = walk_pickle(pickle.dumps({"a": [1, 2]}), path="x.pkl")
    >>> result.root.items, result.globals
    ([('a', [1, 2])], ())
"""

from __future__ import annotations

import _compat_pickle
import codecs
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelscan.errors import HeaderTooLarge, InvalidHeader
from modelscan.records import Record
from modelscan.scanner.formats.pickle_source import MAX_PICKLE_BYTES, Source
from modelscan.scanner.layout import RangeReader

MAX_OPCODES = 5_000_000  # ~30 per tensor: a 100k-tensor checkpoint needs ~3M
MAX_MARK_DEPTH = 1000  # real checkpoints nest a dozen levels
_HIGHEST_PROTOCOL = 5
_MAX_NOTES = 20


@dataclass(frozen=True, slots=True, repr=False, eq=False)  # Record's methods
class Global(Record):
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

    src: Source
    stack: list[Any] = field(default_factory=list)
    marks: list[list[Any]] = field(default_factory=list)
    memo: dict[int, Any] = field(default_factory=dict)
    globals: set[str] = field(default_factory=set)
    proto: int = 0
    opcodes: int = 0
    calls: int = 0  # REDUCE, NEWOBJ(_EX), INST, OBJ: calls a real load would make
    shared: int = 0  # second references to containers: what an expansion bomb needs
    call_log: list[Call] = field(default_factory=list)  # every call, popped ones too
    pushes: dict[str, int] = field(default_factory=dict)  # references to each global
    notes: list[str] = field(default_factory=list)  # oddities a real load reads past
    # Called after BUILD on a call: joblib's unpickler reads array bytes right there.
    build_hook: Callable[[_Machine, Call], None] | None = None

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

    def read_raw(self, n: int, what: str) -> bytes:
        """Consume ``n`` bytes that are not opcodes (joblib's padding)."""
        if n > self.src.remaining():
            raise self.src.short(n, what)
        return self.src.read(n, what)

    def skip_raw(self, n: int, what: str) -> None:
        """Pass over ``n`` bytes that are not opcodes (joblib's inline arrays)."""
        self.src.skip(n, what)

    def walk_nested(self) -> Any:
        """Walk a pickle embedded at the current offset; its globals count too."""
        inner = _Machine(self.src, build_hook=self.build_hook)
        inner.opcodes = self.opcodes
        try:
            return inner.run()
        finally:
            self.opcodes = inner.opcodes
            self.calls += inner.calls
            self.call_log += inner.call_log
            for name, n in inner.pushes.items():
                self.pushes[name] = self.pushes.get(name, 0) + n
            self.globals |= inner.globals
            self.notes.extend(inner.notes[: _MAX_NOTES - len(self.notes)])

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
        self.pushes[g.qualname] = self.pushes.get(g.qualname, 0) + 1
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
        # CPython's unpickler only prefetches a frame: opcodes past a short frame
        # are read on, and the pure-Python one reads on past a frame claiming more
        # bytes than remain. So a frame's length never stops the walk.
        at = self.src.pos - 1
        n = self.uint("<Q")
        if n > self.src.remaining() and len(self.notes) < _MAX_NOTES:
            self.notes.append(f"FRAME at offset {at} claims {n} bytes, fewer remain")

    def op_put(self, index: int) -> None:
        if index < 0:
            raise self.fail("negative memo index")
        self.memo[index] = self.top()

    def op_get(self, index: int) -> None:
        if index not in self.memo:
            raise self.fail(f"memo index {index} was never stored")
        self.push_shared(self.memo[index])

    def push_shared(self, value: Any) -> None:
        """Push a second reference (GET, DUP); count it when it is a container."""
        if isinstance(value, _CONTAINERS):
            self.shared += 1
        elif isinstance(value, Global):
            self.pushes[value.qualname] = self.pushes.get(value.qualname, 0) + 1
        self.push(value)

    def op_stack_global(self) -> None:
        name, module = self.pop(), self.pop()
        if isinstance(module, str) and isinstance(name, str):
            self.push(self.add_global(module, name))
            return
        loaded = (str, Call, Global, PersistentRef)  # a call may return a string
        if not all(isinstance(v, loaded) for v in (module, name)):
            raise self.fail("STACK_GLOBAL needs two strings")
        # A string a call returns while loading: what gets imported is decided then.
        g = Global(_static(module), _static(name))
        self.globals.add(g.qualname)
        self.push(g)

    def call(self, func: Any, args: Any, kwargs: Any = None) -> None:
        """Push the record of a call a real load would make, and log it."""
        c = Call(func, args, kwargs)
        self.calls += 1
        self.call_log.append(c)
        self.push(c)

    def op_inst(self) -> None:
        cls = self.global_lines()
        self.call(cls, tuple(self.pop_mark()))

    def op_obj(self) -> None:
        items = self.pop_mark()
        if not items:
            raise self.fail("OBJ without a class")
        self.call(items[0], tuple(items[1:]))

    def op_reduce(self) -> None:  # also NEWOBJ: cls.__new__(cls, *args), never run
        args = self.pop()
        self.call(self.pop(), args)

    def op_newobj_ex(self) -> None:
        kwargs, args = self.pop(), self.pop()
        self.call(self.pop(), args, kwargs)

    def op_build(self) -> None:
        state = self.pop()
        target = self.top()
        if isinstance(target, Call):
            target.state = state
            if self.build_hook is not None:
                self.build_hook(self, target)

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


COMPUTED = "<computed>"  # a module or name only a load would compute
_CONTAINERS = (list, tuple, PickledDict, PickledSet, Call)


def _static(value: Any) -> str:
    return value if isinstance(value, str) else COMPUTED


def _push(make: Callable[[_Machine], Any]) -> Callable[[_Machine], None]:
    return lambda m: m.push(make(m))


def _long(m: _Machine, fmt: str) -> int:
    return int.from_bytes(m.counted(fmt, "LONG"), "little", signed=True)


_M = _Machine
_OPS: dict[int, Callable[[_Machine], object]] = {
    ord("("): _M.op_mark,
    ord("0"): _M.op_pop,
    ord("1"): _M.pop_mark,
    ord("2"): lambda m: m.push_shared(m.top()),
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


def _bytes_source(data: bytes, start: int, path: str, cap: int) -> Source:
    return Source(
        lambda off, n: data[off : off + n],
        start=start,
        end=len(data),
        path=path,
        cap=cap,
        preloaded=data,
    )


def _run(src: Source) -> PickleResult:
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
    """Like :func:`walk_pickle`, reading the file lazily from ``offset``.

    A reader with a ``read_ahead`` method (a remote one) decides how far past
    the bytes needed each read goes.
    """
    src = Source.from_reader(reader, offset, cap=cap)
    return _run(src)
