"""The anomaly likelihood marks the onset of a sustained excursion and then decays: one episode, not one alarm
per reading; on normal data it stays low."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

from plantguard.analytics.anomaly.likelihood import AnomalyLikelihood
from plantguard.analytics.anomaly.robust import RobustZScore
from plantguard.analytics.anomaly.threshold import Thresholded


def _scores(det, xs):
    out = []
    for v in xs:
        out.append(det.score_one(float(v)))
        det.learn_one(float(v))
    return np.array(out)


def test_a_sustained_step_spikes_at_its_onset_then_decays():
    x = np.random.default_rng(1).normal(0, 1, 3000)
    x[1500:2500] += 6.0
    s = _scores(AnomalyLikelihood(RobustZScore()), x)
    assert s[200:1500].max() < 0.9  # no false alarm before
    assert s[1500:1520].max() > 0.9  # the onset, early
    assert s[2200:2500].mean() < 0.5  # a long excursion decays
    th = Thresholded(AnomalyLikelihood(RobustZScore()), threshold=0.9, protect=False)
    flags = np.array([th.update(float(v)).is_anomaly for v in x])
    starts = np.flatnonzero(flags[1:] & ~flags[:-1]) + 1
    # one episode at the onset (and one when the level comes back, itself a change), not a flag per reading
    assert 1500 <= starts[0] < 1520 and len(starts) <= 2 and (len(starts) == 1 or 2500 <= starts[1] < 2520)
    assert flags[1500:2500].mean() < 0.05


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 100.0))
def test_normal_data_stays_low_whatever_its_scale(seed, sd):
    x = np.random.default_rng(seed).normal(50.0, sd, 2000)
    s = _scores(AnomalyLikelihood(RobustZScore()), x)
    assert (s >= 0.9).mean() < 0.01
