"""Turning scores into decisions, and keeping anomalies out of what a detector learns.

    th = Thresholded(RobustZScore(), threshold=0.9, persistence=3, relearn_after=600)
    d = th.update(x, ts=ts)          # Decision(score, is_anomaly, warm); learns x unless it looked anomalous

Rules, per reading that is not missing:

- exceeds: score >= threshold (never while the detector is warming up).
- is_anomaly: the reading exceeds and so did the `persistence - 1` readings before it (a run of `persistence`
  consecutive exceedances). Consecutive rather than k-of-n because it needs one counter per series, and a
  single noisy reading inside a real excursion rarely drops below the threshold.
- learning: with `protect=True` a reading that exceeds is not learned, whether or not the run is long enough
  to alarm, so neither a spike nor a fault drags the baseline towards itself. Detectors that declare
  `learns_from_every_reading` (change-point detectors: their CUSUM accumulates on the high-scoring readings and
  restarts at a change) learn every reading all the same.
- protect_for: protection is bounded. After `protect_for` consecutive exceedances the readings are learned again,
  so a persistent level shift becomes the new normal after at most protect_for readings plus the detector's own
  adaptation (for RobustZScore about ln(shift in sigmas)/(4*alpha) readings). None protects for ever (the old
  behaviour: a baseline frozen at the first level shift alarms for ever).
- episodes: with `clear`, an anomaly, once raised, lasts until a reading scores below `clear` (hysteresis), so a
  score hovering around the threshold is one episode, not many. With `onset_only`, the score reported
  (`Decision.score` and `score_one`) is 0.0 on the readings of an episode after its first: the score stream marks
  onsets, once per episode, which is what an operator and a windowed scorer need; `is_anomaly` still says the
  episode is open.
- relearn: a protected baseline never follows a legitimate permanent change (a new setpoint, a recalibrated
  sensor); it would alarm forever. With `relearn_after=n`, the n-th consecutive exceedance is taken as a
  level shift: the detector is replaced by a fresh clone that learns from that reading on (scores 0 and
  `warm=False` during its warm-up). The trade-off: a real fault that persists for n readings stops alarming
  after n readings plus the warm-up, and the new baseline is the faulty level, so the alarm layer must latch
  the alarm raised meanwhile. None (the default) never relearns.

Missing readings (None, NaN or +-inf for a univariate detector) give Decision(0.0, open, warm), open being whether an
anomaly is in progress: nothing is learned, the run of exceedances is neither extended nor broken and an open
episode stays open.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Self

from plantguard.analytics.anomaly.base import Detector, is_missing
from plantguard.errors import InvalidInput


class Decision(NamedTuple):
    score: float
    is_anomaly: bool
    warm: bool


class Thresholded(Detector):
    """A detector plus a threshold. It is itself a detector: `score_one` delegates, `learn_one` learns only
    readings below the threshold when `protect` is set. `detector` is the live wrapped detector."""

    def __init__(self, detector: Detector, threshold: float = 0.9, protect: bool = True, persistence: int = 1,
                 relearn_after: int | None = None, protect_for: int | None = 600, clear: float | None = None,
                 onset_only: bool = False):
        if not isinstance(detector, Detector):
            raise InvalidInput(f"Thresholded wraps a Detector, got {type(detector).__name__}")
        if not 0.0 < threshold < 1.0:
            raise InvalidInput("threshold must be in (0, 1)")
        if persistence < 1:
            raise InvalidInput("persistence must be at least 1")
        if relearn_after is not None and relearn_after < persistence:
            raise InvalidInput("relearn_after must be None or at least persistence")
        if protect_for is not None and not 1 <= protect_for <= 100_000_000:
            raise InvalidInput("protect_for must be None or between 1 and 100,000,000 readings")
        if clear is not None and not 0.0 < clear <= threshold:
            raise InvalidInput("clear must be None or in (0, threshold]")
        self.detector = detector
        self.protect_for = protect_for
        self.clear = clear
        self.onset_only = onset_only
        self._open = False
        self.threshold = threshold
        self.protect = protect
        self.persistence = persistence
        self.relearn_after = relearn_after
        self._run = 0
        self._relearns = 0

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.detector.kind

    @property
    def is_warm(self) -> bool:
        return self.detector.is_warm

    @property
    def relearns(self) -> int:
        """How many times the baseline was restarted after a sustained shift."""
        return self._relearns

    def clone(self) -> Self:
        params = self._get_params()
        params["detector"] = self.detector.clone()
        return type(self)(**params)

    @property
    def in_episode(self) -> bool:
        """True while an anomaly is in progress."""
        return self._open

    def score_one(self, x: Any, **kw: Any) -> float:
        s = self.detector.score_one(x, **kw)
        if self.onset_only and self._open and self._stays_open(s):
            return 0.0
        return s

    def _stays_open(self, score: float) -> bool:
        return self.detector.is_warm and score >= (self.threshold if self.clear is None else self.clear)

    def learn_one(self, x: Any, **kw: Any) -> None:
        self.update(x, **kw)

    def update(self, x: Any, **kw: Any) -> Decision:
        """Score `x`, decide, and learn it unless it exceeds the threshold (with `protect`)."""
        warm = self.detector.is_warm
        if is_missing(x) or (isinstance(x, float) and not math.isfinite(x)):
            return Decision(0.0, self._open, warm)
        score = self.detector.score_one(x, **kw)
        exceeds = warm and score >= self.threshold
        self._run = self._run + 1 if exceeds else 0
        was_open = self._open
        if was_open:
            is_anomaly = self._stays_open(score) and (self.clear is not None or self._run >= self.persistence)
        else:
            is_anomaly = exceeds and self._run >= self.persistence
        self._open = is_anomaly
        reported = 0.0 if self.onset_only and was_open and is_anomaly else score
        protected = exceeds and self.protect and (self.protect_for is None or self._run <= self.protect_for)
        if exceeds and self.relearn_after is not None and self._run >= self.relearn_after:
            self.detector = self.detector.clone()
            self._run = 0
            self._relearns += 1
            self.detector.learn_one(x, **kw)
            self._open = False
        elif not protected or self.detector.learns_from_every_reading:
            # protection keeps anomalies out of a baseline, but must never starve an algorithm that needs them
            self.detector.learn_one(x, **kw)
        return Decision(reported, is_anomaly, warm)
