"""Remaining useful life with uncertainty intervals.

    DegradationTrend   one condition signal against a failure threshold, streaming (bearing vibration, ...)
    RulRegressor       learned from run-to-failure histories of multivariate data (C-MAPSS-like)

Both return `RulEstimate` (median, lower, upper, level, state; `alert(lead_time)`).
"""

from plantguard.analytics.rul.base import STATES, RulEstimate
from plantguard.analytics.rul.learned import RulRegressor, rul_targets
from plantguard.analytics.rul.trend import DegradationTrend

__all__ = ["STATES", "DegradationTrend", "RulEstimate", "RulRegressor", "rul_targets"]
