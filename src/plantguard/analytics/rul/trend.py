"""`DegradationTrend`: streaming remaining life of one condition signal (e.g. bearing vibration RMS) against a
configured failure threshold.

    model = DegradationTrend(threshold=11.2)          # the signal's value at functional failure
    for ts, v in stream:                              # ts in seconds
        est = model.update(ts, v)                     # RulEstimate in seconds
        if est.alert(lead_time=2 * 3600): ...

Phases (`RulEstimate.state`):

1. "insufficient_data" for the first `warmup_s` seconds (at least `min_baseline` readings): the healthy
   baseline (mean and standard deviation) is learned. It assumes the asset is healthy then.
2. "healthy": a one-sided CUSUM on standardised readings, S = max(0, S + z - `cusum_k`), watches for a
   sustained rise. Its figures are +inf (no finite life can be extrapolated), so it never alerts.
3. "degrading" from the reading where S exceeds `cusum_h`. The excess over the baseline is assumed to grow
   exponentially, log(v - mean + c) = a + b t: the exponential degradation model with an unknown offset c
   (a wear curve like e^(kt) - 1 starts at zero, so it is log-linear only after a shift). One weighted
   recursive least squares fit per candidate c in `offsets` (multiples of the baseline standard deviation),
   O(1) per reading, with exponential forgetting of time constant `memory_s` (a reading dt seconds old weighs
   exp(-dt / memory_s); math.inf: none) so the fit follows the recent trend whatever the sampling rate. The c
   whose fit has had the smallest squared one-step-ahead errors since onset is used. Weights follow a noise
   model with a constant relative scatter (sd of a reading = sd_base * v / mean), so a reading at or below the
   baseline carries almost no weight.
   The life is the time until the trend reaches log(threshold - mean + c). Its interval is the inverse-
   regression (Fieller) interval: with the parameter covariance s^2 P (P from the RLS, s^2 the forgetting-
   weighted residual variance, times `inflation` for the error of the log-linear approximation), the lower
   bound is where the upper `level` prediction band of the trend meets the threshold, the upper bound where
   the lower band does. It keeps the skew of a ratio that a plain delta method loses. Until the growth rate
   is significantly positive at that level (and for the first `min_fit` readings) all figures are +inf: a
   trend that may still be flat is not extrapolated, so it cannot raise an alert.
4. "failed" once the smoothed level (EWMA, `smooth`) is at or above the threshold: all figures 0.

Bad input: NaN/inf values, and timestamps at or before the last accepted one (duplicates, out of order), are
ignored and return the previous estimate. Gaps need no special handling (the fit is on timestamps; the
interval is what the data supports). A constant baseline gets a standard deviation floor of `sd_floor` x |mean|
(and 1e-9), so resolution steps do not count as degradation. `reset()` after the part is replaced.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from plantguard.analytics.rul.base import RulEstimate

_HOUR = 3600.0


class DegradationTrend:
    def __init__(self, threshold: float, *, level: float = 0.9, warmup_s: float = 1800.0, min_baseline: int = 30,
                 cusum_k: float = 1.0, cusum_h: float = 25.0, memory_s: float = 1200.0, inflation: float = 4.0,
                 smooth: float = 0.05, sd_floor: float = 0.01, min_fit: int = 120,
                 offsets: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)) -> None:
        if not 0 < level < 1 or warmup_s < 0 or min_baseline < 2 or cusum_h <= 0 or not memory_s > 0:
            raise ValueError("need 0 < level < 1, warmup_s >= 0, min_baseline >= 2, cusum_h > 0, memory_s > 0")
        if inflation < 1 or not 0 < smooth <= 1 or sd_floor < 0 or min_fit < 3:
            raise ValueError("need inflation >= 1, 0 < smooth <= 1, sd_floor >= 0, min_fit >= 3")
        self.threshold = threshold
        self.level = level
        self.warmup_s = warmup_s
        self.min_baseline = min_baseline
        self.cusum_k = cusum_k
        self.cusum_h = cusum_h
        self.memory_s = memory_s
        self.inflation = inflation
        self.smooth = smooth
        self.sd_floor = sd_floor
        self.min_fit = min_fit
        if not offsets or min(offsets) < 0:
            raise ValueError("offsets are one or more non-negative multiples of the baseline standard deviation")
        self.offsets = tuple(offsets)
        self.reset()

    def _params(self) -> dict:
        return {k: getattr(self, k) for k in ("threshold", "level", "warmup_s", "min_baseline", "cusum_k", "cusum_h",
                                              "memory_s", "inflation", "smooth", "sd_floor", "min_fit", "offsets")}

    def clone(self) -> DegradationTrend:
        return type(self)(**self._params())

    def __repr__(self) -> str:
        return f"DegradationTrend({', '.join(f'{k}={v!r}' for k, v in self._params().items())})"

    def reset(self) -> None:
        """Forget everything (a replaced part starts a new life and a new baseline)."""
        self._t_last: float | None = None
        self._t_first: float | None = None
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._sd = math.nan
        self._cusum = 0.0
        self._onset_t: float | None = None
        self._level = math.nan
        k = len(self.offsets)
        self._theta = np.zeros((k, 2))
        self._P = np.tile(np.eye(2) * 1e6, (k, 1, 1))
        self._sw = 0.0  # forgetting-weighted count
        self._swr = np.zeros(k)  # forgetting-weighted squared standardised residuals, per offset
        self._press = np.zeros(k)  # squared standardised one-step-ahead errors since onset, per offset
        self._n_fit = 0
        self._est = RulEstimate.insufficient(self.level)

    # -- introspection --------------------------------------------------------------------------------------
    @property
    def baseline(self) -> tuple[float, float]:
        """Healthy mean and standard deviation (NaN until learned)."""
        return (self._mean, self._sd) if not math.isnan(self._sd) else (math.nan, math.nan)

    @property
    def onset_s(self) -> float | None:
        """Timestamp at which degradation was detected (None before)."""
        return self._onset_t

    @property
    def estimate(self) -> RulEstimate:
        return self._est

    # -- the stream -----------------------------------------------------------------------------------------
    def update(self, ts: float, value: float) -> RulEstimate:
        """One reading (timestamp in seconds, value in the signal's unit); returns the estimate after it."""
        try:
            ts, v = float(ts), float(value)
        except (TypeError, ValueError):
            return self._est
        if not (math.isfinite(ts) and math.isfinite(v)) or (self._t_last is not None and ts <= self._t_last):
            return self._est
        dt = 0.0 if self._t_last is None else ts - self._t_last
        self._t_last = ts
        self._level = v if math.isnan(self._level) else self._level + self.smooth * (v - self._level)
        if math.isnan(self._sd):
            return self._learn_baseline(ts, v)
        if self._level >= self.threshold:
            self._est = RulEstimate(0.0, 0.0, 0.0, self.level, "failed")
            return self._est
        z = (v - self._mean) / self._sd
        if self._onset_t is None:
            self._cusum = max(0.0, self._cusum + z - self.cusum_k)
            if self._cusum <= self.cusum_h:
                return self._est
            self._onset_t = ts
        self._fit(ts, v, dt)
        self._est = self._extrapolate(ts)
        return self._est

    def _learn_baseline(self, ts: float, v: float) -> RulEstimate:
        if self._t_first is None:
            self._t_first = ts
        self._n += 1
        d = v - self._mean
        self._mean += d / self._n
        self._m2 += d * (v - self._mean)
        if self._n >= self.min_baseline and ts - self._t_first >= self.warmup_s:
            sd = math.sqrt(self._m2 / (self._n - 1))
            self._sd = max(sd, self.sd_floor * abs(self._mean), 1e-9)
            self._est = RulEstimate(math.inf, math.inf, math.inf, self.level, "healthy")
        return self._est

    def _fit(self, ts: float, v: float, dt: float) -> None:
        # one weighted RLS per offset c: log(v - mean + c * sd) = a + b t
        e = v - self._mean + np.asarray(self.offsets) * self._sd
        rel = self._sd * max(abs(v), 1e-12) / max(abs(self._mean), 1e-12)  # the reading's standard deviation
        floor = 0.1 * self._sd
        ec = np.maximum(e, floor)
        w = np.where(e > 0, (ec / rel) ** 2, (floor / rel) ** 2 * 1e-2)
        y = np.log(ec)
        x = np.array([1.0, (ts - self._onset_t) / _HOUR])
        f = math.exp(-dt / self.memory_s) if math.isfinite(self.memory_s) else 1.0
        px = self._P @ x  # (k, 2)
        k = px / (f / w + px @ x)[:, None]
        prior = y - self._theta @ x
        if self._n_fit >= self.min_fit:
            self._press += w * prior * prior
        self._theta += k * prior[:, None]
        self._P = (self._P - k[:, :, None] * px[:, None, :]) / f
        r = y - self._theta @ x
        self._sw = f * self._sw + 1.0
        # w r^2 ~ (residual in the signal's unit / its sd)^2: comparable across offsets
        self._swr = f * self._swr + w * r * r
        self._n_fit += 1

    def _extrapolate(self, ts: float) -> RulEstimate:
        if self._n_fit < self.min_fit:
            return RulEstimate(math.inf, math.inf, math.inf, self.level, "degrading")
        now = (ts - self._onset_t) / _HOUR
        j = int(np.argmin(self._press))  # the offset that has predicted best since onset
        c = self.offsets[j] * self._sd
        d = math.log(max(self.threshold - self._mean + c, 1e-12)) - self._theta[j, 0]
        b = self._theta[j, 1]
        cov = self._P[j] * (self._swr[j] / max(self._sw - 2.0, 1.0)) * self.inflation
        z2 = NormalDist().inv_cdf(0.5 + self.level / 2) ** 2
        # t lies in the confidence set of the crossing time when q(t) = (d - b t)^2 - z^2 var(a + b t) <= 0
        qa = b * b - z2 * cov[1, 1]
        qb = -2.0 * (d * b + z2 * cov[0, 1])
        qc = d * d - z2 * cov[0, 0]
        disc = qb * qb - 4.0 * qa * qc
        if qa <= 0:  # the growth rate is not significantly positive yet: nothing to extrapolate
            return RulEstimate(math.inf, math.inf, math.inf, self.level, "degrading")
        if disc < 0:
            pieces = [] if qa > 0 else [(-math.inf, math.inf)]
        elif qa == 0:
            pieces = [(-math.inf, math.inf)]
        else:
            r1, r2 = sorted(((-qb - math.sqrt(disc)) / (2 * qa), (-qb + math.sqrt(disc)) / (2 * qa)))
            pieces = [(r1, r2)] if qa > 0 else [(-math.inf, r1), (r2, math.inf)]
        ahead = [(max(lo, now), hi) for lo, hi in pieces if hi >= now]
        if ahead:
            lower, upper = ahead[0][0] - now, ahead[-1][1] - now
        elif pieces:  # the whole confidence set is in the past: the trend has reached the threshold already
            lower = upper = 0.0
        else:  # a flat trend known well enough not to reach the threshold
            lower = upper = math.inf
        median = max(0.0, d / b - now) if b > 0 else math.inf
        lower, upper = min(lower, median), max(upper, median)
        return RulEstimate(float(median * _HOUR), float(lower * _HOUR), float(upper * _HOUR), self.level, "degrading")
