"""The windowed scorer on hand-made cases whose scores are worked out by hand, and its invariants."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from plantguard.analytics.evaluation.windowed import (
    PROFILES, Series, onset_windows, optimise, score_at, score_detections, sigmoid)
from plantguard.errors import InvalidInput


def det(n, idx):
    d = np.zeros(n, bool)
    d[list(idx)] = True
    return d


def one(n=100, window=(50, 59)):
    return [Series("s", np.zeros(n), [window])]


def test_sigmoid_values():
    assert sigmoid(0.0) == 0.0
    assert sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.98661
    assert sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert sigmoid(3.0) == pytest.approx(-1.0, abs=1e-6)


def test_null_scores_zero_and_perfect_scores_hundred():
    s = one()
    null = score_detections(s, [det(100, [])], probation=0.0)
    assert null.normalised == dict.fromkeys(PROFILES, 0.0)
    assert null.counts.fn == 1 and null.raw["standard"] == -1.0 and null.raw["reward_low_fn"] == -2.0
    perfect = score_detections(s, [det(100, [50])], probation=0.0)
    assert perfect.normalised["standard"] == pytest.approx(100.0)
    # the first reading of a 10-reading window is at y = -0.9
    assert perfect.raw["standard"] == pytest.approx(2 / (1 + math.exp(-4.5)) - 1)


def test_hand_worked_case():
    """Window 50..59; a detection at 55 (TP at y = -0.4), a repeat at 57 (ignored), an FP at 10 before any window
    (full weight) and an FP at 70 (y = 1.1 after the window)."""
    r = score_detections(one(), [det(100, [10, 55, 57, 70])], probation=0.0)
    tp = 2 / (1 + math.exp(-2.0)) - 1            # 0.76159
    late = -(2 / (1 + math.exp(5.5)) - 1)         # 0.99184
    assert r.counts.tp == 1 and r.counts.fp == 2 and r.counts.fn == 0
    assert r.raw["standard"] == pytest.approx(tp - 0.11 - 0.11 * late)
    assert r.raw["reward_low_fp"] == pytest.approx(tp - 0.22 - 0.22 * late)
    perfect = 2 / (1 + math.exp(-4.5)) - 1
    assert r.normalised["standard"] == pytest.approx(100 * (tp - 0.11 - 0.11 * late + 1) / (perfect + 1))
    assert r.counts.delays == [pytest.approx(0.5)]


def test_fp_just_after_a_window_costs_little():
    r = score_detections(one(), [det(100, [60])], probation=0.0)
    assert r.counts.fp == 1 and r.counts.fn == 1
    assert r.raw["standard"] == pytest.approx(-1.0 - 0.11 * -sigmoid(0.1))
    assert -sigmoid(0.1) < 0.25


def test_probation_ignores_detections_and_early_windows():
    s = [Series("s", np.zeros(100), [(5, 9), (50, 59)])]
    r = score_detections(s, [det(100, [6, 12])], probation=0.15)
    # window (5, 9) ends inside the first 15 readings: dropped; detections before 15 ignored
    assert r.counts.windows == 1 and r.counts.fp == 0 and r.counts.tp == 0 and r.counts.fn == 1
    assert r.normalised["standard"] == 0.0


def test_score_at_counts_every_reading_and_optimise_finds_the_onset():
    scores = np.zeros(200)
    scores[100] = 0.8     # onset, inside the window
    scores[101:130] = 0.5  # a long tail: every reading outside the window is an FP at threshold 0.5
    scores[20] = 0.6       # an isolated FP
    s = [Series("s", scores, [(95, 110)])]
    low = score_at(s, 0.5, probation=0.0)
    assert low.counts.tp == 1 and low.counts.fp == 19 + 1
    best = optimise(s, probation=0.0)
    assert best.threshold > 0.6 and best.counts.fp == 0 and best.counts.tp == 1
    assert best.normalised["standard"] > low.normalised["standard"]


def test_onset_windows_share_ten_percent_and_merge():
    assert onset_windows(1000, [500]) == [(450, 549)]
    assert onset_windows(1000, [300, 700]) == [(275, 324), (675, 724)]
    assert onset_windows(1000, [500, 510]) == [(475, 534)]
    assert onset_windows(1000, []) == []


def test_bad_windows_refused():
    with pytest.raises(InvalidInput):
        Series("s", np.zeros(10), [(5, 12)])
    with pytest.raises(InvalidInput):
        Series("s", np.zeros(10), [(1, 5), (4, 8)])
    with pytest.raises(InvalidInput):
        optimise(one(), "nope")


@settings(max_examples=200, deadline=None)
@given(st.integers(50, 400), st.lists(st.integers(0, 399), max_size=30), st.lists(st.integers(0, 399), max_size=4),
       st.sampled_from([0.0, 0.15]))
def test_invariants(n, dets, onsets, probation):
    """Never above the perfect score; an extra detection outside every window never raises it."""
    s = [Series("s", np.zeros(n), onset_windows(n, [o for o in onsets if o < n]))]
    d = det(n, [i for i in dets if i < n])
    r = score_detections(s, [d], probation=probation)
    for p in PROFILES:
        assert r.normalised[p] <= 100.0 + 1e-9
    inside = np.zeros(n, bool)
    for a, b in s[0].windows:
        inside[a:b + 1] = True
    free = np.flatnonzero(~inside & ~d)
    if len(free):
        d2 = d.copy()
        d2[free[len(free) // 2]] = True
        r2 = score_detections(s, [d2], probation=probation)
        for p in PROFILES:
            assert r2.normalised[p] <= r.normalised[p] + 1e-9
