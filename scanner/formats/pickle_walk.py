r"""Lenient pickle walks: what a load reads before any fault, and pickle sniffing.

:func:`walk_lenient` runs the inert stack machine of :mod:`.pickle_vm` and,
instead of raising at a broken opcode, returns everything read before it (the
globals a loader would already have imported, the calls it would have made)
with the fault's reason. :func:`sniff_pickle` decides from a file's first bytes
whether a loader would treat it as a pickle, whatever its protocol.

Example:
    >>> walk = walk_lenient(b"cos\nsystem\n(S'x'\ntR", path="cut.pkl")
    >>> walk.globals, walk.fault, walk.is_pickle()
    (('os.system',), 'truncated', True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from modelscan.errors import FormatError, HeaderTooLarge, TruncatedFile
from modelscan.records import Record
from modelscan.scanner.formats.pickle_source import MAX_PICKLE_BYTES, Source
from modelscan.scanner.formats.pickle_vm import (
    _HIGHEST_PROTOCOL,
    _OPS,
    Call,
    PickleResult,
    _bytes_source,
    _Machine,
    walk_pickle,
)
from modelscan.scanner.layout import RangeReader


@dataclass(frozen=True, slots=True, repr=False, eq=False)  # Record's methods
class PickleWalk(Record):
    """One pickle walked as far as it goes: what a load reads before any fault.

    A loader has already imported those globals (and made those calls) when it
    meets a broken opcode, so they count for safety even when ``error`` is set.
    """

    result: PickleResult | None  # None when the walk stopped at a fault
    globals: tuple[str, ...]  # sorted unique, up to the fault
    error: str  # "" for a whole pickle, else the fault's reason
    end: int  # offset after STOP, or where the fault was met
    opcodes: int
    calls: int
    notes: tuple[str, ...] = ()
    fault: str = ""  # "", "truncated", "too-large" or "invalid"
    shared: int = 0  # GETs and DUPs of containers
    call_log: list[Call] = field(default_factory=list)  # every call made, up to a fault
    pushes: dict[str, int] = field(default_factory=dict)  # references to each global

    def is_pickle(self, *, more_bytes: bool = False) -> bool:
        """Whether a loader would treat these bytes as a pickle it runs.

        True when the walk reached STOP or a cap, or broke only after a global
        was imported and called (a hostile stream broken after its payload), or
        (``more_bytes``: only the head was walked) ran 8 opcodes or more until
        the head ended. Text breaks within a few opcodes and makes no call.
        """
        if self.result is not None or self.fault == "too-large":
            return True
        if more_bytes and self.fault == "truncated" and self.opcodes >= 8:
            return True
        return bool(self.globals) and self.calls > 0


BuildHook = Callable[["_Machine", Call], None]


def _walk(src: Source, build_hook: BuildHook | None) -> PickleWalk:
    m = _Machine(src, build_hook=build_hook)
    result, error, fault = None, "", ""
    try:
        root = m.run()
        result = PickleResult(root, tuple(sorted(m.globals)), src.pos, m.proto)
    except FormatError as exc:
        error = exc.reason
        fault = _FAULTS.get(type(exc), "invalid")
    return PickleWalk(
        result,
        tuple(sorted(m.globals)),
        error,
        src.pos,
        m.opcodes,
        m.calls,
        tuple(m.notes),
        fault,
        m.shared,
        m.call_log,
        m.pushes,
    )


_FAULTS = {TruncatedFile: "truncated", HeaderTooLarge: "too-large"}


def walk_lenient(
    data: bytes,
    *,
    path: str,
    start: int = 0,
    cap: int = MAX_PICKLE_BYTES,
    build_hook: Callable[[_Machine, Call], None] | None = None,
) -> PickleWalk:
    """Walk the pickle at ``data[start]``; a fault ends the walk, never raises."""
    return _walk(_bytes_source(data, start, path, cap), build_hook)


def walk_lenient_at(
    reader: RangeReader,
    offset: int,
    *,
    cap: int = MAX_PICKLE_BYTES,
    build_hook: Callable[[_Machine, Call], None] | None = None,
) -> PickleWalk:
    """Like :func:`walk_lenient`, reading the file lazily from ``offset``."""
    src = Source.from_reader(reader, offset, cap=cap)
    return _walk(src, build_hook)


def walk_partial(
    data: bytes, *, path: str
) -> tuple[PickleResult | None, set[str], str]:
    """Walk ``data``; on failure keep the globals seen before it, and the reason."""
    walk = walk_lenient(data, path=path)
    return walk.result, set(walk.globals), walk.error


def sniff_pickle(head: bytes, size: int) -> bool:
    """True when ``head`` (a file's first bytes) reads as a pickle opcode stream.

    The head starts with PROTO 2-5, or its walk passes
    :meth:`PickleWalk.is_pickle` (protocols 0 and 1 have no marker).
    """
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= _HIGHEST_PROTOCOL:
        return True
    if not head or head[0] not in _OPS:
        return False
    walk = walk_lenient(head, path="<head>")
    return walk.is_pickle(more_bytes=size > len(head))


def looks_like_pickle(head: bytes) -> bool:
    """True only when ``head`` parses as one complete pickle up to its STOP."""
    if not head:
        return False
    try:
        walk_pickle(head, path="<head>")
    except FormatError:
        return False
    return True
