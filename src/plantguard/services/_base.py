"""What every service shares: it reads the platform's parts (store, registry, pipeline, processors, the current
model and its index) through the platform, and a few lookups several services need."""

from __future__ import annotations

from typing import Any

import numpy as np

from plantguard.domain.model import TAG_SEP
from plantguard.store.base import Series

MAX_HISTORY_ROWS = 20_000_000  # a state point at 1 Hz for 93 days is 8 M rows


class PlatformPart:
    """A service over one Platform. Attributes it does not define are the platform's (store, registry,
    pipeline, cfg, index, clock, alarms, analytics...): services are views of the composed platform, not copies."""

    def __init__(self, platform) -> None:
        self._p = platform

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._p, name)

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
