"""A second stage in the spirit of an anomaly likelihood: from a detector's raw scores to the probability that the
recent score distribution departs from its own history.

    det = AnomalyLikelihood(RobustZScore(), short=10, long=600)
    s = det.score_one(x); det.learn_one(x)

The raw scores of the wrapped detector are kept in a long window (their history) and a short one (the recent
past). The likelihood is the normal CDF of how far the short window's mean lies above the long window's mean, in
units of the long window's standard deviation (with a floor). A sustained excursion raises the short mean at
once, so the likelihood spikes at its onset; as the excursion goes on, its high raw scores fill the long window
too, the departure shrinks and the likelihood decays: an operator gets the onset flagged early and once, not
every reading of a long episode. A signal whose raw scores are noisy all the time (a detector that flags too
much) gets a wide history and scores low.

The wrapped detector learns every reading here; put the likelihood inside Thresholded to keep anomalies out of
its baseline. Missing values score 0.0 and change nothing. 0.0 until the wrapped detector is warm and `warmup`
raw scores are in the history.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from plantguard.analytics.anomaly.base import Detector, is_missing
from plantguard.errors import InvalidInput


def _norm_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


class AnomalyLikelihood(Detector):
    """Probability that the recent raw scores of `detector` depart from their history (see the module)."""

    kind = "univariate"

    def __init__(self, detector: Detector | None = None, short: int = 10, long: int = 600, warmup: int = 100,
                 min_std: float = 0.02):
        if detector is None:
            from plantguard.analytics.anomaly.robust import RobustZScore

            detector = RobustZScore()
        if not isinstance(detector, Detector):
            raise InvalidInput(f"AnomalyLikelihood wraps a Detector, got {type(detector).__name__}")
        if not 1 <= short < long:
            raise InvalidInput("need 1 <= short < long")
        if long > 1_000_000:
            raise InvalidInput("long must be at most 1,000,000 readings")
        if not 1 <= warmup <= long:
            raise InvalidInput("warmup must be between 1 and long")
        if not min_std > 0:
            raise InvalidInput("min_std must be positive")
        self.detector = detector
        self.kind = detector.kind  # the registry reads the class default: univariate, as the default RobustZScore
        self.short = short
        self.long = long
        self.warmup = warmup
        self.min_std = min_std
        self._hist: deque[float] = deque()
        self._sum = 0.0
        self._sq = 0.0
        self._recent: deque[float] = deque()
        self._recent_sum = 0.0

    @property
    def is_warm(self) -> bool:
        return self.detector.is_warm and len(self._hist) >= self.warmup

    def clone(self) -> "AnomalyLikelihood":
        return type(self)(self.detector.clone(), self.short, self.long, self.warmup, self.min_std)

    def _likelihood(self, recent_mean: float) -> float:
        n = len(self._hist)
        mean = self._sum / n
        var = max(0.0, self._sq / n - mean * mean)
        std = max(math.sqrt(var), self.min_std)
        p = _norm_cdf((recent_mean - mean) / std)
        # 0.5 is "as usual": map [0.5, 1] onto [0, 1] so that a threshold like 0.9 reads as a clear departure
        return max(0.0, min(1.0, 2.0 * p - 1.0))

    def score_one(self, x: Any, **kw: Any) -> float:
        if is_missing(x) or not self.is_warm:
            return 0.0
        raw = self.detector.score_one(x, **kw)
        k = len(self._recent)
        s = self._recent_sum + raw - (self._recent[0] if k >= self.short else 0.0)
        return self._likelihood(s / min(k + 1, self.short))

    def learn_one(self, x: Any, **kw: Any) -> None:
        if is_missing(x):
            return
        warm = self.detector.is_warm
        raw = self.detector.score_one(x, **kw) if warm else 0.0
        self.detector.learn_one(x, **kw)
        if not warm:
            return
        self._recent.append(raw)
        self._recent_sum += raw
        if len(self._recent) > self.short:
            self._recent_sum -= self._recent.popleft()
        self._hist.append(raw)
        self._sum += raw
        self._sq += raw * raw
        if len(self._hist) > self.long:
            old = self._hist.popleft()
            self._sum -= old
            self._sq -= old * old
