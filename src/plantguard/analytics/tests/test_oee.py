"""OEE against hand-computed examples, bad input, and the loss identity as a property."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.analytics.oee import (SIM_STATE_CATEGORIES, MachineData, OeeConfig, Period, combine, compute_oee,
                                      counter_increments, line_oee_by, oee_by)
from plantguard.analytics.shifts import ShiftCalendar
from plantguard.errors import ConfigError, InvalidInput
from plantguard.timeutil import to_us

S = 1_000_000
MIN = 60 * S
CATS = {0: "planned_stop", 1: "running", 2: "idle", 3: "unplanned_stop", 4: "setup"}


def _cfg(**kw):
    base = dict(categories=CATS, ideal_cycle_s=1.0, max_gap_s=None, startup_window_s=0)
    base.update(kw)
    return OeeConfig(**base)


def _series(minutes, values):
    return (np.asarray(minutes, dtype=np.float64) * MIN).astype(np.int64), np.asarray(values, dtype=np.float64)


def _identity(r):
    return r.fully_productive_s + r.losses.total_s


def test_vorne_example():
    """Vorne's worked example (oee.com/calculating-oee): 480 min shift with 60 min of planned breaks -> planned
    production 420 min; 47 min of downtime -> run time 373 min; ideal cycle 1.0 s; total 19,271, good 18,848.
    A = 373/420 = 0.8881, P = 19,271 s / 22,380 s = 0.8611, Q = 18,848/19,271 = 0.9780,
    OEE = 18,848 s / 25,200 s = 0.7479."""
    states = _series([0, 30, 200, 247, 450], [0, 1, 3, 1, 0])  # break, run, 47 min breakdown, run, break
    good, bad = _series([0, 479], [0, 18848]), _series([0, 479], [0, 423])
    r = compute_oee(states, good, bad, Period("shift", 0, 480 * MIN), _cfg())
    assert r.status == "ok" and r.flags == ()
    assert r.planned_production_s == 420 * 60 and r.run_time_s == 373 * 60
    assert r.losses.breakdowns_s == 47 * 60
    assert round(r.availability, 4) == 0.8881
    assert round(r.performance, 4) == 0.8611
    assert round(r.quality, 4) == 0.9780
    assert round(r.oee, 4) == 0.7479
    assert r.oee == pytest.approx(r.availability * r.performance * r.quality)
    assert _identity(r) == pytest.approx(r.planned_production_s)


def test_six_big_losses_hand_computed():
    """100 min, ideal 60/min (cycle 1 s), minor_stop_max 5 min, startup window 5 min:
    run 0-20, fault 20-23 (3 min: minor stop), run 23-40, fault 40-50 (10 min: breakdown), setup 50-60,
    run 60-80, idle 80-85 (minor stop), run 85-95, planned stop 95-100.
    Planned production 95 min; breakdowns 10, setup 10 -> run time 75 min; minor stops 3 + 5 = 8 min;
    running 67 min = 4020 s. Good 3000; bad 30 at minute 61 (startup after the setup), 20 at minute 92
    (more than 5 min after the restart at 85: a process defect). Total 3050 -> net run 3050 s,
    reduced speed 4020 - 3050 = 970 s, defects 20 s, startup rejects 30 s, fully productive 3000 s.
    5700 = 3000 + 600 + 600 + 480 + 970 + 20 + 30. A = 75/95, P = 3050/4500, Q = 3000/3050, OEE = 3000/5700."""
    states = _series([0, 20, 23, 40, 50, 60, 80, 85, 95], [1, 3, 1, 3, 4, 1, 2, 1, 0])
    good = _series([0, 99], [0, 3000])
    bad = _series([0, 61, 92], [0, 30, 50])
    r = compute_oee(states, good, bad, (0, 100 * MIN), _cfg(startup_window_s=300))
    L = r.losses
    assert (L.breakdowns_s, L.setup_s, L.minor_stops_s) == (600, 600, 480)
    assert (L.reduced_speed_s, L.defects_s, L.startup_rejects_s) == (970, 20, 30)
    assert r.planned_production_s == 5700 and r.fully_productive_s == 3000 and _identity(r) == 5700
    assert r.availability == pytest.approx(75 / 95)
    assert r.performance == pytest.approx(3050 / 4500)
    assert r.quality == pytest.approx(3000 / 3050)
    assert r.oee == pytest.approx(3000 / 5700)
    assert (r.total, r.good, r.bad, r.startup_bad) == (3050, 3000, 50, 30)


def test_state_before_the_window_gives_the_state_at_its_start():
    states = _series([-30, 50], [3, 1])  # a breakdown that began 30 min before the period
    r = compute_oee(states, _series([-60, 99], [0, 2000]), _series([-60], [0]), (0, 100 * MIN), _cfg())
    assert r.unknown_s == 0 and r.losses.breakdowns_s == 50 * 60 and r.running_s == 50 * 60


def test_counter_reset_counts_the_new_value_and_is_flagged():
    good = _series([0, 10, 20, 30, 40], [0, 100, 200, 5, 105])  # PLC restart between 20 and 30 min
    r = compute_oee(_series([0], [1]), good, _series([0], [0]), (0, 60 * MIN), _cfg())
    assert r.good == 305 and "counter_reset" in r.flags and r.issues["counter_resets"] == 1
    inc = counter_increments(_series([0, 1, 2], [65500, 65530, 30]), modulus=65536)
    assert inc.inc.tolist() == [30, 36]


def test_out_of_order_and_duplicate_samples_are_sorted_deduplicated_and_counted():
    states = _series([0, 20, 23, 40, 50, 60, 80, 85, 95], [1, 3, 1, 3, 4, 1, 2, 1, 0])
    good, bad = _series([0, 99], [0, 3000]), _series([0, 61, 92], [0, 30, 50])
    ref = compute_oee(states, good, bad, (0, 100 * MIN), _cfg())
    order = np.array([4, 0, 8, 2, 6, 1, 3, 7, 5])
    ts, v = states[0][order], states[1][order]
    ts, v = np.append(ts, ts[0]), np.append(v, v[0])  # a duplicate (same timestamp, same code)
    gts, gv = np.array([99 * MIN, 0, 99 * MIN]), np.array([3000.0, 0, 3000])
    r = compute_oee((ts, v), (gts, gv), bad, (0, 100 * MIN), _cfg())
    assert r.oee == ref.oee and r.losses == ref.losses
    assert r.issues["states.out_of_order"] > 0 and r.issues["states.duplicates"] == 1
    assert r.issues["good.duplicates"] == 1


def test_duplicate_timestamps_keep_the_last_sample_given():
    r = compute_oee((np.array([0, 0]), np.array([3.0, 1.0])), _series([0, 9], [0, 0]), _series([0], [0]),
                    (0, 10 * MIN), _cfg())
    assert r.running_s == 600 and r.losses.breakdowns_s == 0


def test_gap_longer_than_max_gap_is_unknown_time_not_running():
    # running samples every minute, then nothing for 30 min, then running again
    minutes = list(range(0, 20)) + list(range(50, 60))
    states = _series(minutes, [1] * len(minutes))
    good = _series([0, 59], [0, 2000])
    r = compute_oee(states, good, _series([0], [0]), (0, 60 * MIN), _cfg(max_gap_s=120))
    assert r.unknown_s == (50 - 21) * 60  # the sample at 19 min holds for 2 min, then unknown until 50
    assert r.planned_production_s == 60 * 60 - r.unknown_s
    assert "unknown_time" in r.flags and r.status == "ok"
    assert r.coverage == pytest.approx(1 - r.unknown_s / 3600)
    assert _identity(r) == pytest.approx(r.planned_production_s)


def test_too_little_coverage_is_insufficient_data_with_no_ratios():
    r = compute_oee(_series([0], [1]), _series([0, 9], [0, 10]), _series([0], [0]), (0, 60 * MIN),
                    _cfg(max_gap_s=600))
    assert r.status == "insufficient_data" and r.coverage == pytest.approx(10 / 60)
    assert (r.availability, r.performance, r.quality, r.oee) == (None, None, None, None)


def test_no_data_at_all_is_insufficient_data():
    empty = (np.array([], np.int64), np.array([]))
    r = compute_oee(empty, empty, empty, (0, 60 * MIN), _cfg())
    assert r.status == "insufficient_data" and r.unknown_s == 3600 and r.oee is None
    r = compute_oee(_series([0], [1]), empty, empty, (0, 60 * MIN), _cfg())
    assert r.status == "insufficient_data" and "no_counter_data" in r.flags


def test_all_planned_stop_is_not_planned():
    r = compute_oee(_series([0], [0]), _series([0], [0]), _series([0], [0]), (0, 60 * MIN), _cfg())
    assert r.status == "not_planned" and r.planned_production_s == 0 and r.oee is None


def test_nan_bad_quality_and_unmapped_states_are_unknown_and_bad_counter_samples_dropped():
    ts = np.array([0, 10, 20, 30]) * MIN
    codes = np.array([1.0, np.nan, 7.0, 1.0])
    quality = np.array([0, 0, 0, 0])
    good = (np.array([0, 10, 20, 59]) * MIN, np.array([0.0, np.nan, -4.0, 1000.0]), np.array([0, 0, 0, 0]))
    r = compute_oee((ts, codes, quality), good, _series([0], [0]), (0, 60 * MIN), _cfg())
    assert r.unknown_s == 20 * 60 and r.running_s == 40 * 60 and r.good == 1000
    assert r.issues["good.dropped"] == 2 and r.issues["states.unmapped_codes"] == 1
    assert "unmapped_state_codes" in r.flags
    r2 = compute_oee((ts, np.array([1.0, 1, 1, 1]), np.array([0, 2, 2, 0])), good, _series([0], [0]),
                     (0, 60 * MIN), _cfg())
    assert r2.unknown_s == 20 * 60


def test_performance_above_one_is_reported_raw_and_flagged():
    r = compute_oee(_series([0], [1]), _series([0, 59], [0, 5000]), _series([0], [0]), (0, 60 * MIN), _cfg())
    assert r.performance == pytest.approx(5000 / 3600) and r.performance > 1
    assert "performance_above_1" in r.flags and "output_above_ideal_rate" in r.flags
    assert r.losses.reduced_speed_s == -1400 and _identity(r) == pytest.approx(r.planned_production_s)


def test_counter_starting_inside_the_period_is_flagged():
    r = compute_oee(_series([0], [1]), _series([30, 59], [500, 900]), _series([0], [0]), (0, 60 * MIN), _cfg())
    assert r.good == 400 and "counter_baseline_missing" in r.flags


def test_shifts_across_dst_and_rollup_equals_the_whole_day():
    cal = ShiftCalendar("Europe/Paris", [("A", "06:00", "14:00"), ("B", "14:00", "22:00"), ("C", "22:00", "06:00")],
                        day_start="first_shift")
    t0, t1 = to_us("2024-03-30T06:00:00+01:00"), to_us("2024-03-31T06:00:00+02:00")
    rng = np.random.default_rng(7)
    ts = np.sort(rng.integers(t0 - 3600 * S, t1, 400))
    codes = rng.choice([0, 1, 1, 1, 2, 3, 4], ts.size)
    gts = np.arange(t0 - 60 * S, t1 + 60 * S, 60 * S)
    good = (gts, np.cumsum(rng.integers(0, 50, gts.size)).astype(float))
    bad = (gts, np.cumsum(rng.integers(0, 2, gts.size)).astype(float))
    cfg = _cfg(ideal_rate_per_h=3600, ideal_cycle_s=None, startup_window_s=300)
    shifts = oee_by(cal.periods(t0, t1, "shift"), (ts, codes), good, bad, cfg)
    assert [r.period_s / 3600 for r in shifts] == [8, 8, 7]
    day = compute_oee((ts, codes), good, bad, cal.periods(t0, t1, "day")[0], cfg)
    rolled = combine(shifts, label="2024-03-30")
    assert rolled.period_s == day.period_s == 23 * 3600
    assert rolled.oee == pytest.approx(day.oee) and rolled.good == day.good
    assert rolled.losses.setup_s == pytest.approx(day.losses.setup_s)


def test_line_oee_uses_the_last_machine_good_count_and_every_machine_rejects():
    states = _series([0], [1])
    filler = MachineData(states, _series([0, 59], [0, 3000]), _series([0, 59], [0, 40]))
    capper = MachineData(states, _series([0, 59], [0, 2900]), _series([0, 59], [0, 60]))
    (r,) = line_oee_by([Period("line", 0, 60 * MIN)], [filler, capper], _cfg())
    assert (r.good, r.bad, r.total) == (2900, 100, 3000)
    assert r.quality == pytest.approx(2900 / 3000)


def test_sim_state_codes():
    cfg = OeeConfig(categories=SIM_STATE_CATEGORIES, ideal_rate_per_h=21600)
    assert cfg.cycle_s == pytest.approx(1 / 6)


def test_config_errors_list_every_problem():
    with pytest.raises(ConfigError) as e:
        OeeConfig(categories={1: "running", 2: "coffee"}, ideal_rate_per_h=100, ideal_cycle_s=1.0, minor_stop_max_s=-1,
                  min_coverage=2)
    assert len(e.value.problems) == 4
    with pytest.raises(InvalidInput):
        compute_oee(([0, 1], [1]), None, None, (0, 10), _cfg())


# -- properties ------------------------------------------------------------------------------------------------------
@st.composite
def _histories(draw):
    n = draw(st.integers(1, 25))
    ts = sorted(draw(st.lists(st.integers(-30 * MIN, 120 * MIN), min_size=n, max_size=n)))
    codes = draw(st.lists(st.sampled_from([0, 1, 1, 2, 3, 4, 9]), min_size=n, max_size=n))
    m = draw(st.integers(1, 30))
    cts = sorted(draw(st.lists(st.integers(-30 * MIN, 120 * MIN), min_size=m, max_size=m)))
    good = np.cumsum(draw(st.lists(st.integers(0, 400), min_size=m, max_size=m)))
    bad = np.cumsum(draw(st.lists(st.integers(0, 20), min_size=m, max_size=m)))
    if draw(st.booleans()):  # a reset somewhere
        k = draw(st.integers(0, m - 1))
        good[k:] -= good[k]
    gap = draw(st.sampled_from([None, 60.0, 600.0]))
    return ((np.array(ts), np.array(codes, float)), (np.array(cts), good.astype(float)),
            (np.array(cts), bad.astype(float)), gap, draw(st.sampled_from([0, 60, 300])),
            draw(st.sampled_from([0.0, 120.0, 600.0])))


@settings(max_examples=150, deadline=None)
@given(_histories(), st.integers(0, 60 * MIN), st.integers(1, 60 * MIN))
def test_losses_add_up_to_planned_production_and_oee_is_a_times_p_times_q(h, start, length):
    states, good, bad, gap, cycle, minor = h
    cfg = OeeConfig(categories=CATS, ideal_cycle_s=cycle or 1.0, max_gap_s=gap, minor_stop_max_s=minor,
                    startup_window_s=300, min_coverage=0.0)
    r = compute_oee(states, good, bad, (start, start + length), cfg)
    assert r.fully_productive_s + r.losses.total_s == pytest.approx(r.planned_production_s, abs=1e-6)
    assert r.planned_production_s + r.planned_stop_s + r.unknown_s == pytest.approx(r.period_s, abs=1e-6)
    assert r.total == r.good + r.bad and r.good >= 0 and r.bad >= 0 and 0 <= r.startup_bad <= r.bad
    assert min(r.losses.breakdowns_s, r.losses.setup_s, r.losses.minor_stops_s, r.losses.defects_s) >= 0
    if r.status == "ok":
        assert 0 <= r.availability <= 1
        if r.quality is not None:
            assert 0 <= r.quality <= 1
        if None not in (r.availability, r.performance, r.quality, r.oee):
            assert r.oee == pytest.approx(r.availability * r.performance * r.quality)
        if r.oee is not None:
            assert math.isfinite(r.oee) and r.oee >= 0
    else:
        assert r.oee is None


@settings(max_examples=60, deadline=None)
@given(_histories(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_sample_order(h, rnd):
    states, good, bad, gap, _, _ = h
    cfg = OeeConfig(categories=CATS, ideal_cycle_s=1.0, max_gap_s=gap, min_coverage=0.0)
    ref = compute_oee(states, good, bad, (0, 60 * MIN), cfg)
    # only distinct timestamps can be shuffled freely: equal ones are resolved by input order
    ts, v = states
    _, first = np.unique(ts[::-1], return_index=True)
    keep = np.sort(ts.size - 1 - first)
    ts, v = ts[keep], v[keep]
    ref = compute_oee((ts, v), good, bad, (0, 60 * MIN), cfg)
    perm = list(range(ts.size))
    rnd.shuffle(perm)
    r = compute_oee((ts[perm], v[perm]), good, bad, (0, 60 * MIN), cfg)
    assert r.losses == ref.losses and r.oee == ref.oee
