"""Maintenance and quality KPIs against hand-computed examples; no failure and no output are states, not errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.analytics.kpi import (ItemLife, maintenance_kpis, mttf, quality_kpis, quality_kpis_from_counters,
                                      time_to_first_failure)
from plantguard.analytics.oee import SIM_STATE_CATEGORIES as CATS
from plantguard.errors import InvalidInput

H = 3600 * 1_000_000


def _states(hours, codes):
    return (np.asarray(hours, dtype=np.int64) * H, np.asarray(codes, dtype=float))


def test_mtbf_mttr_availability_hand_computed():
    """50 h: fault 10-11 h and 30-32 h, running otherwise. Operating 47 h, 2 failures -> MTBF 23.5 h;
    repairs 1 h and 2 h -> MTTR 1.5 h; availability 23.5 / 25 = 0.94."""
    k = maintenance_kpis(_states([0, 10, 11, 30, 32], [1, 3, 1, 3, 1]), 0, 50 * H, CATS, max_gap_s=None)
    assert k.status == "ok" and (k.failures, k.repairs) == (2, 2)
    assert k.mtbf_s == 23.5 * 3600 and k.mttr_s == 1.5 * 3600 and k.availability == pytest.approx(0.94)
    assert k.mtbf_lower_bound_s is None


def test_no_failure_gives_a_lower_bound_not_a_division_by_zero():
    k = maintenance_kpis(_states([0], [1]), 0, 50 * H, CATS, max_gap_s=None)
    assert k.status == "insufficient_data" and k.mtbf_s is None and k.mttr_s is None and k.availability is None
    assert k.mtbf_lower_bound_s == 50 * 3600
    k = maintenance_kpis(_states([], []), 0, 50 * H, CATS)
    assert k.status == "insufficient_data" and k.unknown_s == 50 * 3600 and k.mtbf_lower_bound_s == 0


def test_stop_across_a_data_gap_is_one_failure_with_known_time_only():
    # fault sampled at 10:00 and 10:30, running at 11:00, max_gap 600 s: each fault sample holds 10 min, the rest
    # of the stop is unknown
    ts = np.array([10 * H, 10 * H + H // 2, 11 * H])
    k = maintenance_kpis((ts, np.array([3.0, 3, 1])), 0, 20 * H, CATS, max_gap_s=600)
    assert k.failures == 1 and k.repairs == 1
    assert k.repair_s == 600 + 600 and k.unknown_s == 20 * 3600 - 600 - 1200


def test_open_stop_is_not_a_completed_repair_and_short_stops_can_be_ignored():
    k = maintenance_kpis(_states([0, 5, 6, 9], [1, 3, 1, 3]), 0, 10 * H, CATS, max_gap_s=None)
    assert (k.failures, k.repairs, k.open_stop_s) == (2, 1, 3600)
    k = maintenance_kpis(_states([0, 5, 6, 9], [1, 3, 1, 3]), 0, 10 * H, CATS, max_gap_s=None,
                         min_failure_s=2 * 3600)
    assert k.failures == 0


def test_mttf_counts_survivors_operating_time():
    """Three pumps: failed after 100 h and 300 h, one still running after 500 h -> 900 h / 2 failures = 450 h."""
    r = mttf([ItemLife(100 * 3600, True), ItemLife(300 * 3600, True), ItemLife(500 * 3600, False)])
    assert r.mttf_s == 450 * 3600 and r.status == "ok"
    r = mttf([ItemLife(10.0, False)])
    assert r.status == "insufficient_data" and r.mttf_s is None and r.mttf_lower_bound_s == 10
    assert mttf([]).status == "insufficient_data"
    with pytest.raises(InvalidInput):
        mttf([ItemLife(float("nan"), True)])


def test_time_to_first_failure_from_state_history():
    life = time_to_first_failure(_states([0, 2, 3, 7], [1, 0, 1, 3]), 0, 10 * H, CATS, max_gap_s=None)
    assert life == ItemLife(6 * 3600, True)  # running 0-2 and 3-7 h
    assert time_to_first_failure(_states([0], [1]), 0, 10 * H, CATS, max_gap_s=None) == ItemLife(36000, False)


def test_quality_kpis():
    q = quality_kpis(good=950, bad=50)
    assert (q.defect_rate, q.first_pass_yield, q.fpy_basis) == (0.05, 0.95, "good_over_total")
    q = quality_kpis(good=950, bad=50, rework=30)
    assert q.first_pass_yield == pytest.approx(0.92) and q.fpy_basis == "rework"
    q = quality_kpis(0, 0)
    assert q.status == "insufficient_data" and q.defect_rate is None and q.first_pass_yield is None
    for bad_args in [(-1, 0), (float("nan"), 0), (10, 0, 11)]:
        with pytest.raises(InvalidInput):
            quality_kpis(*bad_args)


def test_quality_from_counters_with_a_reset():
    ts = np.array([0, 1, 2, 3]) * H
    q = quality_kpis_from_counters((ts, np.array([0.0, 500, 20, 520])), (ts, np.array([0.0, 10, 12, 15])), 0, 4 * H)
    assert (q.good, q.bad) == (1020, 15)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10_000), st.sampled_from([0, 1, 2, 3])), min_size=1, max_size=40))
def test_kpis_are_consistent_for_any_history(steps):
    ts = np.cumsum([d for d, _ in steps]) * 1_000_000
    codes = np.array([c for _, c in steps], float)
    end = int(ts[-1]) + 1_000_000
    k = maintenance_kpis((ts, codes), int(ts[0]), end, CATS, max_gap_s=None)
    assert k.repairs <= k.failures + 1 and k.operating_s <= k.window_s
    if k.failures:
        assert k.mtbf_s == pytest.approx(k.operating_s / k.failures)
    else:
        assert k.mtbf_s is None and k.mtbf_lower_bound_s == k.operating_s
    if k.availability is not None:
        assert 0 <= k.availability <= 1
