"""A second stage in the spirit of an anomaly likelihood: from a detector's raw scores to how unlikely the recent
scores are given their own history.

    det = AnomalyLikelihood(RobustZScore(), short=10, long=600)
    s = det.score_one(x); det.learn_one(x)

Evidence. Every detector here squashes its statistic into a score s = 1 - exp(-statistic/scale); the stage works
on the evidence e = -ln(1 - s) (capped at 27.6, s = 1 - 1e-12), which gives that statistic back in the detector's
own units, so that a 10-sigma reading weighs more than a 6-sigma one instead of both being "about 1".

History and recent past. The evidence is summarised by an exponentially weighted mean and variance with gain
1/long (the history: about `long` readings) and an exponentially weighted mean with gain 1/short (the recent
past); both start as running means (gain 1/(n+1)). Memory is O(1) per series, so a bank of 10,000 series fits
in a few kilobytes each.

Departure. z = max((recent - mean) / sd, departure * (e - mean) / max(spike * departure * sd, margin * (peak -
mean))), where `recent` includes the reading being scored, sd = max(history's standard deviation, min_std) and
`peak` is the history's largest evidence, decaying towards the mean over about `peak_memory` readings. The first
term sees a sustained excursion at its onset (the recent mean moves at once, the history slowly); the second, a
single reading that is both `spike` times further out than a sustained departure must be and `margin` times
beyond the signal's own recent extremes, so that heavy-tailed noise (a 10-sigma reading every few thousand)
calibrates itself instead of alarming every few thousand readings. As the excursion goes on it fills the history too, so the departure
shrinks and the score decays: the onset is flagged early and once. A signal whose raw scores are noisy all the
time gets a wide history and scores low. Under a normal approximation, z is a departure of the recent scores'
mean in standard deviations, so the score is a monotone function of the probability that the recent score
distribution departs from its history; it is squashed like every detector's: score = 1 - 10**(-z/departure),
so a departure of `departure` (default 4) standard deviations scores 0.9.

The wrapped detector learns every reading: its own adaptation (for RobustZScore, bounded-influence updates that
make a persistent shift the new normal in bounded time) is what ends an episode. Missing values score 0.0 and
change nothing. 0.0 until the wrapped detector is warm and `warmup` of its scores are in the history.
"""

from __future__ import annotations

import math
from typing import Any

from plantguard.analytics.anomaly.base import Detector, is_missing
from plantguard.errors import InvalidInput

EVIDENCE_CAP = 27.631021115928547  # -ln(1e-12)
LN10 = math.log(10.0)
CLIP = 3.0  # evidence enters the history at most 3 standard deviations above its mean


def _missing(x: Any) -> bool:
    return is_missing(x) or (isinstance(x, float) and not math.isfinite(x))


def evidence(score: float) -> float:
    """-ln(1 - score), capped: the statistic a squashed score came from, in its detector's own units."""
    if not score > 0.0:
        return 0.0
    return min(-math.log1p(-score), EVIDENCE_CAP) if score < 1.0 else EVIDENCE_CAP


class AnomalyLikelihood(Detector):
    """How far the recent raw scores of `detector` depart from their history (see the module)."""

    kind = "univariate"

    def __init__(self, detector: Detector | None = None, short: int = 10, long: int = 600, warmup: int = 100,
                 departure: float = 4.0, spike: float = 2.0, min_std: float = 0.3, margin: float = 2.0,
                 peak_memory: int = 86_400):
        if detector is None:
            from plantguard.analytics.anomaly.robust import RobustZScore

            detector = RobustZScore()
        if not isinstance(detector, Detector):
            raise InvalidInput(f"AnomalyLikelihood wraps a Detector, got {type(detector).__name__}")
        if not 1 <= short < long:
            raise InvalidInput("need 1 <= short < long")
        if long > 1_000_000:
            raise InvalidInput("long must be at most 1,000,000 readings")
        if not 1 <= warmup <= 100_000:
            raise InvalidInput("warmup must be between 1 and 100,000")
        if not 0 < departure <= 100 or not 1 <= spike <= 100:
            raise InvalidInput("departure must be in (0, 100] and spike in [1, 100]")
        if not 0 < min_std <= 100:
            raise InvalidInput("min_std must be in (0, 100]")
        if not 0 <= margin <= 100 or not 1 <= peak_memory <= 10_000_000:
            raise InvalidInput("margin must be in [0, 100] and peak_memory between 1 and 10,000,000 readings")
        self.detector = detector
        self.kind = detector.kind  # the registry reads the class default: univariate, as the default RobustZScore
        self.short = short
        self.long = long
        self.warmup = warmup
        self.departure = departure
        self.spike = spike
        self.min_std = min_std
        self.margin = margin
        self.peak_memory = peak_memory
        self._peak = 0.0
        self._n = 0
        self._mean = 0.0
        self._var = 0.0
        self._recent = 0.0

    @property
    def is_warm(self) -> bool:
        return self.detector.is_warm and self._n >= self.warmup

    @property
    def contributions(self):
        """The wrapped detector's explanation of a reading (per feature), when it has one; else None."""
        return getattr(self.detector, "contributions", None)

    def clone(self) -> "AnomalyLikelihood":
        return type(self)(self.detector.clone(), self.short, self.long, self.warmup, self.departure, self.spike,
                          self.min_std, self.margin, self.peak_memory)

    def departure_of(self, e: float) -> float:
        """The departure z of evidence `e` from the current history (without learning it)."""
        g = max(1.0 / self.short, 1.0 / (self._n + 1))
        recent = self._recent + g * (e - self._recent)
        sd = max(math.sqrt(self._var), self.min_std)
        one = max(self.spike * self.departure * sd, self.margin * (self._peak - self._mean))
        return max((recent - self._mean) / sd, self.departure * (e - self._mean) / one)

    def score_one(self, x: Any, **kw: Any) -> float:
        if _missing(x) or not self.is_warm:
            return 0.0
        z = self.departure_of(evidence(self.detector.score_one(x, **kw)))
        return -math.expm1(-z * LN10 / self.departure) if z > 0.0 else 0.0

    def learn_one(self, x: Any, **kw: Any) -> None:
        if _missing(x):
            return
        warm = self.detector.is_warm
        e = evidence(self.detector.score_one(x, **kw)) if warm else 0.0
        self.detector.learn_one(x, **kw)
        if not warm:
            return
        n = self._n
        # a reading that would alarm on its own raises the peak only to the level that keeps the bar where it is,
        # so one anomaly does not hide the next; heavy-tailed normal readings raise it fully
        sd = max(math.sqrt(self._var), self.min_std)
        one = max(self.spike * self.departure * sd, self.margin * (self._peak - self._mean))
        top = min(e, self._mean + one)
        g = max(1.0 / self.long, 1.0 / (n + 1))
        # bounded influence: one excursion's readings must not inflate the history's spread at once, or the
        # departure they cause would be hidden by the spread they add
        d = e - self._mean if n < self.warmup else min(e - self._mean, CLIP * sd)
        self._mean += g * d
        self._var = (1.0 - g) * (self._var + g * d * d)
        self._recent += max(1.0 / self.short, 1.0 / (n + 1)) * (e - self._recent)
        self._peak = max(top, self._mean + (self._peak - self._mean) * (1.0 - 1.0 / self.peak_memory))
        self._n = n + 1
