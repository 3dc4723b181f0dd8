"""Thresholded: decisions, protection of the baseline, persistence, relearning, missing values, checkpoints."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from plantguard.analytics.anomaly.base import Detector
from plantguard.analytics.anomaly.robust import RobustZScore
from plantguard.analytics.anomaly.threshold import Decision, Thresholded
from plantguard.errors import InvalidInput


def warm(th, n=200, seed=0):
    for v in np.random.default_rng(seed).normal(10, 1, n):
        th.update(float(v))
    return th


def test_warmup_decisions_are_not_anomalies():
    th = Thresholded(RobustZScore(warmup=5))
    assert [th.update(1e9 * i) for i in range(5)] == [Decision(0.0, False, False)] * 5
    assert th.update(1e12).is_anomaly


def test_protect_keeps_a_spike_out_of_the_baseline_and_unprotected_learns_it():
    protected, open_ = warm(Thresholded(RobustZScore())), warm(Thresholded(RobustZScore(), protect=False))
    loc = protected.detector.location
    d = protected.update(100.0)
    assert d.is_anomaly and d.warm and d.score > 0.9
    assert protected.detector.location == loc
    open_.update(100.0)
    assert open_.detector.location > loc


def test_persistence_needs_consecutive_exceedances():
    th = warm(Thresholded(RobustZScore(), persistence=3))
    flags = [th.update(v).is_anomaly for v in (100.0, 100.0, 10.0, 100.0, 100.0, 100.0, 100.0)]
    assert flags == [False, False, False, False, False, True, True]


def test_sustained_level_shift_relearns_after_the_bound():
    th = warm(Thresholded(RobustZScore(warmup=30), relearn_after=50))
    rng = np.random.default_rng(1)
    decisions = [th.update(float(v)) for v in rng.normal(40, 1, 300)]
    flags = [d.is_anomaly for d in decisions]
    assert all(flags[:50]) and th.relearns == 1
    assert not any(d.warm for d in decisions[50:79])  # fresh baseline warming up on the new level
    assert not any(flags[50:]) and abs(th.detector.location - 40) < 1


def test_without_relearn_a_shift_alarms_for_ever():
    th = warm(Thresholded(RobustZScore()))
    assert all(th.update(float(v)).is_anomaly for v in np.random.default_rng(2).normal(40, 1, 500))
    assert th.relearns == 0


def test_missing_values_neither_alarm_nor_break_the_run():
    th = warm(Thresholded(RobustZScore(), persistence=2))
    assert not th.update(100.0).is_anomaly
    for bad in (None, math.nan, math.inf):
        assert th.update(bad) == Decision(0.0, False, True)
    assert th.update(100.0).is_anomaly


def test_checkpoint_mid_stream_gives_identical_decisions():
    th = warm(Thresholded(RobustZScore(), persistence=2, relearn_after=20))
    xs = np.r_[np.random.default_rng(3).normal(10, 1, 50), np.full(40, 30.0)]
    restored = Detector.restore(th.checkpoint())
    copied = pickle.loads(pickle.dumps(th))
    ref = [th.update(float(v)) for v in xs]
    assert [restored.update(float(v)) for v in xs] == ref
    assert [copied.update(float(v)) for v in xs] == ref


def test_clone_does_not_share_the_wrapped_detector():
    th = warm(Thresholded(RobustZScore()))
    c = th.clone()
    assert c.detector is not th.detector and not c.is_warm and repr(c) == repr(th)


@pytest.mark.parametrize("kw", [dict(threshold=0.0), dict(threshold=1.0), dict(persistence=0),
                                dict(persistence=3, relearn_after=2)])
def test_bad_parameters_are_rejected(kw):
    with pytest.raises(InvalidInput):
        Thresholded(RobustZScore(), **kw)
    with pytest.raises(InvalidInput):
        Thresholded("not a detector")


def test_episodes_with_hysteresis_and_onset_scores():
    """A score hovering around the threshold is one episode with `clear`; with `onset_only` the reported score
    is non-zero only where an episode may start, and score_one agrees with update."""
    from plantguard.analytics.anomaly.likelihood import AnomalyLikelihood

    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, 4000)
    x[2000:2300] += 7.0 + rng.normal(0.0, 2.0, 300)  # a noisy excursion: raw scores flicker around any threshold
    plain = Thresholded(AnomalyLikelihood(RobustZScore()), 0.9, protect=False)
    epi = Thresholded(AnomalyLikelihood(RobustZScore()), 0.9, protect=False, clear=0.5, onset_only=True)
    a_plain, a_epi, reported = [], [], []
    for v in x:
        a_plain.append(plain.update(float(v)).is_anomaly)
        predicted = epi.score_one(float(v))
        d = epi.update(float(v))
        assert predicted == d.score
        a_epi.append(d.is_anomaly)
        reported.append(d.score)
    starts = lambda a: int((np.diff(np.r_[False, a].astype(int)) == 1).sum())  # noqa: E731
    assert starts(np.array(a_epi)) <= starts(np.array(a_plain))
    assert starts(np.array(a_epi[1900:2400])) == 1
    rep = np.array(reported)
    assert (rep[2000:2400] >= 0.9).sum() == 1  # one onset, not every reading of the excursion
    assert rep[:1900].max() < 0.9


def test_missing_reading_keeps_an_open_episode_open():
    th = Thresholded(RobustZScore(warmup=5), 0.9, protect=False, clear=0.5)
    for v in [0.0, 1.0, -1.0, 0.5, -0.5, 0.2, 100.0]:
        d = th.update(v)
    assert d.is_anomaly
    assert th.update(float("nan")).is_anomaly and th.update(None).is_anomaly


def test_a_checkpoint_from_before_episodes_and_bounded_protection_still_runs():
    """Detectors pickled before Thresholded had protect_for, clear and onset_only (and RobustZScore its floor and
    run tracking) restore with those at their defaults instead of failing on the first reading."""
    th = Thresholded(RobustZScore(warmup=5), 0.9)
    for v in [1.0, 2.0, 1.5, 1.2, 1.8, 1.1, 1.3]:
        th.update(v)
    old = pickle.loads(pickle.dumps(th))
    for k in ("protect_for", "clear", "onset_only", "_open"):
        del old.__dict__[k]
    for k in ("floor_history", "stuck_ratio", "_slow", "_res", "_prev", "_same", "_rep", "_seen"):
        del old.detector.__dict__[k]
    back = Detector.restore(b"PGDET1\n" + pickle.dumps(old))
    assert back.protect_for == 600 and back.clear is None and back.detector.floor_history == 0.1
    assert back.detector.location == th.detector.location  # what it had learned is kept
    d = back.update(1.4)
    assert isinstance(d, Decision) and d.warm
