"""Torch tensors in an inert pickle, as torch_zip and torch_legacy both find them.

Tensors in an inert pickle (both formats): a call of
``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2`` / ``_rebuild_tensor_v3``
(dtype from its argument, storage ``torch.storage.UntypedStorage``), possibly
wrapped in ``_rebuild_parameter(_with_state)``, ``nn.Parameter`` or
``torch._tensor._rebuild_from_type_v2``, or a legacy ``torch.FloatTensor``
rebuilt by BUILD, with a storage persistent id: storage key, offset, size,
stride and dtype. Quantized, sparse and meta tensors are listed as
``tensors_without_data``.

Tensor names: if the pickled root is a dict whose ``state_dict``,
``model_state_dict``, ``model`` or ``module`` value (first match in that order)
is a dict of tensors only, the tensors are that dict's keys and nothing else (a
Lightning checkpoint then names its weights as the bare state dict and its
safetensors conversion do; tensors elsewhere, such as optimizer state, are
counted in ``tensors_outside_state_dict``). Otherwise every tensor is named by
its key path from the root joined with ``.``: dict keys, list indices, object
attributes (BUILD state), with ``nn.Module``'s ``_parameters``, ``_buffers``
and ``_modules`` levels left out so a pickled module names its tensors as its
``state_dict()`` would. A name reached twice gets a ``#2`` suffix.

Example:
    root = walk_pickle(data, path="data.pkl").root
    named, found, metadata = named_tensors(root, where="data.pkl")
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from modelscan.errors import HeaderTooLarge, InvalidHeader
from modelscan.records import Record
from modelscan.scanner.formats import pickle_safe
from modelscan.scanner.formats.pickle_safe import Call, Global, PersistentRef
from modelscan.scanner.layout import (
    DTYPE_SIZES,
    MAX_RANK,
    MAX_TENSORS,
    TensorSpan,
    is_contiguous,
)

MAX_WALK_DEPTH = 256  # object nesting searched for tensors
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
_MODULE_LEVELS = frozenset({"_parameters", "_buffers", "_modules"})

# torch storage classes and dtypes in safetensors' spelling.
_STORAGE_DTYPES = {
    "FloatStorage": "F32",
    "HalfStorage": "F16",
    "BFloat16Storage": "BF16",
    "DoubleStorage": "F64",
    "LongStorage": "I64",
    "IntStorage": "I32",
    "ShortStorage": "I16",
    "CharStorage": "I8",
    "ByteStorage": "U8",
    "BoolStorage": "BOOL",
    "ComplexFloatStorage": "C64",
    "ComplexDoubleStorage": "C128",
    "UntypedStorage": "U8",
}
_TORCH_DTYPES = {
    "float32": "F32",
    "float": "F32",
    "float16": "F16",
    "half": "F16",
    "bfloat16": "BF16",
    "float64": "F64",
    "double": "F64",
    "int64": "I64",
    "long": "I64",
    "int32": "I32",
    "int": "I32",
    "int16": "I16",
    "short": "I16",
    "int8": "I8",
    "uint8": "U8",
    "uint16": "U16",
    "uint32": "U32",
    "uint64": "U64",
    "bool": "BOOL",
    "complex64": "C64",
    "complex128": "C128",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}
_REBUILD = "torch._utils._rebuild_"
_WRAPPERS = frozenset(
    {
        _REBUILD + "parameter",
        _REBUILD + "parameter_with_state",
        "torch.nn.parameter.Parameter",
    }
)


# --- tensors in an inert pickle -------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False, eq=False)  # Record's methods
class StorageRef(Record):
    """A storage a persistent id names: ``('storage', type, key, location, numel)``."""

    key: str
    dtype: str | None  # element type of the storage class; None when unsupported
    view_offset: int = 0  # legacy view_metadata: elements into the root storage
    numel: int | None = None  # elements of the storage, as the persistent id says


@dataclass(frozen=True, slots=True, repr=False, eq=False)  # Record's methods
class TensorRef(Record):
    """One tensor as a rebuild call describes it, before its bytes are located."""

    path: tuple[str, ...]
    storage: StorageRef
    dtype: str
    storage_offset: int  # in elements
    shape: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(slots=True)
class FoundTensors:
    """Every tensor and storage found under one root, and what was skipped."""

    tensors: list[TensorRef]
    storages: dict[str, StorageRef]
    skipped: list[str]  # paths of tensors without locatable data (quantized, meta, ...)


class _Skip:
    """Marks a tensor that exists but whose bytes cannot be located."""


_SKIP = _Skip()


def _qualname(obj: Any) -> str:
    return (
        obj.func.qualname
        if isinstance(obj, Call) and isinstance(obj.func, Global)
        else ""
    )


def _ints(value: Any, what: str, where: str) -> tuple[int, ...]:
    if isinstance(value, Call) and _qualname(value) == "torch.Size" and value.args:
        value = value.args[0]
    if not isinstance(value, tuple | list) or len(value) > MAX_RANK:
        raise InvalidHeader(where, f"{what} is not a tuple of at most {MAX_RANK} ints")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise InvalidHeader(
            where, f"{what} holds a value that is not a non-negative int"
        )
    return tuple(value)


def storage_ref(ref: PersistentRef, where: str) -> StorageRef | None:
    """Parse torch's storage persistent id; None for other ids (legacy 'module')."""
    pid = ref.pid
    if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
        return None
    if len(pid) < 5 or not isinstance(pid[1], Global):
        raise InvalidHeader(
            where, "storage persistent id is not (storage, type, key, ...)"
        )
    key = pid[2].decode("latin-1") if isinstance(pid[2], bytes) else str(pid[2])
    view = pid[5] if len(pid) > 5 else None
    offset = 0
    if isinstance(view, tuple) and len(view) == 3:  # legacy (view_key, offset, size)
        offset = _ints(view[1:2], "storage view offset", where)[0]
    size = pid[4]
    numel = size if isinstance(size, int) and not isinstance(size, bool) else None
    if numel is not None and numel < 0:
        numel = None
    return StorageRef(key, _STORAGE_DTYPES.get(pid[1].name), offset, numel)


