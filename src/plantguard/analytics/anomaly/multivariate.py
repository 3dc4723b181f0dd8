"""Multivariate detectors for one asset's correlated sensors (a pump's vibration, current, pressure, temperature).

`StreamingMahalanobis` keeps a streaming mean and covariance (Welford, or exponentially weighted when
`forgetting` is set) and scores a reading by its squared Mahalanobis distance, i.e. Hotelling's T² with the
parameters estimated online. T² sees what per-sensor limits miss: a reading where every sensor is within its
own range but their usual relation (current follows flow, pressure follows valve opening) is broken.

Why T² on the full covariance rather than PCA T²+Q: with a handful of sensors the full covariance is cheap and
well estimated, and T² over all components already contains the residual subspace that Q watches (Q is T²'s
small-eigenvalue part without the 1/lambda weighting). Shrinkage towards the diagonal keeps the inverse stable
when sensors are nearly collinear or a channel is constant.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from plantguard.analytics.anomaly.base import Detector, as_features, squash
from plantguard.errors import InvalidInput


class StreamingMahalanobis(Detector):
    """Squared Mahalanobis distance of a reading to the learned mean/covariance, squashed into [0, 1).

    - `warmup`: complete readings to learn before scores are given (0.0 before).
    - `forgetting`: None for equal weights over everything learned (Welford); a value in (0, 1) for an
      exponentially weighted mean/covariance with that weight on the newest reading (tracks slow drift).
    - `shrinkage`: weight in [0, 1] pulling the covariance towards its diagonal (Ledoit-Wolf style target);
      a small value is enough to make near-singular covariances invertible.
    - `min_std`: floor for each channel's standard deviation, in the channel's own units relative to its
      mean magnitude plus an absolute floor, so a constant channel neither divides by zero nor dominates.
    - `scale`: the score is `1 - exp(-T²/(d*scale))` where d is the number of features scored, so that the
      score means the same for 3 or 8 sensors (T²/d has mean 1 under normal operation).

    Features are fixed by the first complete reading learned. A reading with missing features (None, NaN or
    absent keys) is scored on the present subset with the marginal mean/covariance and is not learned.
    """

    kind = "multivariate"

    def __init__(self, warmup: int = 50, forgetting: float | None = None, shrinkage: float = 0.01,
                 min_std: float = 1e-6, scale: float = 4.0):
        if warmup < 2:
            raise InvalidInput("warmup must be at least 2")
        if forgetting is not None and not 0.0 < forgetting < 1.0:
            raise InvalidInput("forgetting must be in (0, 1) or None")
        if not 0.0 <= shrinkage <= 1.0:
            raise InvalidInput("shrinkage must be in [0, 1]")
        if not scale > 0:
            raise InvalidInput("scale must be positive")
        self.warmup = warmup
        self.forgetting = forgetting
        self.shrinkage = shrinkage
        self.min_std = min_std
        self.scale = scale
        self._names: tuple[str, ...] | None = None
        self._n = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None  # sum of outer products of deviations (Welford) or EW covariance
        self._inv_cache: dict[tuple[int, ...], np.ndarray] = {}

    # -- state -------------------------------------------------------------------------------------------
    @property
    def is_warm(self) -> bool:
        return self._n >= self.warmup

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        return self._names

    def _vector(self, x: Any) -> np.ndarray | None:
        feats = as_features(x)
        if self._names is None:
            return None
        return np.array([feats.get(n, math.nan) for n in self._names], dtype=float)

    def learn_one(self, x: Any) -> None:
        feats = as_features(x)
        if self._names is None:
            if not feats or any(math.isnan(v) or math.isinf(v) for v in feats.values()):
                return
            self._names = tuple(sorted(feats))
            d = len(self._names)
            self._mean = np.zeros(d)
            self._m2 = np.zeros((d, d))
        v = np.array([feats.get(n, math.nan) for n in self._names], dtype=float)
        if not np.all(np.isfinite(v)):
            return  # incomplete readings would bias the covariance
        self._n += 1
        self._inv_cache.clear()
        delta = v - self._mean
        if self.forgetting is None or self._n <= self.warmup:
            # equal weights until warm, so the exponential variant does not start from a 1-sample estimate
            self._mean += delta / self._n
            self._m2 += np.outer(delta, v - self._mean)
            if self.forgetting is not None and self._n == self.warmup:
                self._m2 /= max(self._n - 1, 1)  # switch to an EW covariance estimate
        else:
            a = self.forgetting
            self._mean += a * delta
            self._m2 = (1 - a) * (self._m2 + a * np.outer(delta, delta))

    def _cov(self) -> np.ndarray:
        if self.forgetting is not None and self._n >= self.warmup:
            cov = self._m2.copy()
        else:
            cov = self._m2 / max(self._n - 1, 1)
        floor = self.min_std * (1.0 + np.abs(self._mean))
        diag = np.maximum(np.diag(cov), floor ** 2)
        np.fill_diagonal(cov, diag)
        return (1.0 - self.shrinkage) * cov + self.shrinkage * np.diag(diag)

    def _inverse(self, idx: tuple[int, ...]) -> np.ndarray:
        inv = self._inv_cache.get(idx)
        if inv is None:
            cov = self._cov()[np.ix_(idx, idx)]
            inv = np.linalg.pinv(cov, hermitian=True)
            self._inv_cache[idx] = inv
        return inv

    def t2(self, x: Any) -> float:
        """Squared Mahalanobis distance over the features present; NaN while cold or if none is present."""
        if not self.is_warm:
            return math.nan
        v = self._vector(x)
        present = tuple(int(i) for i in np.flatnonzero(np.isfinite(v)))
        if not present:
            return math.nan
        dev = v[list(present)] - self._mean[list(present)]
        return float(dev @ self._inverse(present) @ dev)

    def score_one(self, x: Any) -> float:
        as_features(x)  # a non-mapping is a caller error even while warming up
        t2 = self.t2(x)
        if math.isnan(t2):
            return 0.0
        d = int(np.sum(np.isfinite(self._vector(x))))
        return squash(t2 / d, self.scale)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_inv_cache"] = {}
        return state
