"""What the platform's own services share: the parts of the running platform they read (`Core`, named one by
one: no service reaches back into the platform), the store view of the protocols each declares, and a few lookups
several services need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from plantguard.domain.fields import TAG_SEP
from plantguard.store.base import Series

MAX_HISTORY_ROWS = 20_000_000  # a state point at 1 Hz for 93 days is 8 M rows


@dataclass(frozen=True)
class Core:
    """The running parts the platform's services read. `model` and `index` are functions: they follow the
    current plant model."""

    points: Any                      # PointRegistry
    pipeline: Any                    # Pipeline (submit, latest, stats, lag)
    clock: Callable[[], int]
    model: Callable[[], Any]         # the current PlantConfig
    index: Callable[[], Any]         # its PlantIndex
    retention: dict
    bus: Any


class CoreService:
    """A service over the core parts and a store view with only the protocols in STORES."""

    STORES: tuple[type, ...] = ()

    def __init__(self, core: Core, store) -> None:
        from plantguard.capabilities import store_view

        self.core = core
        self.store = store_view(store, self.STORES)

    @property
    def index(self):
        return self.core.index()

    @property
    def cfg(self):
        return self.core.model()

    @property
    def registry(self):
        return self.core.points

    @property
    def clock(self):
        return self.core.clock

    def pid_of(self, tag: str) -> int:
        from plantguard.errors import NotFound

        pid = self.core.points.pid(tag)
        if pid is None:
            raise NotFound(f"unknown point {tag!r}")
        return pid

    def _state_gate(self, tag: str, point) -> tuple[str, np.ndarray, int] | None:
        """(state point tag, allowed state codes, lookback us) when the point's analytics run only in some
        machine states (analytics.only_when), else None."""
        from plantguard.domain.model import state_gate

        ref = self.index.point(tag)
        gate = state_gate(ref.line, ref.asset, point) if ref is not None and point is not None else None
        if gate is None:
            return None
        lookback = int((ref.line.oee.max_gap_s or 86400) * 1e6)
        return f"{TAG_SEP.join(tag.split(TAG_SEP)[:4])}/{gate[0]}", np.array(gate[1], np.float64), lookback

    def _point_cfg(self, tag: str):
        ref = self.index.point(tag)
        return None if ref is None else ref.point

    def _line_cfg(self, line_path: str):
        ref = self.index.require_line(line_path)
        return ref.site, ref.line

    def _history(self, tag: str, start: int, end: int) -> Series:
        return self.store.raw(self.pid_of(tag), start, end, MAX_HISTORY_ROWS)

def _plain(x):
    """Dataclasses, tuples, numpy scalars and non-finite floats as JSON-ready values (NaN/inf -> None)."""
    import dataclasses
    import math

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        x = dataclasses.asdict(x)
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