def _rebuild_args(obj: Call, where: str) -> TensorRef | _Skip:
    name = _qualname(obj)
    args = obj.args if isinstance(obj.args, tuple) else ()
    if name.startswith("torch.") and name.endswith("Tensor") and obj.state is not None:
        args = obj.state if isinstance(obj.state, tuple) else ()  # Tensor.set_(*state)
    if len(args) < 4 or not isinstance(args[0], PersistentRef):
        return _SKIP
    storage = storage_ref(args[0], where)
    if storage is None:
        return _SKIP
    dtype = storage.dtype
    if name == _REBUILD + "tensor_v3":
        dt = args[6] if len(args) > 6 else None
        dtype = _TORCH_DTYPES.get(dt.name) if isinstance(dt, Global) else None
    if dtype is None:
        return _SKIP
    offset = _ints(args[1:2], "storage offset", where)[0]
    shape = _ints(args[2], "size", where)
    stride = _ints(args[3], "stride", where)
    if len(stride) != len(shape):
        raise InvalidHeader(where, f"size {shape} and stride {stride} differ in rank")
    return TensorRef((), storage, dtype, offset, shape, stride)


def tensor_of(obj: Any, where: str) -> TensorRef | _Skip | None:
    """Return the tensor a rebuild call makes, or ``_SKIP``, or None.

    ``_SKIP`` marks a tensor whose bytes cannot be located (quantized, meta,
    unsupported dtype); None means ``obj`` is not a tensor at all.
    """
    for _ in range(8):  # Parameter(_rebuild_from_type_v2(_rebuild_tensor_v2(...)))
        name = _qualname(obj)
        args = obj.args if isinstance(obj, Call) and isinstance(obj.args, tuple) else ()
        if name in _WRAPPERS and args:
            obj = args[0]
        elif name == "torch._tensor._rebuild_from_type_v2" and len(args) >= 3:
            obj = Call(args[0], args[2])
        else:
            break
    name = _qualname(obj)
    legacy_build = name.startswith("torch.") and name.endswith("Tensor")
    if name.startswith(_REBUILD) or (legacy_build and obj.state is not None):
        assert isinstance(obj, Call)
        return _rebuild_args(obj, where)
    return None


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, bytes):
        return k.decode("latin-1")
    if isinstance(k, int | float | bool) or k is None:
        return str(k)
    return f"<{pickle_safe.type_name(k)}>"


