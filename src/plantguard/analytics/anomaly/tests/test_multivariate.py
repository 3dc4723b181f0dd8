import math
import pickle

import numpy as np
import pytest

from plantguard.analytics.anomaly.base import Detector
from plantguard.analytics.anomaly.multivariate import StreamingMahalanobis
from plantguard.errors import InvalidInput


def correlated_stream(n, rng, broken_from=None):
    """Pump-like readings: current, pressure and vibration follow the flow; after `broken_from` the pressure
    stops following it while staying inside its usual range."""
    for i in range(n):
        flow = rng.normal(0.0, 1.0)
        pressure = 0.9 * flow + rng.normal(0, 0.1)
        if broken_from is not None and i >= broken_from:
            pressure = -0.9 * flow + rng.normal(0, 0.1)
        yield {"flow": 30 + 5 * flow, "current": 2 + 0.5 * (0.95 * flow + rng.normal(0, 0.1)),
               "pressure": 1 + 0.2 * pressure, "vibration": 0.03 + 0.002 * rng.normal()}


def test_broken_correlation_is_flagged_while_each_sensor_stays_in_range():
    rng = np.random.default_rng(1)
    det = StreamingMahalanobis(warmup=100)
    for x in correlated_stream(500, rng):
        det.learn_one(x)
    normal = [det.score_one(x) for x in correlated_stream(300, rng)]
    broken = [det.score_one(x) for x in correlated_stream(300, rng, broken_from=0)]
    assert np.mean(np.array(normal) > 0.9) < 0.02
    assert np.mean(np.array(broken) > 0.9) > 0.5
    assert np.median(broken) > np.quantile(normal, 0.99)


def test_warmup_scores_zero_and_contract():
    det = StreamingMahalanobis(warmup=10)
    assert isinstance(det, Detector) and det.kind == "multivariate"
    for i in range(9):
        assert det.score_one({"a": i, "b": 2 * i}) == 0.0
        det.learn_one({"a": float(i), "b": 2.0 * i + (i % 3)})
    assert not det.is_warm
    det.learn_one({"a": 9.0, "b": 18.0})
    assert det.is_warm
    s = det.score_one({"a": 100.0, "b": 0.0})
    assert 0.0 <= s <= 1.0 and s > 0.9
    assert repr(det).startswith("StreamingMahalanobis(warmup=10")


def test_missing_features_score_on_subset_and_are_not_learned():
    rng = np.random.default_rng(2)
    det = StreamingMahalanobis(warmup=20)
    for x in correlated_stream(200, rng):
        det.learn_one(x)
    n = det._n
    for bad in ({"flow": None, "current": 2.0, "pressure": 1.0, "vibration": 0.03},
                {"flow": math.nan, "current": 2.0, "pressure": 1.0, "vibration": 0.03},
                {"current": 2.0, "pressure": 1.0}):
        s = det.score_one(bad)
        assert 0.0 <= s < 1.0
        det.learn_one(bad)
    assert det._n == n
    assert det.score_one({}) == 0.0
    assert det.score_one({"flow": None}) == 0.0
    # a far-off present feature is still seen on the subset
    assert det.score_one({"current": 50.0}) > 0.99


def test_constant_and_collinear_channels_do_not_break_it():
    det = StreamingMahalanobis(warmup=20)
    rng = np.random.default_rng(3)
    for _ in range(100):
        a = rng.normal()
        det.learn_one({"a": a, "twice_a": 2 * a, "const": 5.0})
    s = det.score_one({"a": 0.1, "twice_a": 0.2, "const": 5.0})
    assert 0.0 <= s < 0.5
    assert det.score_one({"a": 0.1, "twice_a": 0.2, "const": 6.0}) > 0.99


def test_forgetting_tracks_a_new_level():
    det = StreamingMahalanobis(warmup=20, forgetting=0.05)
    rng = np.random.default_rng(4)
    for _ in range(200):
        det.learn_one({"a": rng.normal(), "b": rng.normal()})
    for _ in range(300):
        det.learn_one({"a": 10 + rng.normal(), "b": rng.normal()})
    assert det.score_one({"a": 10.0, "b": 0.0}) < 0.5


def test_pickle_clone_and_checkpoint_keep_scores():
    rng = np.random.default_rng(5)
    det = StreamingMahalanobis(warmup=20)
    xs = list(correlated_stream(100, rng))
    for x in xs:
        det.learn_one(x)
    probe = {"flow": 40.0, "current": 1.0, "pressure": 1.0, "vibration": 0.03}
    s = det.score_one(probe)
    assert pickle.loads(pickle.dumps(det)).score_one(probe) == pytest.approx(s)
    assert Detector.restore(det.checkpoint()).score_one(probe) == pytest.approx(s)
    fresh = det.clone()
    assert not fresh.is_warm and fresh.score_one(probe) == 0.0


def test_bad_arguments_and_inputs():
    with pytest.raises(InvalidInput):
        StreamingMahalanobis(warmup=1)
    with pytest.raises(InvalidInput):
        StreamingMahalanobis(forgetting=1.5)
    with pytest.raises(InvalidInput):
        StreamingMahalanobis().score_one(3.0)
