"""Which globals a pickle names can run code, and reference-expansion bombs.

A name is dangerous when it is, or lies below, an entry of one of the
:data:`FAMILIES` (``os`` matches ``os.system`` and ``os.path.join``), when it
reaches such an entry through attributes (``pathlib.os.system``: protocol 4
resolves dotted names attribute by attribute, and ``pathlib`` holds ``os``), when
it walks through an attribute that opens every other name (``__globals__``,
``__builtins__``, ``__subclasses__``, ...), or when its module or name is only
computed while loading (``STACK_GLOBAL`` on a call's result). The family lists
come from what each module does (CPython's library reference), not from other
scanners' lists.

Example:
    >>> danger_of("pathlib.os.system")
    'runs a command or a process'
    >>> danger_of("collections.OrderedDict") is None
    True
"""

from __future__ import annotations

import _compat_pickle
from typing import Any

from modelscan.scanner.formats.pickle_vm import (
    COMPUTED,
    Call,
    Global,
    PersistentRef,
    PickledDict,
    PickledSet,
)


def _words(text: str) -> list[str]:
    return text.split()


FAMILIES: dict[str, list[str]] = {
    "runs a command or a process": _words(
        "os posix nt subprocess _posixsubprocess pty pipes commands popen2 "
        "platform.popen asyncio.subprocess multiprocessing _multiprocessing "
        "concurrent.futures.process _winapi msvcrt signal.pthread_kill"
    ),
    "runs Python code": _words(
        "builtins.eval builtins.exec builtins.compile builtins.execfile "
        "builtins.__import__ builtins.breakpoint builtins.input builtins.apply "
        "builtins.globals builtins.locals builtins.vars builtins.help "
        "runpy importlib imp pkgutil zipimport code codeop pdb bdb timeit cProfile "
        "profile trace doctest sys ctypes _ctypes cffi marshal types.CodeType "
        "types.FunctionType types.LambdaType types.MethodType "
        "numpy.testing._private.utils.runstring torch.utils.cpp_extension "
        "torch.ops.load_library torch.classes.load_library torch._ops "
        "torch.hub torch.package"
    ),
    "reaches any name through attributes": _words(
        "builtins.getattr builtins.setattr builtins.delattr operator.attrgetter "
        "operator.methodcaller _operator.attrgetter _operator.methodcaller "
        "builtins.object.__getattribute__ builtins.type.__getattribute__"
    ),
    "loads another pickle or model (re-entry)": _words(
        "pickle _pickle dill cloudpickle shelve copyreg._inverted_registry "
        "joblib.load joblib.numpy_pickle.load numpy.load numpy.lib.npyio.load "
        "numpy.lib._npyio_impl.load numpy.lib.format.read_array "
        "numpy.lib.format.read_array_header_1_0 torch.load torch.serialization.load "
        "torch.jit.load torch.jit._serialization.load pandas.read_pickle "
        "pandas.io.pickle yaml.load yaml.unsafe_load yaml.full_load"
    ),
    "opens or changes files": _words(
        "builtins.open io.open _io.open io.open_code _io.open_code io.FileIO "
        "_io.FileIO codecs.open shutil tempfile fileinput zipfile.ZipFile.extractall "
        "tarfile.TarFile.extractall tarfile.open"
    ),
    "reaches the network": _words(
        "socket _socket ssl _ssl socketserver http.client http.server urllib.request "
        "urllib3 requests httpx aiohttp ftplib smtplib imaplib poplib telnetlib "
        "nntplib xmlrpc webbrowser asyncio"
    ),
    "installs packages or runs entry points": _words(
        "pip setuptools pkg_resources distutils _distutils_hack ensurepip venv site"
    ),
    "runs a sub-interpreter": _words(
        "_xxsubinterpreters _interpreters _xxinterpchannels _interpchannels "
        "_interpqueues interpreters concurrent.interpreters test.support.interpreters"
    ),
}

