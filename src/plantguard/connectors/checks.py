"""What every connector promises, checked over every registered entry point (tests/test_connector_checks.py), the
way the anomaly detectors share theirs: a new connector is checked as soon as it is registered.

- its configuration errors come by field path under `connectors[i]`;
- `probe` is an async classmethod (assessment before connecting);
- start() and stop() are idempotent and leave no thread behind;
- health() has the fields the platform reads (ok, type, thread_alive, restarts, links) and is JSON-serialisable;
- it is read-only by default: every boolean configuration field about writing defaults to False.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading

from pydantic import BaseModel

from plantguard.connectors.registry import validate
from plantguard.errors import ConfigError

HEALTH_FIELDS = ("ok", "type", "thread_alive", "restarts", "links")


class _Sink:
    def submit(self, batch, dead_letters=None, *, timeout=None, on_done=None):
        from concurrent.futures import Future

        f: Future = Future()
        f.set_result(None)
        if on_done is not None:
            on_done(f)
        return f


def check_config_errors_have_paths(name: str, example: dict) -> None:
    bad = {**example, "surprise_field": 1}
    try:
        validate([bad])
    except ConfigError as e:
        paths = {p.path for p in e.problems}
        assert "connectors[0].surprise_field" in paths, paths
    else:
        raise AssertionError(f"{name}: an unknown field was accepted")
    validate([example])  # the example itself is valid


def check_probe_contract(cls) -> None:
    probe = inspect.getattr_static(cls, "probe")
    assert isinstance(probe, classmethod), f"{cls.__name__}.probe must be a classmethod"
    assert asyncio.iscoroutinefunction(cls.probe), f"{cls.__name__}.probe must be async"


def check_start_stop_idempotent_and_health(cls, example: dict) -> None:
    [(c, cfg)] = validate([example])
    assert c is cls
    before = threading.active_count()
    conn = cls(cfg, _Sink())
    conn.start()
    conn.start()  # a second start is a no-op
    h = conn.health()
    for f in HEALTH_FIELDS:
        assert f in h, f"{cls.__name__}.health() lacks {f!r}"
    json.dumps(h, default=str)
    conn.stop(timeout=10.0)
    conn.stop(timeout=10.0)  # and so is a second stop
    assert threading.active_count() <= before + 1, "stop() left threads behind"


def check_read_only_by_default(model: type[BaseModel]) -> None:
    seen: set[type] = set()

    def walk(m: type[BaseModel], path: str) -> None:
        if m in seen:
            return
        seen.add(m)
        for fname, f in m.model_fields.items():
            ann = f.annotation
            if ann is bool and "writ" in fname:
                assert f.default is False, f"{path}{fname} must default to False (read-only by default)"
            for sub in _models_in(ann):
                walk(sub, f"{path}{fname}.")

    walk(model, "")


def _models_in(ann) -> list[type[BaseModel]]:
    import typing

    out = []
    stack = [ann]
    while stack:
        a = stack.pop()
        if isinstance(a, type) and issubclass(a, BaseModel):
            out.append(a)
        stack.extend(typing.get_args(a))
    return out
