"""Anomaly detectors with one contract (see base.py): learn_one, score_one in [0, 1], 0.0 while warming up.

    robust.py       RobustZScore: robust univariate z-score, optional seasonal profile
    threshold.py    Thresholded: threshold, persistence, baseline protection, relearning after a level shift
    bank.py         RobustZBank: RobustZScore + Thresholded for many series at once, vectorised
    registry.py     detectors by name (lazy imports); checks.py the check suite every detector passes
"""

from plantguard.analytics.anomaly.bank import BankResult, RobustZBank
from plantguard.analytics.anomaly.base import Detector
from plantguard.analytics.anomaly.robust import RobustZScore
from plantguard.analytics.anomaly.threshold import Decision, Thresholded

__all__ = ["BankResult", "Decision", "Detector", "RobustZBank", "RobustZScore", "Thresholded"]