# Path objects are inert, their methods (reached through dotted names) are not.
_PATH_CLASSES = frozenset({"Path", "PosixPath", "WindowsPath", "PurePath"})
_SAFE_PATH_ATTRS = frozenset({"__new__", "_from_parts", "_from_parsed_parts"})
# Attributes that lead from any object to every other name.
_OPENING_ATTRS = frozenset(
    _words(
        "__globals__ __builtins__ __subclasses__ __class__ __base__ __bases__ __mro__ "
        "__dict__ __getattribute__ __getattr__ __setattr__ __delattr__ __code__ "
        "__func__ __self__ __loader__ __spec__ __import__ __reduce__ __reduce_ex__ "
        "__call__ __closure__ __init_subclass__ __builtin__"
    )
)
# Modules that other modules commonly import and so hold as attributes
# (``pathlib.os``, ``torch.serialization.pickle``): reached through any name.
_REROOTED = frozenset(
    _words(
        "os posix nt sys subprocess builtins shutil socket importlib ctypes pty runpy "
        "marshal pickle webbrowser multiprocessing tempfile"
    )
)

COMPUTED_IMPORT = "import computed at load time"
BOMB = "<reference-expansion bomb>"
BOMB_ELEMENTS = 10**8  # elements a full expansion (repr, deepcopy, JSON) would make
BOMB_RATIO = 1000  # ... and that many times the opcodes read
BOMB_MIN_SHARED = 10  # 2**10 > BOMB_RATIO: fewer shared containers cannot get there

_ENTRIES: dict[str, str] = {e: fam for fam, es in FAMILIES.items() for e in es}


def _family(parts: list[str], *, rerooted: bool) -> str | None:
    if rerooted and parts[0] not in _REROOTED:
        return None
    for i in range(len(parts), 0, -1):
        fam = _ENTRIES.get(".".join(parts[:i]))
        if fam is not None:
            return fam
    return None


def _canonical(qualname: str) -> list[str]:
    """Split ``module.name``; Python 2 module names as fix_imports maps them."""
    parts = qualname.split(".")
    mapped = _compat_pickle.IMPORT_MAPPING.get(parts[0])
    return (mapped.split(".") + parts[1:]) if mapped else parts


def danger_of(qualname: str) -> str | None:
    """The danger family of a global ``module.name``, or None if none is known."""
    if COMPUTED in qualname:
        return COMPUTED_IMPORT
    parts = _canonical(qualname)
    fam = _family(parts, rerooted=False)
    if fam is not None:
        return fam
    for i, part in enumerate(parts[1:], start=1):
        if part in _OPENING_ATTRS:
            return "reaches any name through attributes"
        method = parts[i + 1] if i + 1 < len(parts) else None
        is_path = part in _PATH_CLASSES and parts[0] == "pathlib"
        if is_path and method is not None and method not in _SAFE_PATH_ATTRS:
            return "opens or changes files"
        fam = _family(parts[i:], rerooted=True)
        if fam is not None:
            return fam
    return None


# --- reference-expansion bombs --------------------------------------------------------


def children(obj: Any) -> list[Any]:
    """The values a container or call holds (none for a leaf)."""
    if isinstance(obj, list | tuple):
        return list(obj)
    if isinstance(obj, PickledDict):
        return [x for kv in obj.items for x in kv]
    if isinstance(obj, PickledSet):
        return obj.items
    if isinstance(obj, Call):
        kv = [x for pair in obj.items for x in pair]
        return [obj.func, obj.args, obj.kwargs, obj.state, *kv, *obj.appends]
    return []


_LEAVES = (str, bytes, int, float, bool, type(None), Global, PersistentRef)