def _once(part: Any, seen: set[int]) -> bool:
    """Mark a container expanded inline; False when it was already (it is shared)."""
    if id(part) in seen:
        return False
    seen.add(id(part))
    return True


def _call_children(obj: Call, seen: set[int]) -> list[tuple[str, Any]]:
    """A call's args (or dict pairs), appends and BUILD state.

    Parts expanded here are marked in ``seen``: a tuple or state shared by a
    million calls through the memo is expanded once, not a million times.
    """
    args = obj.args if isinstance(obj.args, tuple) and _once(obj.args, seen) else ()
    name = obj.func.qualname if isinstance(obj.func, Global) else ""
    if name in pickle_safe.DICT_TYPES or obj.items:
        first = args[0] if args and isinstance(args[0], list | tuple) else None
        pair_list = (first,) if first is not None and _once(first, seen) else ()
        if name not in pickle_safe.DICT_TYPES:
            pair_list = ()
        view = Call(obj.func, pair_list, items=obj.items)
        return [(_key(k), v) for k, v in pickle_safe.as_dict(view) or []]
    out = [(str(i), v) for i, v in enumerate(args)]
    out += [(str(i), v) for i, v in enumerate(obj.appends)]
    out += [("", v) for v in (obj.kwargs,) if v is not None]
    if not isinstance(obj.args, tuple):
        out.append(("", obj.args))
    state = obj.state
    parts = state if isinstance(state, tuple) and _once(state, seen) else (state,)
    for part in parts:  # a dict, or (dict, slots dict)
        if isinstance(part, pickle_safe.PickledDict) and _once(part, seen):
            pairs = pickle_safe.as_dict(part) or []
            out += [("" if k in _MODULE_LEVELS else _key(k), v) for k, v in pairs]
    return out


def _children(obj: Any, seen: set[int]) -> list[tuple[str, Any]]:
    """(key, child) pairs below a container; key "" adds nothing to the path."""
    if isinstance(obj, Call):
        return _call_children(obj, seen)
    if isinstance(obj, pickle_safe.PickledDict):
        return [(_key(k), v) for k, v in pickle_safe.as_dict(obj) or []]
    if isinstance(obj, list | tuple):
        return [(str(i), v) for i, v in enumerate(obj)]
    if isinstance(obj, pickle_safe.PickledSet):
        return [(str(i), v) for i, v in enumerate(obj.items)]
    return []


def find_tensors(root: Any, *, where: str) -> FoundTensors:
    """Walk the inert object graph (iteratively, each container once) for tensors.

    Raises:
        HeaderTooLarge: nesting deeper than ``MAX_WALK_DEPTH`` or too many tensors.
        InvalidHeader: a rebuild call with malformed arguments.
    """
    found = FoundTensors([], {}, [])
    seen: set[int] = set()
    todo: list[tuple[Any, tuple[str, ...]]] = [(root, ())]
    while todo:
        obj, path = todo.pop()
        if isinstance(obj, PersistentRef):
            ref = storage_ref(obj, where)
            if ref is not None:
                found.storages.setdefault(ref.key, ref)
            continue
        tensor = tensor_of(obj, where)
        if isinstance(tensor, TensorRef):
            found.tensors.append(replace(tensor, path=path))
            found.storages.setdefault(tensor.storage.key, tensor.storage)
            if len(found.tensors) > MAX_TENSORS:
                raise HeaderTooLarge(where, f"more than {MAX_TENSORS} tensors")
            continue
        if tensor is _SKIP:
            found.skipped.append(".".join(path))
            continue
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | Global):
            continue
        seen.add(id(obj))
        if len(path) >= MAX_WALK_DEPTH:
            raise HeaderTooLarge(where, f"objects nested deeper than {MAX_WALK_DEPTH}")
        for key, child in reversed(_children(obj, seen)):
            todo.append((child, (*path, key) if key else path))
    return found


