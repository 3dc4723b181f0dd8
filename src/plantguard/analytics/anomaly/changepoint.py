"""Change-point detection: a CUSUM on the standardized distance to the current regime, restarted at each change.

    det = CusumChangePoint(warmup=60, drift=0.5, threshold=20.0)
    for x in stream:                 # a float, or a mapping of sensor -> float
        s = det.score_one(x)         # in [0, 1); 0.9 is reached exactly when the CUSUM crosses `threshold`
        det.learn_one(x)
        if det.changed:              # a change point was declared at this reading
            ...

The statistic per reading is z = T²/d: the squared Mahalanobis distance of the reading to the mean of the
current regime, divided by the number of features (for a float, the squared z-score). Under a stable regime z
has mean about 1; a shift of the level of any sensor, or of the relation between sensors, raises it. A
one-sided CUSUM S = max(0, S + z - 1 - drift) accumulates the excess, and a change point is declared when S
exceeds `threshold`. `drift` is the smallest sustained excess worth detecting; `threshold` sets the false
alarm rate (average run length) versus delay trade-off.

After a change the regime's mean is re-learned from the next `relearn` readings (no alarms meanwhile), while
the noise covariance learned during warm-up is kept: a fault moves the operating point, the sensor noise
stays about the same, and a few dozen readings estimate a mean well but a covariance poorly. So a fault, its
steady state, and the recovery each give their own change point.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from plantguard.analytics.anomaly.base import Detector, as_features, is_missing, squash
from plantguard.errors import InvalidInput

# ln(10): with scale = threshold/ln(10) the score is 0.9 exactly at the threshold
_LN10 = math.log(10.0)


class CusumChangePoint(Detector):
    """One-sided CUSUM on T²/d with a restart after each detected change (see module docstring).

    - `warmup`: complete readings used to learn the mean and noise covariance before monitoring starts.
    - `drift`: allowance subtracted from each z-1; only a sustained excess above it accumulates.
    - `threshold`: CUSUM level declaring a change.
    - `relearn`: readings used to learn the new regime's mean after a change (no detection meanwhile).
    - `shrinkage`, `min_std`: covariance regularisation as in `StreamingMahalanobis`.
    - `max_z`: cap on one reading's contribution, so one wild sample cannot declare a change by itself.

    Accepts a float (univariate) or a mapping (multivariate); the first learned reading fixes which.
    Missing values are skipped (score 0.0, nothing learned); a partial mapping is scored on the present
    features but not learned.
    """

    kind = "multivariate"
    learns_from_every_reading = True  # the CUSUM must see the shift to declare it and learn the new regime

    def __init__(self, warmup: int = 60, drift: float = 0.5, threshold: float = 20.0, relearn: int = 30,
                 shrinkage: float = 0.05, min_std: float = 1e-6, max_z: float = 25.0):
        if warmup < 2:
            raise InvalidInput("warmup must be at least 2")
        if relearn < 1:
            raise InvalidInput("relearn must be at least 1")
        if not threshold > 0 or drift < 0 or not max_z > 0:
            raise InvalidInput("threshold and max_z must be positive, drift non-negative")
        if not 0.0 <= shrinkage <= 1.0:
            raise InvalidInput("shrinkage must be in [0, 1]")
        self.warmup = warmup
        self.drift = drift
        self.threshold = threshold
        self.relearn = relearn
        self.shrinkage = shrinkage
        self.min_std = min_std
        self.max_z = max_z
        self._names: tuple[str, ...] | None = None
        self._scalar: bool | None = None
        self._n = 0                 # complete readings learned
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._inv: dict[tuple[int, ...], np.ndarray] = {}
        self._regime_n = 0          # readings learned into the current regime's mean (after a change)
        self._regime_sum: np.ndarray | None = None
        self._cusum = 0.0
        self._changed = False
        self._change_points: list[int] = []
        self._seen = 0              # every call to learn_one, for change point indices

    # -- public state ------------------------------------------------------------------------------------
    @property
    def is_warm(self) -> bool:
        return self._n >= self.warmup and self._regime_n >= self.relearn

    @property
    def changed(self) -> bool:
        """True when the last `learn_one` declared a change point."""
        return self._changed

    @property
    def change_points(self) -> list[int]:
        """Positions (0-based, counting every call to learn_one) where changes were declared."""
        return list(self._change_points)

    @property
    def statistic(self) -> float:
        """Current CUSUM value."""
        return self._cusum

    def restart(self) -> None:
        """Forget the current regime (keeping the noise covariance) and learn a new one from the next
        `relearn` readings, e.g. after a deliberate set-point change or to start on a new recording."""
        if self._n < self.warmup:
            return
        self._cusum = 0.0
        self._regime_sum = np.zeros_like(self._mean)
        self._regime_n = 0

    # -- internals ---------------------------------------------------------------------------------------
    def _vector(self, x: Any) -> np.ndarray | None:
        """The reading as a vector over the known features (NaN where missing); None if unusable."""
        if self._scalar is None:
            if is_missing(x):
                return None
            self._scalar = not hasattr(x, "keys")
            if not self._scalar:
                feats = as_features(x)
                if not feats:
                    self._scalar = None
                    return None
                self._names = tuple(sorted(feats))
        if self._scalar:
            if hasattr(x, "keys"):
                raise InvalidInput("this detector was started on floats, got a mapping")
            v = math.nan if is_missing(x) else float(x)
            return np.array([v])
        feats = as_features(x)
        return np.array([feats.get(n, math.nan) for n in self._names], dtype=float)

    def _cov(self) -> np.ndarray:
        # the covariance is frozen at the end of warm-up; later readings only move the regime's mean
        cov = self._m2 / max(min(self._n, self.warmup) - 1, 1)
        floor = self.min_std * (1.0 + np.abs(self._mean))
        diag = np.maximum(np.diag(cov), floor ** 2)
        np.fill_diagonal(cov, diag)
        return (1.0 - self.shrinkage) * cov + self.shrinkage * np.diag(diag)

    def _z(self, v: np.ndarray) -> float:
        present = tuple(int(i) for i in np.flatnonzero(np.isfinite(v)))
        if not present:
            return math.nan
        inv = self._inv.get(present)
        if inv is None:
            inv = np.linalg.pinv(self._cov()[np.ix_(present, present)], hermitian=True)
            self._inv[present] = inv
        ref = self._regime_sum / self._regime_n
        dev = v[list(present)] - ref[list(present)]
        return min(float(dev @ inv @ dev) / len(present), self.max_z)

    def _next_cusum(self, z: float) -> float:
        return max(0.0, self._cusum + z - 1.0 - self.drift)

    # -- contract ----------------------------------------------------------------------------------------
    def score_one(self, x: Any) -> float:
        v = self._vector(x)
        if v is None or not self.is_warm:
            return 0.0
        z = self._z(v)
        if math.isnan(z):
            return 0.0
        return squash(self._next_cusum(z), self.threshold / _LN10)

    def learn_one(self, x: Any) -> None:
        self._changed = False
        index = self._seen
        self._seen += 1
        v = self._vector(x)
        if v is None:
            return
        complete = bool(np.all(np.isfinite(v)))
        if self._n < self.warmup:
            if not complete:
                return
            if self._mean is None:
                self._mean = np.zeros(len(v))
                self._m2 = np.zeros((len(v), len(v)))
                self._regime_sum = np.zeros(len(v))
            self._n += 1
            delta = v - self._mean
            self._mean += delta / self._n
            self._m2 += np.outer(delta, v - self._mean)
            self._inv.clear()
            if self._n == self.warmup:
                self._regime_sum = self._mean * self.relearn
                self._regime_n = self.relearn
            return
        if self._regime_n < self.relearn:
            if complete:
                self._n += 1
                self._regime_sum += v
                self._regime_n += 1
            return
        z = self._z(v)
        if math.isnan(z) or not complete:
            return
        self._n += 1
        self._cusum = self._next_cusum(z)
        if self._cusum >= self.threshold:
            self._changed = True
            self._change_points.append(index)
            self._cusum = 0.0
            self._regime_sum = np.zeros(len(v))
            self._regime_n = 0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_inv"] = {}
        return state
