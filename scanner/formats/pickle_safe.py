"""Judge pickles by what loading them would import, and read plain pickle files.

The pickle itself is simulated by :mod:`.pickle_vm` (inert records, never
executed); this module holds the allowlist verdict, helpers over the inert
object graph, and the reader for plain pickle files.

Example:
    >>> import pickle
    >>> result = walk_pickle(pickle.dumps({"a": [1, 2]}), path="x.pkl")
    >>> as_dict(result.root), result.globals
    ([('a', [1, 2])], ())
    >>> safety(["collections.OrderedDict", "posix.system"]).dangerous
    ('posix.system',)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelscan.records import PickleSafety
from modelscan.scanner.formats.joblib_arrays import (
    WRAPPERS,
    after_build,
    count_arrays,
)
from modelscan.scanner.formats.pickle_danger import (
    BOMB,
    BOMB_MIN_SHARED,
    EMBEDDED_LOADERS,
    GETATTR,
    bomb_note,
    danger_of,
    embedded_payloads,
    static_getattrs,
)
from modelscan.scanner.formats.pickle_vm import (
    MAX_PICKLE_BYTES,
    Call,
    Global,
    PersistentRef,
    PickledDict,
    PickledSet,
    PickleResult,
    walk_pickle,
    walk_pickle_at,
)
from modelscan.scanner.formats.pickle_walk import (
    PickleWalk,
    looks_like_pickle,
    sniff_pickle,
    walk_lenient,
    walk_lenient_at,
    walk_partial,
)
from modelscan.scanner.layout import Layout, RangeReader

__all__ = [
    "MAX_PICKLE_BYTES",
    "Call",
    "Global",
    "PersistentRef",
    "PickleResult",
    "PickleScan",
    "PickleWalk",
    "PickledDict",
    "PickledSet",
    "as_dict",
    "looks_like_pickle",
    "read_layout",
    "safety",
    "scan_pickles",
    "sniff_pickle",
    "top_level_keys",
    "type_name",
    "walk_lenient",
    "walk_lenient_at",
    "walk_partial",
    "walk_pickle",
    "walk_pickle_at",
]

MAX_TOP_LEVEL_KEYS = 64  # kept in metadata (a bare state dict has thousands)
MAX_DANGER_NOTES = 20
MAX_EMBEDDED_DEPTH = 4  # files given to a loader inside files given to a loader


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


def safety(
    globals_: Iterable[str],
    *,
    notes: Iterable[str] = (),
    error: str | None = None,
    extra_dangerous: Iterable[str] = (),
    vetted: Iterable[str] = (),
) -> PickleSafety:
    """Judge what loading would import: three levels a user can act on.

    ``safe``: every global is on torch's weights-only allowlist (and the stream
    was read to its end). ``unsafe`` with ``dangerous`` empty: names off the
    allowlist, none known to run code: a human decides. ``unsafe`` with
    ``dangerous``: each name that can run code, touch files, processes or the
    network (:mod:`.pickle_danger`), each with a note saying which family.

    Args:
        globals_: ``module.name`` strings, as :func:`walk_pickle` reports them.
        notes: extra facts to keep with the verdict.
        error: why a stream could not be read to its end; the verdict then
            covers what came before it and is never ``safe``.
        extra_dangerous: dangers that are no global (a reference-expansion bomb,
            a name reached through ``getattr``).
        vetted: globals already judged by their uses (``builtins.getattr`` on
            static names only): not named dangerous by themselves.

    Returns:
        A :class:`PickleSafety` with sorted unique globals and dangerous ones.
    """
    names = tuple(sorted(set(globals_)))
    skip = set(vetted)
    families = {g: None if g in skip else danger_of(g) for g in names}
    dangerous = [g for g in names if families[g] is not None]
    all_safe = all(g in SAFE_GLOBALS for g in names) and not error
    extra = sorted(set(extra_dangerous) - set(dangerous))
    family_notes = [
        f"{g}: {danger_of(g) or families.get(g)}"
        for g in (dangerous + extra)[:MAX_DANGER_NOTES]
        if g != BOMB
    ]
    dangerous += extra
    return PickleSafety(
        verdict="safe" if all_safe and not dangerous else "unsafe",
        globals=names,
        dangerous=tuple(dangerous),
        notes=tuple(notes) + tuple(family_notes),
        error=error or None,
    )


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
_SNIFF = 64 * 1024


@dataclass(slots=True)
class PickleScan:
    """Every pickle of one stream walked leniently, and what they add up to."""

    walks: list[PickleWalk] = field(default_factory=list)
    legacy: bool = False  # starts with torch's legacy magic number
    error: str | None = None  # the first fault, with the pickle it was in
    notes: list[str] = field(default_factory=list)
    dangers: list[str] = field(default_factory=list)  # no global: bombs
    embedded: list[str] = field(default_factory=list)  # globals of payload files
    depth: int = 0  # payloads inside payloads
    reached: list[str] = field(default_factory=list)  # names getattr calls reach
    getattr_static: bool = True  # every getattr use reaches a name known statically

    @property
    def globals(self) -> list[str]:
        """Every global of every pickle walked, up to any fault, and of payloads."""
        return [g for w in self.walks for g in w.globals] + self.embedded

    @property
    def main(self) -> Any:
        """The object a load returns (a legacy file's fourth pickle), or None."""
        i = 3 if self.legacy and len(self.walks) > 3 else 0
        result = self.walks[i].result if len(self.walks) > i else None
        return None if result is None else result.root

    def verdict(self, *, notes: Iterable[str] = ()) -> PickleSafety:
        """The safety verdict over every pickle walked."""
        vetted = [GETATTR] if self.getattr_static else []
        reached = [f"{GETATTR} reaches {', '.join(self.reached[:8])}"]
        return safety(
            self.globals,
            notes=[*notes, *self.notes, *(reached if self.reached else [])],
            error=self.error,
            extra_dangerous=[*self.dangers, *filter(danger_of, self.reached)],
            vetted=vetted,
        )


def _add(scan: PickleScan, walk: PickleWalk, offset: int) -> None:
    scan.walks.append(walk)
    scan.notes.extend(walk.notes)
    if walk.error and scan.error is None:
        where = f"pickle {len(scan.walks)} at offset {offset}"
        scan.error = walk.error if len(scan.walks) == 1 else f"{where}: {walk.error}"
    # Each shared container at most doubles an expansion: without ten of them no
    # expansion reaches the bomb ratio, and the graph pass is skipped.
    if GETATTR in walk.globals:
        names, static = static_getattrs(walk.call_log, walk.pushes.get(GETATTR, 0))
        scan.reached.extend(names)
        scan.getattr_static = scan.getattr_static and static
    if walk.result is not None and EMBEDDED_LOADERS.intersection(walk.globals):
        _add_embedded(scan, walk.result.root)
    if walk.result is not None and walk.shared >= BOMB_MIN_SHARED:
        note = bomb_note(walk.result.root, walk.opcodes)
        if note is not None:
            scan.dangers.append(BOMB)
            scan.notes.append(note)


def _add_embedded(scan: PickleScan, root: Any) -> None:
    """Scan the files a pickle hands to a loader as bytes; their verdict joins."""
    from modelscan.scanner.formats import archives  # archives imports this module

    for loader, payload in embedded_payloads(root):
        where = f"bytes given to {loader}"
        if scan.depth >= MAX_EMBEDDED_DEPTH:
            scan.error = scan.error or f"{where}: nested too deep, not scanned"
            continue
        inner = archives.scan_blob(payload, where=where, depth=scan.depth + 1)
        if inner is None:
            continue
        scan.embedded.extend(inner.globals)
        scan.dangers.extend(d for d in inner.dangerous if d not in inner.globals)
        scan.notes.append(
            f"{where} ({len(payload)} bytes): {inner.verdict}"
            + (f", {', '.join(inner.dangerous)}" if inner.dangerous else "")
        )
        if inner.error and scan.error is None:
            scan.error = f"{where}: {inner.error}"


def scan_pickles(
    reader: RangeReader,
    *,
    start: int = 0,
    cap: int = MAX_PICKLE_BYTES,
    depth: int = 0,
) -> PickleScan:
    """Walk every pickle a ``pickle.load`` loop (or joblib) reads from ``start``.

    A pickle that follows the first is walked when its bytes sniff as a
    pickle; a torch legacy file's five pickles are walked, not its storages.
    A fault ends the scan; everything walked before it still counts.
    """
    scan = PickleScan(depth=depth)
    pos = start
    while pos < reader.size and len(scan.walks) < MAX_PICKLES:
        if scan.walks:
            if scan.legacy and len(scan.walks) == _LEGACY_PICKLES:
                break  # storage bytes follow
            head = reader.read_at(pos, min(_SNIFF, reader.size - pos))
            if not scan.legacy and not sniff_pickle(head, reader.size - pos):
                break
        walk = walk_lenient_at(reader, pos, cap=cap, build_hook=after_build)
        _add(scan, walk, pos)
        if len(scan.walks) == 1 and walk.result is not None and start == 0:
            scan.legacy = walk.result.root == _TORCH_LEGACY_MAGIC
        if walk.result is None:
            break
        pos = walk.end
    if not scan.walks:
        scan.error = f"no pickle at offset {start}: the data ends there"
    return scan


def read_layout(reader: RangeReader) -> Layout:
    """Read a plain pickle file: its top-level shape and what loading would import.

    A pickle cannot hold torch storages by itself, so no tensors are reported.
    Pickles that follow the first (``pickle.load`` in a loop reads them) are
    walked too and their globals join the verdict; a torch legacy file (it
    starts with torch's magic number) is read as its five pickles, its object
    being the fourth; a joblib file's inline arrays are passed over as
    ``joblib.load`` reads them. A broken or truncated stream still gets the
    verdict of everything read before the fault, with the fault as ``error``.

    Args:
        reader: the file.

    Returns:
        A ``Layout`` with format ``pickle``, metadata ``top_level_type`` (and
        ``top_level_keys`` for a dict) and ``pickle_safety``.
    """
    scan = scan_pickles(reader)
    notes = ["torch legacy file: torch-legacy reads its tensors"] if scan.legacy else []
    main = scan.main
    metadata: dict[str, Any] = {
        "top_level_type": type_name(main) if main is not None else None,
        "pickles": len(scan.walks),
    }
    keys = top_level_keys(main)
    if keys is not None:
        metadata["top_level_keys"] = keys
        metadata["top_level_key_count"] = len(as_dict(main) or [])
    if any(g in WRAPPERS for g in scan.globals):
        roots = [w.result.root for w in scan.walks if w.result is not None]
        metadata["joblib_arrays"] = sum(count_arrays(r) for r in roots)
    end = scan.walks[-1].end if scan.walks else 0
    if scan.error is None and end < reader.size:
        metadata["trailing_bytes"] = reader.size - end
    return Layout(
        format="pickle", metadata=metadata, pickle_safety=scan.verdict(notes=notes)
    )
