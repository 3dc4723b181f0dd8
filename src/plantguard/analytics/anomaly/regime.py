"""Regime detection: is the asset away from the operating point it was started at, with hysteresis.

    cov = fit_reference(normal_recordings, warmup=400)         # optional, see below
    det = RegimeDetector(warmup=400, covariance=cov, high=4.0, low=2.0, hold=30)
    for x in stream:                 # a mapping sensor -> float
        s = det.score_one(x)         # in [0, 1); >= 0.9 exactly when this reading is (or keeps) an alarm
        det.learn_one(x)
        det.alarm                    # True while inside an anomalous regime

Many plant faults are collective: a valve is partly closed, a leak develops, the pump cavitates, and the whole
stretch from the fault's start until the recovery ends is abnormal, not single readings. The detector follows
that shape:

1. Features listed in `difference` are replaced by their change over `lag` readings (slow thermal drift is
   normal operation; a jump is not).
2. Every feature is smoothed by a causal moving average over the last `smooth` readings.
3. The first `warmup` readings fix the operating point: the mean of the smoothed features, and the scale of
   each feature, the standard deviation of its (unsmoothed) readings during warm-up. Deviations from the
   operating point are divided by that scale, so the same covariance serves assets running at different
   points (a pump at 32 l/min has ten times less vibration noise than the same pump at 125 l/min).
4. The statistic is T²/d of the scaled deviation: the squared Mahalanobis distance under `covariance` (the
   covariance of scaled smoothed deviations over normal operation, in sorted feature order, e.g. from
   `fit_reference` on normal recordings), divided by the number of features present. Without `covariance`,
   the covariance is estimated from the warm-up itself (a few minutes rarely show the normal wander, so
   thresholds need to be wider then).
5. Hysteresis: an alarm starts when the statistic exceeds `high`, and ends only after it has stayed below
   `low` for `hold` consecutive readings.

After warm-up the operating point is frozen (a fault must not be learned into it); `restart()` learns a new
one from the next `warmup` readings, e.g. after a deliberate set-point change. Missing values (None, NaN,
absent keys) are tolerated: smoothing averages the finite values in the window, and the statistic is computed
on the features present with the marginal covariance.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from plantguard.analytics.anomaly.base import Detector, as_features, squash
from plantguard.errors import InvalidInput

_LN10 = math.log(10.0)


def hysteresis_step(alarm: bool, below: int, stat: float, high: float, low: float, hold: int) -> tuple[bool, int]:
    """One step of the alarm state machine: (alarm, readings in a row below `low`) after `stat`.
    A NaN statistic changes nothing."""
    if not math.isfinite(stat):
        return alarm, below
    if not alarm:
        return (True, 0) if stat > high else (False, 0)
    below = below + 1 if stat < low else 0
    if below >= hold:
        return False, 0
    return True, below


def hysteresis(stats: Iterable[float], high: float, low: float, hold: int) -> np.ndarray:
    """The alarm state after every statistic of a sequence (what `RegimeDetector.alarm` would say)."""
    alarm, below, out = False, 0, []
    for s in stats:
        alarm, below = hysteresis_step(alarm, below, float(s), high, low, hold)
        out.append(alarm)
    return np.array(out, dtype=bool)


class RegimeDetector(Detector):
    """Scaled deviation from the warm-up operating point, T²/d, with hysteresis (see module docstring).

    - `warmup`: readings that fix the operating point and the feature scales (no scores meanwhile).
    - `smooth`: causal moving-average window (readings).
    - `difference`, `lag`: features replaced by their change over `lag` readings.
    - `covariance`: covariance of scaled smoothed deviations in normal operation (sorted feature order), as
      nested tuples; None to estimate it from the warm-up.
    - `high`, `low`, `hold`: hysteresis thresholds on T²/d and the number of readings below `low` that end
      an alarm.
    - `shrinkage`, `min_scale`: regularisation (towards the diagonal; floor of a feature's scale relative to
      its magnitude) so constant or collinear features do not break the inverse.
    """

    kind = "multivariate"

    def __init__(self, warmup: int = 400, smooth: int = 30, difference: tuple[str, ...] = (), lag: int = 30,
                 covariance: tuple[tuple[float, ...], ...] | None = None, high: float = 4.0, low: float = 2.0,
                 hold: int = 30, shrinkage: float = 0.01, min_scale: float = 1e-6):
        if warmup < 2 or smooth < 1 or lag < 1 or hold < 1:
            raise InvalidInput("warmup must be at least 2; smooth, lag and hold at least 1")
        if not (high > 0 and 0 <= low <= high):
            raise InvalidInput("need high > 0 and 0 <= low <= high")
        if not 0.0 <= shrinkage <= 1.0:
            raise InvalidInput("shrinkage must be in [0, 1]")
        if covariance is not None:
            c = np.asarray(covariance, dtype=float)
            if c.ndim != 2 or c.shape[0] != c.shape[1] or not np.all(np.isfinite(c)):
                raise InvalidInput("covariance must be a finite square matrix")
        self.warmup = warmup
        self.smooth = smooth
        self.difference = tuple(difference)
        self.lag = lag
        self.covariance = covariance
        self.high = high
        self.low = low
        self.hold = hold
        self.shrinkage = shrinkage
        self.min_scale = min_scale
        self._names: tuple[str, ...] | None = None
        self._history: dict[str, deque] = {}   # raw values of differenced features, last lag+1
        self._window: deque = deque(maxlen=smooth)  # feature vectors (after differencing)
        self._seen = 0                          # readings since the start (or restart) of warm-up
        self._warm_rows: list[np.ndarray] = []
        self._warm_smooth: list[np.ndarray] = []
        self._base: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self._cov: np.ndarray | None = None
        self._inv: dict[tuple[int, ...], np.ndarray] = {}
        self._alarm = False
        self._below = 0
        self._stat = math.nan

    # -- public state ------------------------------------------------------------------------------------
    @property
    def is_warm(self) -> bool:
        return self._base is not None

    @property
    def alarm(self) -> bool:
        """True while inside an anomalous regime (after the last `learn_one`)."""
        return self._alarm

    @property
    def statistic(self) -> float:
        """T²/d of the last learned reading (NaN while warming up or with nothing present)."""
        return self._stat

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        return self._names

    def restart(self) -> None:
        """Learn a new operating point from the next `warmup` readings (the smoothing window is kept)."""
        self._seen = 0
        self._warm_rows, self._warm_smooth = [], []
        self._base = self._scale = None
        self._inv = {}
        if self.covariance is None:
            self._cov = None
        self._alarm, self._below, self._stat = False, 0, math.nan

    # -- internals ---------------------------------------------------------------------------------------
    def _features(self, x: Any, commit: bool) -> np.ndarray | None:
        feats = as_features(x)
        if self._names is None:
            if not feats:
                return None
            if not commit:
                return None
            self._names = tuple(sorted(feats))
            if self.covariance is not None and len(self.covariance) != len(self._names):
                raise InvalidInput(f"covariance is {len(self.covariance)}x{len(self.covariance)} but the "
                                   f"readings have {len(self._names)} features")
            self._history = {n: deque(maxlen=self.lag + 1) for n in self._names if n in self.difference}
        v = np.array([feats.get(n, math.nan) for n in self._names], dtype=float)
        v[~np.isfinite(v)] = math.nan
        for i, n in enumerate(self._names):
            h = self._history.get(n)
            if h is None:
                continue
            past = h[-self.lag] if len(h) >= self.lag else math.nan
            if commit:
                h.append(v[i])
            v[i] = v[i] - past
        return v

    def _smoothed(self, v: np.ndarray, commit: bool) -> np.ndarray:
        rows = list(self._window)[-(self.smooth - 1):] if self.smooth > 1 else []
        if commit:
            self._window.append(v)
        m = np.vstack([*rows, v])
        ok = np.isfinite(m)
        cnt = ok.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, np.where(ok, m, 0.0).sum(axis=0) / np.maximum(cnt, 1), math.nan)

    def _finish_warmup(self) -> None:
        rows = np.array(self._warm_rows)
        sm = np.array(self._warm_smooth)
        d = len(self._names)
        with np.errstate(invalid="ignore"):
            base = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in sm.T])
            scale = np.array([np.nanstd(c) if np.sum(np.isfinite(c)) > 1 else 0.0 for c in rows.T])
        floor = self.min_scale * (1.0 + np.abs(base))
        self._base = base
        self._scale = np.maximum(scale, floor)
        if self.covariance is not None:
            self._cov = np.asarray(self.covariance, dtype=float)
        else:
            z = (sm - base) / self._scale
            z = z[np.all(np.isfinite(z), axis=1)]
            cov = np.cov(z, rowvar=False).reshape(d, d) if len(z) > 1 else np.eye(d)
            diag = np.maximum(np.diag(cov), 1e-12)
            np.fill_diagonal(cov, diag)
            self._cov = (1.0 - self.shrinkage) * cov + self.shrinkage * np.diag(diag)
        self._inv = {}
        self._warm_rows, self._warm_smooth = [], []

    def _t2d(self, s: np.ndarray) -> float:
        z = (s - self._base) / self._scale
        present = tuple(int(i) for i in np.flatnonzero(np.isfinite(z)))
        if not present:
            return math.nan
        inv = self._inv.get(present)
        if inv is None:
            inv = np.linalg.pinv(self._cov[np.ix_(present, present)], hermitian=True)
            self._inv[present] = inv
        zp = z[list(present)]
        return float(zp @ inv @ zp) / len(present)

    # -- contract ----------------------------------------------------------------------------------------
    def _advance(self, x: Any) -> np.ndarray | None:
        """Take one reading into the state; its smoothed features once warm (None while warming up)."""
        v = self._features(x, commit=True)
        if v is None:
            return None
        s = self._smoothed(v, commit=True)
        if self._base is None:
            self._seen += 1
            self._warm_rows.append(v)
            self._warm_smooth.append(s)
            if self._seen >= self.warmup:
                self._finish_warmup()
            return None
        return s

    def learn_one(self, x: Any) -> None:
        s = self._advance(x)
        if s is None:
            return
        self._stat = self._t2d(s)
        self._alarm, self._below = hysteresis_step(self._alarm, self._below, self._stat, self.high, self.low,
                                                   self.hold)

    def score_one(self, x: Any) -> float:
        if not isinstance(x, Mapping):
            as_features(x)  # raises the contract's error for a non-mapping
        v = self._features(x, commit=False)
        if v is None or self._base is None:
            return 0.0
        stat = self._t2d(self._smoothed(v, commit=False))
        if not math.isfinite(stat):
            return 0.9 if self._alarm else 0.0
        alarm, _ = hysteresis_step(self._alarm, self._below, stat, self.high, self.low, self.hold)
        s = squash(stat, self.high / _LN10)
        return max(s, 0.9) if alarm else min(s, 0.9 - 1e-9)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_inv"] = {}
        return state


def fit_reference(recordings: Iterable[Iterable[Mapping[str, Any]]], **params: Any) -> tuple[tuple[float, ...], ...]:
    """Covariance of scaled smoothed deviations over normal recordings, for `RegimeDetector(covariance=...)`.
    Each recording is streamed through a fresh `RegimeDetector(**params)`; after its warm-up, the complete
    scaled deviations are pooled. Shrinkage towards the diagonal as in the detector."""
    params = {k: v for k, v in params.items() if k not in ("covariance", "high", "low", "hold")}
    zs = []
    names = None
    for rec in recordings:
        det = RegimeDetector(**params)
        for x in rec:
            s = det._advance(x)
            if s is not None:
                z = (s - det._base) / det._scale
                if np.all(np.isfinite(z)):
                    zs.append(z)
        if det._names is not None:
            if names is not None and det._names != names:
                raise InvalidInput("reference recordings have different features")
            names = det._names
    if len(zs) < 2:
        raise InvalidInput("not enough complete readings after warm-up in the reference recordings")
    Z = np.array(zs)
    cov = np.cov(Z, rowvar=False).reshape(Z.shape[1], Z.shape[1])
    shrink = params.get("shrinkage", 0.01)
    diag = np.maximum(np.diag(cov), 1e-12)
    np.fill_diagonal(cov, diag)
    cov = (1.0 - shrink) * cov + shrink * np.diag(diag)
    return tuple(tuple(float(c) for c in r) for r in cov)
