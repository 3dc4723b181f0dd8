"""The default anomaly wiring: what the platform runs for a point or an asset when the model names no detector,
and what `plantguard evaluate` and the benchmarks score. One configuration for every signal, no per-point tuning.

    det = default_point_detector()          # Thresholded(AnomalyLikelihood(RobustZScore(...)), ...)
    d = det.update(x)                       # Decision(score, is_anomaly, warm); score marks onsets
    det = default_asset_detector()          # the same two stages over StreamingMahalanobis, for an asset
    bank.add(**DEFAULT_POINT)               # the vectorised equivalent the platform runs for many points

Stages (see each module for the formulas):

1. RobustZScore(stuck_ratio=30): a robust z-score against a baseline that learns every reading with bounded
   influence, so a persistent level shift becomes the new normal in about ln(shift)/(4*alpha) readings (about
   120 for a 100-sigma shift) and a spike moves it by at most a few percent; its scale never falls below a tenth
   of what the signal's noise has been (flat stretches do not make tiny wiggles score 1.0) nor below half the
   signal's resolution; a run of identical readings 30 times longer than the signal's usual runs scores too (a
   stuck transmitter).
2. AnomalyLikelihood: how far the recent raw scores depart from their own history (short 10, long 600 readings);
   a single reading must also stand `margin` (2) times beyond the signal's own extremes over about a day of 1 Hz
   readings, so heavy-tailed signals calibrate themselves.
3. Thresholded(threshold 0.9, clear 0.5, onset_only, no protection): an episode opens at 0.9 (a departure of 4
   standard deviations of the score history) and stays open until the score falls under 0.5; the score stream
   is non-zero only where an episode may start, so an episode is one event for an operator, for the alarm
   engine and for a windowed scorer. Protection is off because the first stage already bounds what an anomaly
   can teach it and must follow a persistent shift.

Why these choices, and what they give on SKAB, on the synthetic plant streams (`evaluation/streams.py`) and on
normal data: docs/analytics/anomaly-evaluation.md. Known blind spots: slow drifts (a baseline that follows level
shifts follows a drift too; use SPC's EWMA or CUSUM on points where drift matters) and anomalies smaller than a
strong daily cycle (set `period: 86400` on such points for a per-hour profile).
"""

from __future__ import annotations

from typing import Any

from plantguard.analytics.anomaly.likelihood import AnomalyLikelihood
from plantguard.analytics.anomaly.robust import RobustZScore
from plantguard.analytics.anomaly.threshold import Thresholded
from plantguard.errors import InvalidInput

#: the detector name the plant model uses for this wiring
NAME = "default"

#: RobustZBank.add(**DEFAULT_POINT) runs exactly default_point_detector() (checked by a property test)
DEFAULT_POINT: dict[str, Any] = {
    "alpha": 0.01, "sigmas": 5.0, "floor_history": 0.1, "stuck_ratio": 30.0,
    "likelihood": True, "short": 10, "long": 600, "likelihood_warmup": 100, "departure": 4.0, "spike": 2.0,
    "min_std": 0.3, "margin": 2.0, "peak_memory": 86_400,
    "threshold": 0.9, "clear": 0.5, "onset_only": True, "protect": False, "persistence": 1,
}
DEFAULT_WARMUP = 30  # readings before the robust baseline scores (RobustZBank's warmup)
DEFAULT_THRESHOLD = DEFAULT_POINT["threshold"]
DEFAULT_ASSET_THRESHOLD = 0.95

_LIKELIHOOD = ("short", "long", "departure", "spike", "min_std", "margin", "peak_memory")
_THRESHOLD = ("threshold", "clear", "onset_only", "protect", "persistence")


def default_point_detector(**overrides: Any) -> Thresholded:
    """The platform's default wiring for one point (a float per reading), as a reading-by-reading detector.
    `overrides` replace entries of DEFAULT_POINT (the plant model's `params` for a point with detector
    `default`)."""
    p = {**DEFAULT_POINT, **overrides}
    if not p.pop("likelihood", True):
        raise InvalidInput("the default wiring always has its likelihood stage (use detector robust_z without it)")
    base = RobustZScore(warmup=DEFAULT_WARMUP, **{
        k: p.pop(k) for k in list(p) if k not in _LIKELIHOOD + _THRESHOLD + ("likelihood_warmup",)})
    lk = AnomalyLikelihood(base, warmup=p.pop("likelihood_warmup"), **{k: p.pop(k) for k in _LIKELIHOOD})
    return Thresholded(lk, **p)


def default_asset_detector(threshold: float = DEFAULT_ASSET_THRESHOLD, **params: Any) -> Thresholded:
    """The default for an asset's points together (a mapping name -> value per reading): StreamingMahalanobis
    through the same likelihood and episode stages, at the asset default threshold 0.95 (a departure of 5.2
    standard deviations: an alarm over several signals at once should be rarer). `params` go to
    StreamingMahalanobis (the plant model's `params` for an asset with detector `default`)."""
    from plantguard.analytics.anomaly.multivariate import StreamingMahalanobis

    lk = {k: DEFAULT_POINT[k] for k in _LIKELIHOOD}
    th = {**{k: DEFAULT_POINT[k] for k in _THRESHOLD}, "threshold": threshold,
          "clear": min(DEFAULT_POINT["clear"], threshold)}
    return Thresholded(AnomalyLikelihood(StreamingMahalanobis(**params), warmup=DEFAULT_POINT["likelihood_warmup"],
                                         **lk), **th)


def bank_params(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """RobustZBank.add() arguments for the default wiring with the model's `params` applied."""
    p = {**DEFAULT_POINT, **(overrides or {})}
    if not p.get("likelihood", True):
        raise InvalidInput("the default wiring always has its likelihood stage (use detector robust_z without it)")
    return p


default_point_detector.kind = "univariate"  # type: ignore[attr-defined]  # read by the registry
