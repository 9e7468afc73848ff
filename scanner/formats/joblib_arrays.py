"""joblib files: a pickle with each numpy array's bytes written inline.

``joblib.dump`` pickles a ``NumpyArrayWrapper`` (shape, dtype, order, and from
joblib 1.2 an alignment) for every array and writes the array right after that
wrapper's BUILD opcode: a padding-length byte and padding when aligned, then
the raw elements; an array of Python objects is a whole nested pickle instead.
``joblib.load`` reads them at that point (``NumpyPickler``/``NumpyUnpickler``
in joblib/numpy_pickle.py), so the walk must too, or it would stop at the
array bytes and miss every opcode after them. :func:`after_build` is the
pickle walk's BUILD hook that does it, inertly.

Example:
    >>> walk_lenient(data, path="m.jl", build_hook=after_build)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import re
from typing import Any

from modelscan.scanner.formats.pickle_vm import Call, Global, PickledDict, _Machine

WRAPPERS = frozenset(
    {
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper",
    }
)
_ITEMSIZE = re.compile(r"^[<>|=]?[a-zA-Z](\d+)$")
_NO_DIGITS = {"b": 1, "?": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "e": 2}


def _dtype_parts(dtype: Any) -> tuple[str, int | None]:
    """(descr, itemsize from its pickled state) of a pickled ``numpy.dtype``."""
    if not isinstance(dtype, Call) or not isinstance(dtype.args, tuple):
        raise ValueError("array dtype is not a pickled numpy.dtype")
    descr = dtype.args[0] if dtype.args else None
    if not isinstance(descr, str):
        raise ValueError("array dtype has no type string")
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    return descr, (elsize if elsize > 0 else None)


def _has_objects(dtype: Any) -> bool:
    """An object dtype, or a structured one with an object field anywhere."""
    todo, seen = [dtype], 0
    while todo and seen < 10_000:
        d = todo.pop()
        seen += 1
        if isinstance(d, Call):
            if d.args and isinstance(d.args, tuple) and d.args[0] in ("O", "O4", "O8"):
                return True
            todo.extend([d.state] if d.state is not None else [])
        elif isinstance(d, tuple | list):
            todo.extend(d)
        elif isinstance(d, PickledDict):
            todo.extend(v for _, v in d.items)
    return False


def _itemsize(dtype: Any) -> int:
    descr, elsize = _dtype_parts(dtype)
    if elsize is not None:
        return elsize
    m = _ITEMSIZE.match(descr)
    if m:
        return int(m.group(1))
    size = _NO_DIGITS.get(descr.lstrip("<>|="))
    if size is None:
        raise ValueError(f"array dtype {descr!r} has no size")
    return size


def _state(call: Call) -> dict[str, Any]:
    state = call.state
    if isinstance(state, tuple) and state and isinstance(state[0], PickledDict):
        state = state[0]
    if not isinstance(state, PickledDict):
        raise ValueError("NumpyArrayWrapper state is not a dict")
    return {k: v for k, v in state.items if isinstance(k, str)}


def after_build(m: _Machine, call: Call) -> None:
    """After BUILD of a joblib array wrapper, read past its array as joblib does.

    Raises:
        ValueError: a wrapper whose shape or dtype cannot be read (the walk
            reports it as a bad argument to BUILD).
    """
    func = call.func
    if not isinstance(func, Global) or func.qualname not in WRAPPERS:
        return
    state = _state(call)
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and n >= 0 for n in shape
    ):
        raise ValueError("NumpyArrayWrapper shape is not a tuple of ints")
    if _has_objects(state.get("dtype")):
        m.walk_nested()  # joblib loads the objects with a nested unpickler
        return
    if state.get("numpy_array_alignment_bytes") is not None:
        padding = m.read_raw(1, "joblib array padding length")[0]
        m.read_raw(padding, "joblib array padding")
    nbytes = math.prod(shape) * _itemsize(state.get("dtype"))
    m.skip_raw(nbytes, f"joblib array of {nbytes} bytes")


def count_arrays(root: Any) -> int:
    """How many joblib array wrappers the inert object graph under ``root`` holds."""
    from modelscan.scanner.formats.pickle_danger import children

    count, seen, todo = 0, set(), [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Call) and isinstance(obj.func, Global):
            count += obj.func.qualname in WRAPPERS
        todo.extend(children(obj))
    return count