def expanded_size(root: Any, *, limit: int = BOMB_ELEMENTS) -> int:
    """Elements a full expansion of ``root`` would make, shared parts repeated.

    Iterative, each container sized once (its size is memoised), so a
    40-level doubling costs 40 steps; a cycle counts its back edge as one
    element. Stops counting at ``limit``.
    """
    sizes: dict[int, int] = {}
    todo: list[tuple[Any, bool]] = [(root, False)]
    while todo:
        obj, done = todo.pop()
        key = id(obj)
        if done:
            total = 1 + sum(sizes.get(id(p), 1) for p in children(obj))
            sizes[key] = min(total, limit)
            continue
        if key in sizes or isinstance(obj, _LEAVES):
            continue
        sizes[key] = 1  # in progress: a cycle back here counts one
        todo.append((obj, True))
        todo.extend((p, False) for p in children(obj) if not isinstance(p, _LEAVES))
    return sizes.get(id(root), 1)


def bomb_note(root: Any, opcodes: int) -> str | None:
    """A note naming a reference-expansion bomb under ``root``, or None."""
    size = expanded_size(root)
    if size >= BOMB_ELEMENTS and size > BOMB_RATIO * opcodes:
        return (
            f"{BOMB}: shared references expand to over {size:,} elements "
            f"from {opcodes:,} opcodes"
        )
    return None


# --- payloads handed to a loader ------------------------------------------------------

# Loaders a pickle may call on bytes it carries: those bytes are a file a load
# opens in turn (torch's own pickled storages use the first).
EMBEDDED_LOADERS = frozenset(
    _words(
        "torch.storage._load_from_bytes pickle.loads _pickle.loads dill.loads "
        "cloudpickle.loads torch.load torch.serialization.load pickle.load "
        "_pickle.load joblib.load numpy.load marshal.loads"
    )
)
_BYTES_FILES = frozenset({"io.BytesIO", "_io.BytesIO"})
MAX_EMBEDDED = 16


def _qualname(obj: Any) -> str:
    if isinstance(obj, Call) and isinstance(obj.func, Global):
        return obj.func.qualname
    return ""


def _payload(call: Call) -> bytes | None:
    """The bytes a loader call is given: directly, or through ``io.BytesIO``."""
    arg = call.args[0] if isinstance(call.args, tuple) and call.args else None
    if isinstance(arg, Call) and _qualname(arg) in _BYTES_FILES:
        arg = arg.args[0] if isinstance(arg.args, tuple) and arg.args else None
    return arg if isinstance(arg, bytes) else None


def embedded_payloads(root: Any) -> list[tuple[str, bytes]]:
    """(loader, bytes) for each loader call under ``root`` given literal bytes."""
    out: list[tuple[str, bytes]] = []
    seen: set[int] = set()
    todo = [root]
    while todo and len(out) < MAX_EMBEDDED:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, _LEAVES):
            continue
        seen.add(id(obj))
        name = _qualname(obj)
        if name in EMBEDDED_LOADERS:
            assert isinstance(obj, Call)
            payload = _payload(obj)
            if payload is not None:
                out.append((name, payload))
        todo.extend(children(obj))
    return out


# --- getattr on names known statically ----------------------------------------------

GETATTR = "builtins.getattr"


def static_getattrs(calls: list[Call], references: int) -> tuple[list[str], bool]:
    """Names ``builtins.getattr`` calls reach, and whether every use is known.

    ``getattr(cls, "name")`` with a global and a literal string reaches exactly
    ``cls.name`` (enum members pickle this way); that name is judged like any
    global. The calls are all a walk made, popped ones too. ``references`` is
    how often a ``getattr`` record was pushed (GLOBAL, GET, DUP): when each was
    used by such a call and nothing else, getattr reaches only those names;
    otherwise (computed arguments, getattr handed on as a value) it reaches
    names only a load knows.
    """
    names: list[str] = []
    uses = 0
    for c in calls:
        if not (isinstance(c.func, Global) and c.func.qualname == GETATTR):
            continue
        uses += 1
        args = c.args if isinstance(c.args, tuple) else ()
        if (
            len(args) != 2
            or not isinstance(args[0], Global)
            or not isinstance(args[1], str)
        ):
            return names, False
        names.append(f"{args[0].qualname}.{args[1]}")
    return names, uses == references
