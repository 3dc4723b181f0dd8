"""RobustZScore: its streaming statistics against batch numpy computations, and its bad-input behaviour."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.signal import lfilter

from plantguard.analytics.anomaly import robust
from plantguard.analytics.anomaly.robust import RobustZScore, phase_bin, to_micros
from plantguard.errors import InvalidInput

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def learn(det, xs, ts=None):
    for i, x in enumerate(xs):
        det.learn_one(x, ts=None if ts is None else ts[i])
    return det


@given(st.lists(finite, min_size=3, max_size=60))
def test_warmup_starts_from_batch_median_and_mad(xs):
    det = learn(RobustZScore(warmup=len(xs)), xs)
    arr = np.array(xs)
    med = np.median(arr)
    steps = np.abs(np.diff(arr))
    steps = steps[steps > 0]
    floor = max(1e-6, 1e-4 * abs(med), 0.5 * steps.min() if len(steps) else 0.0)  # half the resolution
    mad = 1.482602218505602 * np.median(np.abs(arr - med))
    assert det.location == med
    assert det.scale == max(mad if mad > floor else np.std(arr), floor)


@given(st.integers(0, 10_000), st.floats(0.001, 0.3), st.integers(5, 40), st.integers(1, 400))
def test_unclipped_updates_are_the_batch_ewma_of_level_and_squared_residual(seed, alpha, warmup, n):
    # with the clipping constants at infinity the estimator must reduce to exact EWMAs
    rng = np.random.default_rng(seed)
    x = rng.normal(rng.uniform(-100, 100), rng.uniform(0.1, 10), warmup + n)
    with mock.patch.object(robust, "K_LOC", math.inf), mock.patch.object(robust, "K_SCALE", math.inf), \
            mock.patch.object(robust, "C_SCALE", 1.0):
        det = learn(RobustZScore(alpha=alpha, warmup=warmup, min_scale=1e-300, rel_scale=0.0), x[:warmup])
        loc0, s0 = det.location, det.scale
        learn(det, x[warmup:])
    y = x[warmup:]
    levels, _ = lfilter([alpha], [1.0, alpha - 1.0], y, zi=[(1 - alpha) * loc0])
    prev = np.r_[loc0, levels[:-1]]
    var, _ = lfilter([alpha], [1.0, alpha - 1.0], (y - prev) ** 2, zi=[(1 - alpha) * s0 * s0])
    assert det.location == pytest.approx(levels[-1], rel=1e-9, abs=1e-9)
    assert det.scale == pytest.approx(math.sqrt(var[-1]), rel=1e-7)


@given(st.integers(0, 10_000), st.floats(1e-3, 1e3), st.floats(-1e4, 1e4))
def test_scores_are_invariant_to_units_and_offset(seed, a, b):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, 300)
    x[rng.integers(50, 300, 5)] += 8.0
    kw = dict(min_scale=1e-12, rel_scale=0.0)
    d1, d2 = RobustZScore(**kw), RobustZScore(**kw)
    s1, s2 = [], []
    for v in x:
        s1.append(d1.score_one(v))
        s2.append(d2.score_one(a * v + b))
        d1.learn_one(v)
        d2.learn_one(a * v + b)
    # atol: a*v + b rounds at the ulp of b, which shows in scores of readings a thousandth of a sigma out
    np.testing.assert_allclose(s1, s2, rtol=1e-6, atol=1e-7)


def test_one_outlier_moves_the_baseline_by_a_bounded_amount():
    det = learn(RobustZScore(alpha=0.01), np.random.default_rng(1).normal(10, 1, 200))
    loc, scale = det.location, det.scale
    det.learn_one(1e9)
    assert abs(det.location - loc) <= 0.01 * robust.K_LOC * scale + 1e-12
    assert det.scale <= scale * math.sqrt(1 + 0.01 * (robust.K_SCALE ** 2 / robust.C_SCALE - 1)) + 1e-12


def test_an_outlier_in_the_warmup_does_not_spoil_the_baseline():
    xs = list(np.random.default_rng(2).normal(10, 1, 30))
    xs[5] = 1e6
    det = learn(RobustZScore(), xs)
    assert abs(det.location - 10) < 1 and 0.5 < det.scale < 2


def test_score_is_090_at_sigmas():
    det = learn(RobustZScore(sigmas=5.0), [9.0, 11.0] * 20)  # median 10, MAD 1
    loc, sigma = det.location, det.scale
    assert det.score_one(loc + 5 * sigma) == pytest.approx(0.9)
    assert det.score_one(loc - 5 * sigma) == pytest.approx(0.9)
    assert det.score_one(loc) == 0.0


@pytest.mark.parametrize("level", [0.0, 5.0, -1234.5])
def test_constant_signal_has_finite_scores_and_a_move_scores_high(level):
    det = learn(RobustZScore(), [level] * 500)
    assert det.scale == max(1e-6, 1e-4 * abs(level))
    assert det.score_one(level) == 0.0
    moved = det.score_one(level + max(1e-3, 0.01 * abs(level)))
    assert math.isfinite(moved) and moved > 0.99


def test_missing_values_score_zero_and_are_not_learned():
    det = learn(RobustZScore(), np.random.default_rng(3).normal(0, 1, 100))
    before = det.checkpoint()
    for bad in (None, math.nan, math.inf, -math.inf, np.float64("nan")):
        assert det.score_one(bad) == 0.0
        det.learn_one(bad)
    assert det.checkpoint() == before
    with pytest.raises(InvalidInput):
        det.score_one("12.5 degC")


def test_scores_are_zero_until_warm():
    det = RobustZScore(warmup=10)
    for i in range(10):
        assert not det.is_warm and det.score_one(1e9) == 0.0
        det.learn_one(float(i))
    assert det.is_warm and det.score_one(1e9) > 0.99


@pytest.mark.parametrize("params", [dict(alpha=0), dict(alpha=1.5), dict(warmup=2), dict(sigmas=0),
                                    dict(min_scale=0), dict(period=-1), dict(bins=0)])
def test_bad_parameters_are_rejected(params):
    with pytest.raises(InvalidInput):
        RobustZScore(**params)


def test_phase_bins_are_utc_hours_of_day():
    ts = datetime(2024, 3, 5, 13, 30, tzinfo=UTC)
    assert phase_bin(to_micros(ts), 86_400_000_000, 24) == 13
    assert phase_bin(to_micros(ts.timestamp() + 86_400 * 3), 86_400_000_000, 24) == 13
    assert phase_bin(-1, 86_400_000_000, 24) == 23  # before the epoch still maps into the period
    assert to_micros(None) is None and to_micros(math.nan) is None


def _daily(days, rng):
    ts = 1_700_000_000.0 + 600.0 * np.arange(days * 144)  # every 10 minutes
    hour = (ts % 86_400) // 3600
    x = np.where((hour >= 8) & (hour < 18), 80.0, 20.0) + rng.normal(0, 1, len(ts))
    return x, ts


def test_seasonal_profile_learns_a_day_night_pattern_the_plain_detector_cannot():
    x, ts = _daily(6, np.random.default_rng(4))
    seasonal = learn(RobustZScore(period=86_400, bins=24, alpha=0.02), x, ts)
    plain = learn(RobustZScore(alpha=0.02), x)
    day, night = 1_700_000_000.0 + 86_400 * 7 + 12 * 3600 - 1_700_000_000.0 % 86_400, None
    night = day - 10 * 3600
    assert seasonal.score_one(80.0, ts=day) < 0.5 and seasonal.score_one(20.0, ts=night) < 0.5
    assert seasonal.score_one(20.0, ts=day) > 0.99 and seasonal.score_one(80.0, ts=night) > 0.99
    assert plain.score_one(20.0) < 0.9  # its scale spans both levels, so it misses the swap
    # without a timestamp the seasonal detector falls back to its global estimate
    assert seasonal.score_one(50.0) == pytest.approx(plain.score_one(50.0), abs=0.3)


def test_timestamps_in_any_order_or_repeated_are_accepted():
    x, ts = _daily(2, np.random.default_rng(5))
    order = np.random.default_rng(6).permutation(len(x))
    det = learn(RobustZScore(period=86_400), np.r_[x[order], x[:10]], np.r_[ts[order], ts[:10]])
    assert det.is_warm and 0.0 <= det.score_one(50.0, ts=ts[0]) <= 1.0


# -- a baseline must not saturate: level shifts become the new normal, flat stretches keep a sensible scale ------

def _run(det, xs):
    return np.array([det.update(float(v)).score if hasattr(det, "update") else _score_learn(det, v) for v in xs])


def _score_learn(det, v):
    s = det.score_one(float(v))
    det.learn_one(float(v))
    return s


def test_a_persistent_level_shift_becomes_the_new_normal_in_bounded_time():
    """Thresholded(RobustZScore(), 0.9, protect=True), the former default: a 50-sigma step froze the protected
    baseline and every later reading scored ~1.0. Protection now lasts protect_for (600) readings, then the
    bounded-influence updates absorb the shift in about ln(50)/(4 alpha) ~ 100 readings."""
    from plantguard.analytics.anomaly.threshold import Thresholded

    x = np.random.default_rng(3).normal(10.0, 1.0, 4000)
    x[1000:] += 50.0
    s = _run(Thresholded(RobustZScore(), 0.9, protect=True), x)
    assert s[1000] > 0.99                       # the step itself is flagged
    assert (s[1000 + 600 + 300:] < 0.9).mean() > 0.99  # and 900 readings later it is normal
    det = RobustZScore()
    s2 = np.array([_score_learn(det, v) for v in x])
    assert (s2[1000 + 300:] < 0.9).mean() > 0.99  # unprotected: within a few hundred readings


def test_a_flat_stretch_does_not_make_tiny_wiggles_score_one():
    """A signal with unit noise goes quiet (a valve closed, a pump idling); wiggles of 2 % of its usual noise
    scored 1.0 once the scale had shrunk to the floor. The scale keeps a tenth of its history."""
    rng = np.random.default_rng(4)
    x = np.r_[rng.normal(50.0, 1.0, 3000), 50.0 + 0.02 * rng.integers(-1, 2, 3000)]
    det = RobustZScore()
    s = np.array([_score_learn(det, v) for v in x])
    assert s[3000:].max() < 0.9
    assert det.scale >= 0.1 * 0.8  # about a tenth of the noise it had


def test_a_quantised_signal_toggling_by_one_step_is_normal():
    """Steps of the sensor's resolution (0.5) after a stretch of 20 readings at each level: the scale floor is
    half the smallest step seen, so a toggle is about 2 scales out, not 250 (the relative floor alone)."""
    x = np.tile([20.0] * 20 + [20.5] * 20, 50)
    det = RobustZScore()
    s = np.array([_score_learn(det, v) for v in x])
    assert s[40:].max() < 0.9


def test_a_stuck_sensor_scores_when_asked_to():
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.0, 3000)
    x[2000:] = x[1999]
    det = RobustZScore(stuck_ratio=30)
    s = np.array([_score_learn(det, v) for v in x])
    assert s[:2000].max() < 0.9
    assert 2000 + 25 <= np.flatnonzero(s >= 0.9)[0] <= 2000 + 40
    plain = RobustZScore()
    assert np.array([_score_learn(plain, v) for v in x])[2000:].max() < 0.5  # a z-score alone cannot see it
