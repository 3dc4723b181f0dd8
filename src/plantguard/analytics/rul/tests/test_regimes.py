"""RUL for fleets that run at several operating points: regimes from the settings, per-regime normalisation."""

import numpy as np
import pytest

from plantguard.analytics.rul import RulRegressor
from plantguard.analytics.rul.regimes import RegimeNormaliser
from plantguard.analytics.rul.synthetic import run_to_failure, truncate
from plantguard.errors import InvalidInput

FAST = dict(window=10, max_iter=150, folds=3, min_samples_leaf=20)


@pytest.fixture(scope="module")
def fleet():
    train = run_to_failure(60, seed=1, conditions=6)
    test, truth = truncate(run_to_failure(40, seed=2, conditions=6), seed=3)
    return train, test, truth


def rmse(model, test, truth):
    pred = np.array([e.median for e in model.predict_many(test)])
    return float(np.sqrt(np.mean((pred - np.minimum(truth, model.clip)) ** 2)))


def test_a_multi_condition_fleet_trains_and_the_per_regime_model_wins(fleet):
    train, test, truth = fleet
    # the defect: the operating points swamp the wear signal, no channel correlates with the remaining life
    with pytest.raises(InvalidInput, match="no informative channel"):
        RulRegressor(**FAST).fit(train)
    per_regime = RulRegressor(**FAST, settings=3).fit(train)
    assert per_regime.regimes == 6
    forced_global = RulRegressor(**FAST, min_corr=0.0).fit(train)
    r_reg, r_glob = rmse(per_regime, test, truth), rmse(forced_global, test, truth)
    assert r_reg < 0.7 * r_glob, (r_reg, r_glob)


def test_streaming_uses_each_rows_own_regime(fleet):
    train, test, _ = fleet
    m = RulRegressor(**FAST, settings=3).fit(train)
    for h in test[:3]:
        m.reset()
        for row in h:
            est = m.update(row)
        assert est.median == pytest.approx(m.predict(h).median, rel=1e-9, abs=1e-9)


def test_a_single_operating_point_stays_one_regime():
    rows = [np.hstack([np.random.default_rng(i).normal(0, 1e-3, (len(x), 3)), x])
            for i, x in enumerate(run_to_failure(20, seed=1))]
    norm = RegimeNormaliser(3).fit(np.vstack(rows))
    assert norm.regimes_ == 1


def test_missing_settings_keep_the_previous_regime():
    train = run_to_failure(10, seed=1, conditions=3)
    norm = RegimeNormaliser(3).fit(np.vstack(train))
    h = train[0][:5].copy()
    reg = norm.regime_of(h)
    h[2, :3] = np.nan
    assert norm.regime_of(h)[2] == reg[1]
    with pytest.raises(InvalidInput):
        RegimeNormaliser(0)
    with pytest.raises(InvalidInput):
        RulRegressor(**FAST, settings=6).fit(train)  # no condition channel left
