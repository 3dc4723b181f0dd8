"""Checkpoints of learned state (analytics banks, detectors): a versioned header, a MAC, and a loader that builds
only the platform's own state classes.

    blob = dumps(state, "analytics", keys=ring)        # b"PGCKPT 3 analytics <kid>\n" + HMAC-SHA256 + pickle
    state = loads(blob, "analytics", keys=ring)        # CheckpointError (with the reason) when it cannot be used

Why both guards: whoever can write one row of the store (a database role shared with a reporting tool, a backup
restored from an untrusted copy) must not be able to run code as the platform.
- The MAC: a checkpoint is accepted only if sealed with a key of the state key ring, which lives outside the store
  (plantguard.keys). A row written by anyone else is refused and that partition relearns.
- The loader: even a sealed blob may only name the classes defined in STATE_MODULES (the analytics state and
  detector classes), numpy's array rebuilders and builtin containers; anything else (os.system, builtins.eval,
  subprocess...) is refused before it is looked up, so nothing can be called that is not a state class.

Checkpoints from before the MAC (versions 1 and 2) load only when the caller allows it (`legacy=True`): the
platform does so once, on the start that makes the state key, so existing learned state migrates; they still go
through the restricted loader. When a class moves, `MOVED` maps the old module to the new one.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import pickle
from typing import Any

from plantguard.errors import PlantguardError

VERSION = 3
_PREFIX = b"PGCKPT "
_MAC = 32

#: old module -> new module, for every module whose classes checkpoints may name
MOVED: dict[str, str] = {
    "plantguard.ingest.analytics": "plantguard.plant_analytics.processor",
}

# What a checkpoint may name: the state classes and what they are built of. Nothing here runs code of the blob's
# choosing: the plantguard classes are plain state holders, the numpy entries rebuild arrays and dtypes.
_NUMPY = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.numeric", "_frombuffer"),
          ("numpy.core.numeric", "_frombuffer"), ("numpy._core.multiarray", "_reconstruct"),
          ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "scalar"),
          ("numpy.core.multiarray", "scalar")}
_BUILTINS = {("builtins", n) for n in ("set", "frozenset", "list", "dict", "tuple", "int", "float", "complex",
                                        "bytes", "bytearray", "str", "bool", "slice", "range")}
_BUILTINS |= {("collections", "deque"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
              ("copyreg", "_reconstructor"), ("builtins", "object")}
#: modules whose own classes are state (and nothing else of theirs)
STATE_MODULES = (
    "plantguard.plant_analytics.processor",
    "plantguard.analytics.anomaly.", "plantguard.analytics.spc.", "plantguard.analytics.rul.",
)


class CheckpointError(PlantguardError):
    """A checkpoint that cannot be used (wrong kind, unknown format, not sealed by our key, a refused class)."""


def _state_class(module: str, name: str) -> bool:
    return any(module == m or (m.endswith(".") and module.startswith(m)) for m in STATE_MODULES) and \
        not name.startswith("__") and "." not in name


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module = MOVED.get(module, module)
        if (module, name) in _NUMPY or (module, name) in _BUILTINS:
            return super().find_class(module, name)
        if not _state_class(module, name):
            raise CheckpointError(f"the checkpoint names {module}.{name}, which is not a state class: refused")
        try:
            obj = super().find_class(module, name)
        except (ImportError, AttributeError) as e:
            raise CheckpointError(f"the checkpoint names {module}.{name}, which no longer exists ({e}); add its new "
                                  "place to plantguard.checkpoints.MOVED to keep the learned state") from None
        # a class defined in that module, not a function or something it imported (e.g. a module's `os`)
        if not isinstance(obj, type) or obj.__module__ != module or issubclass(obj, BaseException):
            raise CheckpointError(f"the checkpoint names {module}.{name}, which is not a state class: refused")
        return obj


def _mac(key: bytes, head: bytes, body) -> bytes:
    h = hmac.new(key, head + b"\n", hashlib.sha256)
    h.update(body)  # no copy of a body of many megabytes
    return h.digest()


def dumps(obj: Any, kind: str, keys=None) -> bytes:
    """`keys`: a plantguard.keys.Keyring; without one the checkpoint is unsealed (kid `-`), for programs that keep
    it themselves; the platform always seals."""
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if keys is None:
        head = _PREFIX + f"{VERSION} {kind} -".encode()
        return head + b"\n" + bytes(_MAC) + body
    kid, key = keys.primary
    head = _PREFIX + f"{VERSION} {kind} {kid}".encode()
    return head + b"\n" + _mac(key, head, body) + body


def loads(blob: bytes, kind: str, keys=None, *, legacy: bool = False) -> Any:
    """With `keys`, only a checkpoint sealed by one of them loads (or, with `legacy`, one from before seals)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise CheckpointError("a checkpoint is bytes")
    if not bytes(blob[:len(_PREFIX)]) == _PREFIX:
        if keys is not None and not legacy:
            raise CheckpointError("an unsealed checkpoint of the old format (version 1): refused")
        return unpickle(blob)
    nl = bytes(blob[:200]).find(b"\n")
    if nl < 0:
        raise CheckpointError("unreadable checkpoint header")
    head, rest = bytes(blob[:nl]), memoryview(blob)[nl + 1:]
    try:
        fields = head[len(_PREFIX):].decode().split(" ")
        version_n = int(fields[0])
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError("unreadable checkpoint header") from None
    if version_n > VERSION:
        raise CheckpointError(f"checkpoint format {version_n} is newer than this version understands ({VERSION})")
    got = fields[1] if len(fields) > 1 else ""
    if got != kind:
        raise CheckpointError(f"a {got!r} checkpoint, not {kind!r}")
    if version_n < 3:
        if keys is not None and not legacy:
            raise CheckpointError(f"an unsealed checkpoint of the old format (version {version_n}): refused")
        return unpickle(rest)
    if len(fields) != 3 or len(rest) < _MAC:
        raise CheckpointError("unreadable checkpoint header")
    tag, body = bytes(rest[:_MAC]), rest[_MAC:]
    if keys is not None:
        key = keys.get(fields[2])
        if key is None:
            raise CheckpointError(f"sealed with key {fields[2]}, which is not in the state key ring: refused "
                                  "(written by someone else, or restored without its key)")
        if not hmac.compare_digest(tag, _mac(key, head, body)):
            raise CheckpointError("its seal does not match its content (altered, or written by someone else): refused")
    return unpickle(body)


def is_sealed(blob: bytes) -> bool:
    head = bytes(blob[:200]).partition(b"\n")[0]
    return head.startswith(_PREFIX + f"{VERSION} ".encode()) and not head.endswith(b" -")


def unpickle(body: bytes) -> Any:
    """A pickle of state classes only (see STATE_MODULES), with moved modules followed (see MOVED)."""
    try:
        return _Unpickler(io.BytesIO(body)).load()
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or corrupt bytes
        raise CheckpointError(f"corrupt checkpoint ({type(e).__name__}: {e})") from None
