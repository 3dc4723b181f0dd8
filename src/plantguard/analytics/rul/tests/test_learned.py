"""RulRegressor on a small synthetic run-to-failure fleet (never the full C-MAPSS set: tests stay fast)."""

import math
import pickle

import numpy as np
import pytest

from plantguard.analytics.rul import RulRegressor, rul_targets
from plantguard.analytics.rul.synthetic import run_to_failure, truncate
from plantguard.errors import InvalidInput

FAST = dict(window=10, clip=40.0, folds=3, max_iter=60, learning_rate=0.1, min_samples_leaf=20, threads=1, baseline=5)


@pytest.fixture(scope="module")
def fitted():
    return RulRegressor(**FAST).fit(run_to_failure(18, seed=1))


def test_targets_are_clipped_remaining_cycles():
    assert rul_targets(5, clip=3).tolist() == [3, 3, 2, 1, 0]


def test_channel_selection_drops_constant_and_unrelated_channels(fitted):
    assert fitted.channels_.tolist() == [2, 3, 4, 5]


def test_learns_the_remaining_life(fitted):
    test, truth = truncate(run_to_failure(12, seed=2), seed=3)
    est = fitted.predict_many(test)
    pred = np.array([e.median for e in est])
    err = np.sqrt(np.mean((pred - np.minimum(truth, FAST["clip"])) ** 2))
    const = np.sqrt(np.mean((np.mean(fitted.oof_target_) - np.minimum(truth, FAST["clip"])) ** 2))
    assert err < 0.5 * const, (err, const)
    assert all(e.lower <= e.median <= e.upper for e in est)
    assert fitted.cv_rmse_ < const


def test_states_follow_the_life(fitted):
    h = run_to_failure(1, seed=5)[0]
    early, late = fitted.predict(h[:15]), fitted.predict(h)
    assert early.state == "healthy" and math.isinf(early.upper) and not early.alert(5)
    assert late.median < 5 and late.alert(5)
    assert fitted.predict(h[:0]).state == "insufficient_data"


def test_streaming_equals_batch_and_survives_a_checkpoint(fitted):
    h = run_to_failure(1, seed=6)[0]
    m = pickle.loads(pickle.dumps(fitted))
    path = fitted.predict_path(h)
    for i, row in enumerate(h):
        est = m.update(row, cycle=i + 1)
        assert est.median == pytest.approx(path[i], abs=1e-6)
        if i == len(h) // 2:
            m = pickle.loads(pickle.dumps(m))
    assert est == fitted.predict(h)
    assert m.update(h[-1] * 0 + 1e6, cycle=len(h)) == est  # a repeated cycle is ignored
    m.reset()
    assert m.update(h[0]).median == pytest.approx(path[0], abs=1e-6)


def test_missing_values_are_carried_forward(fitted):
    h = run_to_failure(1, seed=7)[0].copy()
    clean = fitted.predict(h)
    h[-3:, 2] = np.nan
    h[-2, 3] = np.inf
    est = fitted.predict(h)
    assert est.known and math.isfinite(est.median)
    assert abs(est.median - clean.median) < 10
    assert fitted.predict(np.full((5, h.shape[1]), np.nan)).known  # all missing: the training means


def test_bad_shapes_and_too_little_data():
    with pytest.raises(InvalidInput):
        RulRegressor(**FAST).fit(run_to_failure(2, seed=1))
    m = RulRegressor(**{**FAST, "min_cycles": 5, "max_iter": 10}).fit(run_to_failure(3, seed=1))
    with pytest.raises(InvalidInput):
        m.predict(np.zeros((10, 3)))
    assert m.predict(run_to_failure(1)[0][:4]).state == "insufficient_data"
    assert m.update(np.zeros(6)).state == "insufficient_data"
    with pytest.raises(InvalidInput):
        RulRegressor(**FAST).predict(np.zeros((3, 6)))
    flat = [np.ones((50, 3)) for _ in range(5)]
    with pytest.raises(InvalidInput, match="no informative channel"):
        RulRegressor(**FAST).fit(flat)


def test_deterministic():
    fleet = run_to_failure(6, seed=4)
    params = {**FAST, "folds": 2, "max_iter": 20}
    a = RulRegressor(**params).fit(fleet).predict(fleet[0][:30])
    b = RulRegressor(**params).fit(fleet).predict(fleet[0][:30])
    assert a == b
