"""Small helpers the analytics processor's parts share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RUL_CLEAR_FACTOR = 1.5  # a predictive alert clears once the lower bound is back above 1.5 x the lead time
_S = 1_000_000


@dataclass
class _Cfg:
    threshold: float
    alarm: bool


def _finite(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _h(seconds) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "unknown"
    s = float(seconds)
    if s >= 2 * 86400:
        return f"{s / 86400:.1f} d"
    if s >= 7200:
        return f"{s / 3600:.1f} h"
    return f"{s / 60:.0f} min"
