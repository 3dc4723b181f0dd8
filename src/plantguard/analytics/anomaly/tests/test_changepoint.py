import math
import pickle

import numpy as np
import pytest

from plantguard.analytics.anomaly.base import Detector
from plantguard.analytics.anomaly.changepoint import CusumChangePoint
from plantguard.errors import InvalidInput


def run(det, xs):
    scores = []
    for x in xs:
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores


def test_univariate_level_shift_detected_within_bounded_delay():
    rng = np.random.default_rng(0)
    xs = list(rng.normal(0, 1, 500)) + list(rng.normal(2, 1, 300))
    det = CusumChangePoint(warmup=100, drift=0.5, threshold=20.0, relearn=30)
    scores = run(det, xs)
    cps = det.change_points
    before = [c for c in cps if c < 500]
    after = [c for c in cps if c >= 500]
    assert not before
    assert after and after[0] - 500 <= 30
    assert max(scores[500:after[0] + 1]) >= 0.9 - 1e-9
    assert max(scores[:500]) < 0.9


def test_multivariate_shift_of_one_sensor_and_restart_on_new_regime():
    rng = np.random.default_rng(1)
    rows = [{"a": rng.normal(), "b": rng.normal(), "c": rng.normal()} for _ in range(400)]
    rows += [{"a": rng.normal(), "b": 3 + rng.normal(), "c": rng.normal()} for _ in range(400)]
    det = CusumChangePoint(warmup=150, drift=1.0, threshold=20.0, relearn=30)
    flags = []
    for r in rows:
        det.learn_one(r)
        flags.append(det.changed)
    cps = det.change_points
    assert [i for i, f in enumerate(flags) if f] == cps
    assert not [c for c in cps if c < 400]
    assert len([c for c in cps if 400 <= c <= 420]) == 1
    # after relearning the new level it stays quiet
    assert not [c for c in cps if c > 460]


def test_missing_values_and_warmup():
    det = CusumChangePoint(warmup=5, relearn=1)
    assert not det.is_warm
    for v in (None, math.nan, 1.0, 2.0, None, 1.5, 1.2, 1.8):
        assert det.score_one(v) == 0.0 or det.is_warm
        det.learn_one(v)
    assert det.is_warm
    assert det.score_one(None) == 0.0
    assert det.score_one(math.nan) == 0.0


def test_partial_mapping_scored_not_learned():
    rng = np.random.default_rng(2)
    det = CusumChangePoint(warmup=50, relearn=10)
    for _ in range(100):
        det.learn_one({"a": rng.normal(), "b": rng.normal()})
    stat, n = det.statistic, det._n
    assert 0.0 <= det.score_one({"a": 50.0}) <= 1.0
    det.learn_one({"a": 50.0, "b": None})
    det.learn_one({"a": 50.0})
    assert det.statistic == stat and det._n == n


def test_pickle_and_clone():
    rng = np.random.default_rng(3)
    det = CusumChangePoint(warmup=20, relearn=5)
    for v in rng.normal(size=60):
        det.learn_one(float(v))
    s = det.score_one(4.0)
    assert pickle.loads(pickle.dumps(det)).score_one(4.0) == pytest.approx(s)
    assert Detector.restore(det.checkpoint()).score_one(4.0) == pytest.approx(s)
    assert det.clone().score_one(4.0) == 0.0


def test_restart_relearns_the_regime():
    det = CusumChangePoint(warmup=20, relearn=5, threshold=5.0)
    rng = np.random.default_rng(4)
    for v in rng.normal(size=40):
        det.learn_one(float(v))
    det.restart()
    assert not det.is_warm
    for v in 10 + rng.normal(size=5):
        det.learn_one(float(v))
    assert det.is_warm and det.score_one(10.0) < 0.5


def test_bad_arguments():
    with pytest.raises(InvalidInput):
        CusumChangePoint(threshold=0)
    with pytest.raises(InvalidInput):
        CusumChangePoint(relearn=0)
