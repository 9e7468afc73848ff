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
from typing import Any

from modelscan.errors import FormatError
from modelscan.records import PickleSafety
from modelscan.scanner.formats.pickle_vm import (
    MAX_PICKLE_BYTES,
    Call,
    Global,
    PersistentRef,
    PickledDict,
    PickledSet,
    PickleResult,
    looks_like_pickle,
    walk_partial,
    walk_pickle,
    walk_pickle_at,
)
from modelscan.scanner.layout import Layout, RangeReader

__all__ = [
    "MAX_PICKLE_BYTES",
    "Call",
    "Global",
    "PersistentRef",
    "PickleResult",
    "PickledDict",
    "PickledSet",
    "as_dict",
    "looks_like_pickle",
    "read_layout",
    "safety",
    "top_level_keys",
    "type_name",
    "walk_partial",
    "walk_pickle",
    "walk_pickle_at",
]

MAX_TOP_LEVEL_KEYS = 64  # kept in metadata (a bare state dict has thousands)


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
