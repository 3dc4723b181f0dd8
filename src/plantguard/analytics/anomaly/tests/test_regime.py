import math
import pickle

import numpy as np
import pytest

from plantguard.analytics.anomaly.regime import RegimeDetector, fit_reference, hysteresis
from plantguard.errors import InvalidInput


def stream(n, shift=None, seed=0):
    """Three sensors; `shift` = (start, end) rows where 'p' drops by 10 noise standard deviations."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        bad = shift is not None and shift[0] <= i < shift[1]
        out.append({"p": 1.0 - (0.2 if bad else 0.0) + 0.02 * rng.normal(), "q": 30 + 0.5 * rng.normal(),
                    "t": 20 + 0.01 * i + 0.05 * rng.normal()})
    return out


def test_hysteresis_enters_high_and_leaves_after_hold_below_low():
    s = [0, 5, 3, 1, 3, 1, 1, 1, 0, math.nan, 0]
    assert hysteresis(s, high=4, low=2, hold=3).tolist() == [
        False, True, True, True, True, True, True, False, False, False, False]


def test_detects_a_collective_fault_and_recovers():
    det = RegimeDetector(warmup=200, smooth=10, difference=("t",), lag=10, high=10.0, low=4.0, hold=20)
    alarms, scores = [], []
    for x in stream(700, shift=(400, 550)):
        scores.append(det.score_one(x))
        det.learn_one(x)
        alarms.append(det.alarm)
    a = np.array(alarms)
    assert not a[:400].any()
    assert a[410:550].all()
    assert not a[620:].any()  # smoothing + hold, then back to normal
    assert all(0.0 <= s <= 1.0 for s in scores) and scores[0] == 0.0
    assert (np.array(scores) >= 0.9).tolist() == a.tolist()  # score_one predicts the alarm of learn_one


def test_missing_values_tolerated_and_pickle_roundtrip():
    det = RegimeDetector(warmup=50, smooth=5, high=4.0, low=2.0, hold=5)
    xs = stream(120)
    for i, x in enumerate(xs):
        if i % 7 == 0:
            x = dict(x, q=None)
        if i % 11 == 0:
            x = {"p": x["p"]}
        det.score_one(x)
        det.learn_one(x)
    assert det.is_warm and math.isfinite(det.statistic)
    det.score_one({"p": float("nan"), "q": None})
    twin = pickle.loads(pickle.dumps(det))
    assert twin.score_one(xs[-1]) == det.score_one(xs[-1])
    assert repr(twin.clone()).startswith("RegimeDetector(")


def test_reference_covariance_and_restart():
    refs = [stream(600, seed=s) for s in range(3)]
    cov = fit_reference(refs, warmup=200, smooth=10)
    assert len(cov) == 3 and all(len(r) == 3 for r in cov)
    det = RegimeDetector(warmup=200, smooth=10, covariance=cov)
    for x in stream(300, seed=9):
        det.learn_one(x)
    assert det.is_warm
    det.restart()
    assert not det.is_warm and det.score_one(stream(1)[0]) == 0.0
    with pytest.raises(InvalidInput):
        RegimeDetector(high=1.0, low=2.0)
    with pytest.raises(InvalidInput):
        RegimeDetector(covariance=((1.0, 0.0),)).learn_one({"a": 1.0})
    with pytest.raises(InvalidInput):
        RegimeDetector().score_one(1.0)