def _state_dict(root: Any, where: str) -> tuple[str, Any] | None:
    """The first wrapper key whose value is a dict of tensors only, and that dict."""
    pairs = pickle_safe.as_dict(root) or []
    top = {k: v for k, v in pairs if isinstance(k, str)}
    for key in WRAPPER_KEYS:
        inner = pickle_safe.as_dict(top.get(key))
        if inner and all(tensor_of(v, where) is not None for _, v in inner):
            return key, top[key]
    return None


def named_tensors(
    root: Any, *, where: str
) -> tuple[list[tuple[str, TensorRef]], FoundTensors, dict[str, Any]]:
    """Name the tensors under ``root`` by the rule in this module's docstring.

    Returns:
        (name, tensor) pairs in pickle order; everything found under the root
        (its storages locate the data); metadata saying which rule applied.
    """
    everything = find_tensors(root, where=where)
    chosen = everything
    metadata: dict[str, Any] = {}
    wrapped = _state_dict(root, where)
    if wrapped is not None:
        chosen = find_tensors(wrapped[1], where=where)
        metadata["state_dict_key"] = wrapped[0]
        outside = len(everything.tensors) - len(chosen.tensors)
        if outside > 0:
            metadata["tensors_outside_state_dict"] = outside
    if chosen.skipped:
        metadata["tensors_without_data"] = chosen.skipped[:100]
    seen: dict[str, int] = {}
    out = []
    for t in chosen.tensors:
        name = ".".join(t.path)
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}#{seen[name]}", t))
    return out, everything, metadata


def tensor_span(
    name: str, t: TensorRef, *, data_offset: int, storage_nbytes: int, where: str
) -> TensorSpan:
    """Locate a tensor in its storage's bytes, checking its extent as torch does."""
    itemsize = DTYPE_SIZES[t.dtype]
    numel = math.prod(t.shape)
    start = t.storage.view_offset + t.storage_offset
    extent = (
        0
        if numel == 0
        else 1 + sum((d - 1) * s for d, s in zip(t.shape, t.stride, strict=True))
    )
    need = (start + extent) * itemsize
    if need > storage_nbytes:
        raise InvalidHeader(
            where,
            f"tensor {name!r} needs {need} bytes of storage {t.storage.key!r}, "
            f"which holds {storage_nbytes}",
        )
    strides = None if is_contiguous(t.shape, t.stride) else t.stride
    offset = data_offset + start * itemsize if numel else data_offset
    return TensorSpan(name, t.dtype, t.shape, offset, numel * itemsize, strides)


def _small_scalar(v: Any) -> bool:
    """A value worth keeping in metadata: short text, an int64, a finite float."""
    if isinstance(v, str):
        return len(v) <= 256
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, int) and abs(v) < 2**63


def top_level_metadata(root: Any) -> dict[str, Any]:
    """Top-level keys, and small scalar values such as ``pytorch-lightning_version``."""
    pairs = pickle_safe.as_dict(root)
    if pairs is None:
        return {"pickle_top_level_type": pickle_safe.type_name(root)}
    out: dict[str, Any] = {
        "pickle_top_level_keys": pickle_safe.top_level_keys(root),
        "pickle_key_count": len(pairs),
    }
    values = {k: v for k, v in pairs[:64] if isinstance(k, str) and _small_scalar(v)}
    if values:
        out["pickle_top_level_values"] = values
    return out
