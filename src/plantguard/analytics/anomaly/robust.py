"""Robust univariate detector: a slowly adapting robust z-score, optionally per phase of a season.

    det = RobustZScore(alpha=0.01, warmup=30)                 # plain
    det = RobustZScore(period=86400, bins=24)                 # one profile per hour of day (UTC)
    s = det.score_one(x, ts=1717000000.0)                     # ts: epoch seconds, only used when seasonal
    det.learn_one(x, ts=1717000000.0)

Estimator. The location and scale are exponentially weighted Huber-type M-estimates, updated in O(1):

    r     = x - loc
    loc  += alpha * clip(r, -K_LOC*scale, K_LOC*scale)
    var   = (1 - alpha) * scale**2 + alpha * min(r**2, (K_SCALE*scale)**2) / C
    scale = max(sqrt(var), floor)
    floor = max(min_scale, rel_scale*|loc|, floor_history*slow, resolution/2)

where C = E[min(Z**2, K_SCALE**2)] for a standard normal Z, so `scale` estimates the standard deviation of
Gaussian noise. They start from the median and MAD (times 1.4826) of the first `warmup` readings, kept in a
buffer that is dropped afterwards. Why this and not a stochastic-approximation median/MAD (sign updates) or
P²: the sign updates move by a fixed step whatever the data, so at alpha = 0.01 the scale estimate jitters by
about 8 % around its target, which makes the false-alarm rate jitter too; P² keeps five markers per quantile
and does not forget. The clipped updates are as smooth as an EWMA for normal data, an outlier moves them by
at most alpha*K in scale units (bounded influence), they are scale- and shift-equivariant, and they have no
branches, so the vectorised bank (bank.py) computes exactly the same numbers.

Level shifts. Every learned reading moves the estimate by a bounded amount, but a persistent shift inflates the
scale geometrically (by about 4*alpha per reading while the readings sit beyond K_SCALE scales), and the
location follows in steps of K_LOC*alpha*scale: a shift of D scales becomes the new normal (scores back under
0.9) after about ln(D)/(4*alpha) readings, e.g. 120 readings for a 100-sigma shift at alpha = 0.01; the scale
then shrinks back at rate alpha. (Keeping anomalous readings out of the baseline is `Thresholded(protect=True)`,
which bounds it with `protect_for`.)

Scale floor. `slow` follows the scale up at rate alpha and down at rate alpha/100, so it remembers how noisy the
signal has been over about 100/alpha readings; the scale never falls below `floor_history` times it. A flat
stretch of a noisy signal therefore does not make its tiny wiggles score 1.0, yet a signal that stays quiet
becomes the new normal over that memory. `resolution` is the smallest non-zero step seen between consecutive
learned readings: a quantised signal toggling by one step is half a scale out at most.

Stuck readings. With `stuck_ratio`, a run of identical readings is evidence too: a run of `stuck_ratio` times
the signal's typical run length scores 0.9, as a reading `sigmas` out does; the score is the larger of the two.
The typical run is 1/(1 - p), p the share of readings equal to the one before (a running mean with gain
alpha/10, so about 10/alpha readings of memory): 1 for a noisy signal, hundreds for a quantised one that
changes step now and then. A stuck period raises p too, so a sensor that stays frozen becomes the new normal.

Seasonality. With `period` (seconds) the phase `ts mod period` is split into `bins` equal bins, each with its
own location and scale. A bin starts at its first reading (learned once the global estimate is warm) with
the global scale, then learns with gains max(alpha, 1/(n+1)) for the location and max(alpha, 1/n) for the
scale (n = readings the bin learned before): running clipped means that turn into the EWMAs, so a bin
forgets its start within a few readings. A bin scores once it has learned `warmup` readings; before that,
and for readings without `ts`, the global estimate is used. The global estimate always learns every reading, so a bin that
rarely sees data (a plant idle at night) never leaves a reading unscored. Phases are UTC (no daylight saving).

Score. z = |x - loc| / scale in robust standard deviations; score = 1 - exp(-z*ln(10)/sigmas), so a reading
`sigmas` (default 5) robust sigmas out scores 0.9 and the default threshold 0.9 means "5 sigma".

Bad input. None, NaN and +-inf are missing: score 0.0 and nothing learned. A constant signal gives a scale at
the floor max(min_scale, rel_scale*|loc|), so scores stay finite and a later move scores high. Set
`min_scale` to the sensor's resolution for quantised signals. The estimate adapts per reading, not per second:
gaps change nothing, and time order only matters for the phase bin, so out-of-order or duplicate readings are
scored like any other (the ingest pipeline removes duplicates before detectors see them).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np

from plantguard.analytics.anomaly.base import Detector
from plantguard.errors import InvalidInput

K_LOC = 2.0
K_SCALE = 3.0
MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4)
LN10 = math.log(10.0)
SLOW_DOWN = 0.01  # the scale's slow memory falls 100 times slower than it rises
RUN_GAIN = 0.1    # the share of repeated readings is learned 10 times slower than the level


def _clipped_second_moment(k: float) -> float:
    """E[min(Z**2, k**2)] for Z ~ N(0, 1)."""
    p_in = math.erf(k / math.sqrt(2.0))
    pdf = math.exp(-0.5 * k * k) / math.sqrt(2.0 * math.pi)
    return p_in - 2.0 * k * pdf + k * k * (1.0 - p_in)


C_SCALE = _clipped_second_moment(K_SCALE)


def to_micros(ts: Any) -> int | None:
    """Epoch seconds (int, float or aware datetime) as integer microseconds; None stays None."""
    if ts is None:
        return None
    if isinstance(ts, datetime):
        ts = ts.timestamp()
    t = float(ts)
    if not math.isfinite(t):
        return None
    return int(round(t * 1_000_000))


def phase_bin(ts_us: int, period_us: int, bins: int) -> int:
    """Bin of the phase of `ts_us` within the period; integer arithmetic so the bank gets the same bin."""
    return (ts_us % period_us) * bins // period_us


def init_from_buffer(buf: np.ndarray, min_scale: float, rel_scale: float) -> tuple[float, float]:
    """Median and MAD-based sigma of the warm-up buffer; the standard deviation when over half the readings
    are equal (MAD 0, e.g. a quantised signal), and the scale floor when it is constant."""
    loc = float(np.median(buf))
    floor = max(min_scale, rel_scale * abs(loc))
    scale = MAD_TO_SIGMA * float(np.median(np.abs(buf - loc)))
    if not scale > floor:
        scale = float(np.std(buf))
    return loc, max(scale, floor)


class RobustZScore(Detector):
    """Robust z-score of a reading against a slowly adapting median/MAD-like baseline, squashed into [0, 1).

    - `alpha`: adaptation rate per reading; the baseline remembers about 1/alpha readings.
    - `warmup`: readings learned before scores are given (0.0 before); also the per-bin warm-up.
    - `sigmas`: deviation, in robust standard deviations, that scores 0.9.
    - `min_scale`, `rel_scale`: absolute and relative scale floors for constant or quantised signals.
    - `floor_history`: the scale stays above this share of its own slow memory (0 turns it off).
    - `stuck_ratio`: runs of identical readings this many times longer than usual score 0.9 (None: off).
    - `period`, `bins`: seasonal profile (`period` in seconds, None for none); needs `ts` on each call.
    """

    def __init__(self, alpha: float = 0.01, warmup: int = 30, sigmas: float = 5.0, min_scale: float = 1e-6,
                 rel_scale: float = 1e-4, period: float | None = None, bins: int = 24, floor_history: float = 0.1,
                 stuck_ratio: float | None = None):
        if not 0.0 < alpha < 1.0:
            raise InvalidInput("alpha must be in (0, 1)")
        if warmup < 3:
            raise InvalidInput("warmup must be at least 3")
        if not sigmas > 0:
            raise InvalidInput("sigmas must be positive")
        if not min_scale > 0 or rel_scale < 0:
            raise InvalidInput("min_scale must be positive and rel_scale non-negative")
        if period is not None and not period > 0:
            raise InvalidInput("period must be positive seconds or None")
        if bins < 1:
            raise InvalidInput("bins must be at least 1")
        if not 0.0 <= floor_history < 1.0:
            raise InvalidInput("floor_history must be in [0, 1)")
        if stuck_ratio is not None and not stuck_ratio >= 2:
            raise InvalidInput("stuck_ratio must be None or at least 2")
        self.alpha = alpha
        self.warmup = warmup
        self.sigmas = sigmas
        self.min_scale = min_scale
        self.rel_scale = rel_scale
        self.period = period
        self.bins = bins
        self.floor_history = floor_history
        self.stuck_ratio = stuck_ratio
        self._slow = 0.0
        self._res = math.inf      # smallest non-zero step between consecutive learned readings
        self._prev = math.nan     # last learned reading
        self._same = 0            # readings in the current run of identical learned readings
        self._rep = 0.0           # share of learned readings equal to the one before (slow running mean)
        self._seen = 0
        self._buf: list[float] | None = []
        self._loc = 0.0
        self._scale = 1.0
        self._period_us = None if period is None else int(round(period * 1_000_000))
        # per bin: [n, loc, scale]; allocated when the first bin is touched
        self._bin_n: list[int] | None = None
        self._bin_loc: list[float] | None = None
        self._bin_scale: list[float] | None = None

    # -- state ------------------------------------------------------------------------------------------
    @property
    def is_warm(self) -> bool:
        return self._buf is None

    @property
    def location(self) -> float | None:
        """Global location estimate (None while warming up)."""
        return None if self._buf is not None else self._loc

    @property
    def scale(self) -> float | None:
        """Global scale estimate in standard deviations (None while warming up)."""
        return None if self._buf is not None else self._scale

    def _bin(self, ts: Any) -> int | None:
        if self._period_us is None:
            return None
        us = to_micros(ts)
        return None if us is None else phase_bin(us, self._period_us, self.bins)

    @staticmethod
    def _value(x: Any) -> float | None:
        if x is None:
            return None
        try:
            v = float(x)
        except (TypeError, ValueError):
            raise InvalidInput(f"RobustZScore needs a number, got {type(x).__name__}") from None
        return v if math.isfinite(v) else None

    # -- contract -----------------------------------------------------------------------------------------
    def score_one(self, x: Any, *, ts: Any = None) -> float:
        v = self._value(x)
        if v is None or self._buf is not None:
            return 0.0
        loc, scale = self._loc, self._scale
        b = self._bin(ts)
        if b is not None and self._bin_n is not None and self._bin_n[b] >= self.warmup:
            loc, scale = self._bin_loc[b], self._bin_scale[b]
        z = abs(v - loc) / scale
        if self.stuck_ratio is not None and v == self._prev:
            # a run of equal readings, against the typical run 1/(1 - share of repeats)
            z = max(z, self.sigmas * (self._same + 1) * (1.0 - self._rep) / self.stuck_ratio)
        return -math.expm1(-z * LN10 / self.sigmas)

    def learn_one(self, x: Any, *, ts: Any = None) -> None:
        v = self._value(x)
        if v is None:
            return
        self._track_runs(v)
        if self._buf is not None:
            self._buf.append(v)
            if len(self._buf) >= self.warmup:
                self._loc, self._scale = init_from_buffer(np.asarray(self._buf), self._floor(np.median(self._buf)),
                                                          0.0)
                self._slow = self._scale
                self._buf = None
            return
        b = self._bin(ts)
        if b is not None:
            if self._bin_n is None:
                self._bin_n = [0] * self.bins
                self._bin_loc = [0.0] * self.bins
                self._bin_scale = [0.0] * self.bins
            n = self._bin_n[b]
            if n == 0:
                self._bin_loc[b], self._bin_scale[b] = v, self._scale
            else:
                self._bin_loc[b], self._bin_scale[b] = self._step(
                    v, self._bin_loc[b], self._bin_scale[b], max(self.alpha, 1.0 / (n + 1)),
                    max(self.alpha, 1.0 / n))
            self._bin_n[b] = n + 1
        self._loc, self._scale = self._step(v, self._loc, self._scale, self.alpha, self.alpha)
        g = self.alpha if self._scale > self._slow else self.alpha * SLOW_DOWN
        self._slow += g * (self._scale - self._slow)

    def _track_runs(self, v: float) -> None:
        d = abs(v - self._prev)
        self._prev = v
        same = d == 0.0
        self._seen += 1
        self._rep += max(self.alpha * RUN_GAIN, 1.0 / self._seen) * (float(same) - self._rep)
        if same:
            self._same += 1
            return
        if d < self._res:  # False for the first reading (NaN)
            self._res = d
        self._same = 1

    def _floor(self, loc: float) -> float:
        res = 0.5 * self._res if self._res < math.inf else 0.0
        return max(self.min_scale, self.rel_scale * abs(loc), self.floor_history * self._slow, res)

    def _step(self, v: float, loc: float, scale: float, g_loc: float, g_scale: float) -> tuple[float, float]:
        r = v - loc
        lim = K_LOC * scale
        loc = loc + g_loc * min(max(r, -lim), lim)
        cap = K_SCALE * scale
        var = scale * scale + g_scale * (min(r * r, cap * cap) / C_SCALE - scale * scale)
        return loc, max(math.sqrt(var), self._floor(loc))
