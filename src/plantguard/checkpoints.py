"""Checkpoints of learned state (analytics banks, detectors) with a versioned header, loadable across code moves.

    blob = dumps(state, "analytics")                 # b"PGCKPT 2 analytics\n" + pickle
    state = loads(blob, "analytics")                 # CheckpointError (with the reason) when it cannot be used

A checkpoint is a pickle, which names classes by module. When a class moves (`ingest/analytics.py` became
`plant_analytics/processor.py`), `MOVED` maps the old module to the new one, so a restarted platform keeps what it
learned instead of silently relearning; a class that no longer exists anywhere raises CheckpointError naming it,
and the caller logs it as an error. Checkpoints written before the header existed (version 1) load the same way.
Only load blobs the platform wrote itself: unpickling runs code.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from plantguard.errors import PlantguardError

VERSION = 2
_PREFIX = b"PGCKPT "

#: old module -> new module, for every module whose classes checkpoints may name
MOVED: dict[str, str] = {
    "plantguard.ingest.analytics": "plantguard.plant_analytics.processor",
}


class CheckpointError(PlantguardError):
    """A checkpoint that cannot be used (wrong kind, unknown format, a class that no longer exists)."""


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module = MOVED.get(module, module)
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError) as e:
            raise CheckpointError(f"the checkpoint names {module}.{name}, which no longer exists ({e}); add its new "
                                  "place to plantguard.checkpoints.MOVED to keep the learned state") from None


def dumps(obj: Any, kind: str) -> bytes:
    return _PREFIX + f"{VERSION} {kind}\n".encode() + pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def loads(blob: bytes, kind: str) -> Any:
    if blob.startswith(_PREFIX):
        head, _, body = blob.partition(b"\n")
        try:
            version, got = head[len(_PREFIX):].decode().split(" ", 1)
            version_n = int(version)
        except ValueError:
            raise CheckpointError("unreadable checkpoint header") from None
        if version_n > VERSION:
            raise CheckpointError(f"checkpoint format {version_n} is newer than this version understands ({VERSION})")
        if got != kind:
            raise CheckpointError(f"a {got!r} checkpoint, not {kind!r}")
    else:
        body = blob  # version 1: a bare pickle
    return unpickle(body)


def unpickle(body: bytes) -> Any:
    """A pickle written by the platform, with moved modules followed (see MOVED)."""
    try:
        return _Unpickler(io.BytesIO(body)).load()
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or corrupt bytes
        raise CheckpointError(f"corrupt checkpoint ({type(e).__name__}: {e})") from None
