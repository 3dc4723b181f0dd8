"""Results of the analytics the platform runs as data arrives: what is stored and what the API returns.

Keys name what a result belongs to:
    spc/<tag>            SPC of one point (state: limits, status, capability; series: EWMA statistic)
    anomaly/<tag>        univariate anomaly score of one point
    anomaly/<asset path> multivariate anomaly score of one asset ('site/area/line/asset')
    rul/<asset path>     remaining useful life of one asset (series: median with lower and upper bound, seconds)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("spc", "anomaly", "rul")


@dataclass
class AnalyticsEvent:
    """Something an analytic concluded at reading time `ts`: a rule violation, an anomaly starting or ending,
    a change point, a predictive alert."""

    ts: int  # epoch microseconds of the reading that triggered it
    kind: str  # spc | anomaly | rul
    key: str  # see the module docstring
    rule: str  # e.g. "nelson-1", "ewma", "cusum-up", "anomaly-start", "anomaly-end", "changepoint", "rul-alert"
    message: str = ""
    detail: dict = field(default_factory=dict)  # points involved, scores, estimates...
    id: int | None = None  # assigned by the store

    def as_dict(self) -> dict:
        return {"id": self.id, "ts": self.ts, "kind": self.kind, "key": self.key, "rule": self.rule,
                "message": self.message, "detail": self.detail}


@dataclass
class SeriesRows:
    """Rows of derived series (scores, EWMA statistics, RUL estimates), columnar."""

    key: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    lower: list[float | None] = field(default_factory=list)
    upper: list[float | None] = field(default_factory=list)

    def add(self, key: str, ts: int, value: float, lower: float | None = None, upper: float | None = None) -> None:
        self.key.append(key)
        self.ts.append(int(ts))
        self.value.append(float(value))
        self.lower.append(None if lower is None else float(lower))
        self.upper.append(None if upper is None else float(upper))

    def extend(self, keys: list[str], ts: list[int], values: list[float]) -> None:
        """Rows without bounds, in bulk."""
        self.key += keys
        self.ts += ts
        self.value += values
        self.lower += [None] * len(keys)
        self.upper += [None] * len(keys)

    def __len__(self) -> int:
        return len(self.key)


@dataclass
class AnalyticsWrite:
    """What the analytics processor hands to the store after a batch, written in one transaction."""

    series: SeriesRows = field(default_factory=SeriesRows)
    events: list[AnalyticsEvent] = field(default_factory=list)
    states: dict[str, dict] = field(default_factory=dict)  # key -> JSON-able payload (replaces the previous one)

    def __bool__(self) -> bool:
        return bool(len(self.series) or self.events or self.states)


@dataclass
class DerivedSeries:
    ts: np.ndarray
    value: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
