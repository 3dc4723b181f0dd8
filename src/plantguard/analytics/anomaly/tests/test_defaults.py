"""The default anomaly wiring: the bank runs exactly default_point_detector(), it flags onsets once on the
synthetic plant streams, and it stays quiet on normal data."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plantguard.analytics.anomaly.bank import RobustZBank
from plantguard.analytics.anomaly.defaults import DEFAULT_POINT, DEFAULT_WARMUP, bank_params, \
    default_asset_detector, default_point_detector
from plantguard.analytics.anomaly.registry import make
from plantguard.analytics.evaluation.harness import episodes, run_bank
from plantguard.analytics.evaluation.streams import KINDS, labelled_stream, normal_stream
from plantguard.errors import InvalidInput


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(KINDS), st.integers(0, 1000))
def test_the_bank_runs_exactly_the_default_detector(kind, seed):
    s = labelled_stream(kind, 2000, seed)
    bank = RobustZBank(warmup=DEFAULT_WARMUP)
    slot = bank.add(**DEFAULT_POINT)
    res = bank.process(np.full(len(s.values), slot), s.values)
    det = default_point_detector()
    for i, v in enumerate(s.values.tolist()):
        d = det.update(v)
        assert res.scores[i] == pytest.approx(d.score, rel=1e-12, abs=1e-15), i
        assert bool(res.is_anomaly[i]) == d.is_anomaly, i


def test_registry_and_overrides():
    assert make("default").threshold == 0.9
    det = default_point_detector(threshold=0.95, persistence=2)
    assert det.threshold == 0.95 and det.persistence == 2 and det.clear == 0.5
    assert bank_params({"threshold": 0.95})["threshold"] == 0.95
    with pytest.raises(InvalidInput):
        bank_params({"likelihood": False})
    with pytest.raises(TypeError):
        default_point_detector(nonsense=1)


ONSET_KINDS = ["level_shift", "spikes", "stuck", "restart", "quantised_flat"]
QUIET_KINDS = ["level_shift", "seasonal_daily", "shift_pattern", "slow_drift", "stuck", "restart"]


@pytest.fixture(scope="module")
def labelled():
    ss = [labelled_stream(k, 20_000, 0) for k in ONSET_KINDS]
    scores, flags = run_bank([s.values for s in ss], running=[s.running for s in ss])  # one bank: one pass
    return {k: (s, sc, f) for k, s, sc, f in zip(ONSET_KINDS, ss, scores, flags)}


@pytest.fixture(scope="module")
def normal_day():
    ss = [normal_stream(k, 86_400, 11) for k in QUIET_KINDS]
    _scores, flags = run_bank([s.values for s in ss], running=[s.running for s in ss])
    return dict(zip(QUIET_KINDS, flags))


@pytest.mark.parametrize("kind", ONSET_KINDS)
def test_onsets_are_flagged_early_and_once(kind, labelled):
    s, score, flag = labelled[kind]
    scores, flags = [score], [flag]
    starts = episodes(flags[0])
    assert starts[starts > 3000].size >= len(s.onsets)  # every anomaly opens an episode
    width = 0.1 * len(s.values) / len(s.onsets)
    for o in s.onsets:
        first = starts[starts >= o][0]
        assert first - o <= 0.1 * width, (o, first)  # within the first tenth of its window
    # one high score per episode, not one per anomalous reading
    assert (scores[0] >= 0.9).sum() == len(starts)


@pytest.mark.parametrize("kind", QUIET_KINDS)
def test_quiet_on_a_day_of_normal_data(kind, normal_day):
    assert len(episodes(normal_day[kind])) == 0


def test_the_asset_default_is_quiet_then_flags_a_joint_change():
    rng = np.random.default_rng(2)
    n = 3000
    a = rng.normal(0, 1, n)
    b = a + rng.normal(0, 0.2, n)  # b follows a
    b[2000:] = -a[2000:]           # the relation breaks; each signal alone looks normal
    det = default_asset_detector()
    flags = np.array([det.update({"a": float(x), "b": float(y)}).is_anomaly for x, y in zip(a, b)])
    starts = episodes(flags)
    assert len(starts[starts < 2000]) == 0
    assert len(starts[(starts >= 2000) & (starts < 2050)]) == 1


@pytest.mark.parametrize("params", [{"peak_memory": 1e12}, {"short": -1}, {"long": 0}, {"clear": 0.95},
                                    {"clear": "x"}, {"protect_for": 0}, {"warmup": 50}, {"likelihood": False},
                                    {"departure": float("inf")}, {"margin": -2}, {"stuck_ratio": 1}])
def test_absurd_default_params_are_refused_at_load_with_their_path(params):
    from plantguard.config.checks import analytics_build_problems

    problems = analytics_build_problems("point_anomaly", {"detector": "default", "params": params}, "p.analytics.anomaly")
    assert problems and all(p.path.startswith("p.analytics.anomaly.params") for p in problems), problems


def test_absurd_default_asset_params_are_refused():
    from plantguard.config.checks import analytics_build_problems

    assert analytics_build_problems("asset_anomaly", {"detector": "default", "params": {"warmup": -5}}, "a")
    assert analytics_build_problems("asset_anomaly", {"detector": "default", "threshold": 0.95, "params": {}}, "a") == []
