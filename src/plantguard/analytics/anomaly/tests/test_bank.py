"""RobustZBank computes exactly what Thresholded(RobustZScore) computes, slot by slot."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.analytics.anomaly.bank import RobustZBank
from plantguard.analytics.anomaly.robust import RobustZScore
from plantguard.errors import InvalidInput

slot_params = st.fixed_dictionaries({
    "alpha": st.sampled_from([0.01, 0.05, 0.2]),
    "sigmas": st.sampled_from([3.0, 5.0]),
    "rel_scale": st.sampled_from([0.0, 1e-4]),
    "period": st.sampled_from([None, 3600.0, 86_400.0]),
    "threshold": st.sampled_from([0.6, 0.9]),
    "protect": st.booleans(),
    "persistence": st.integers(1, 3),
    "relearn_after": st.sampled_from([None, 5, 20]),
    "floor_history": st.sampled_from([0.0, 0.1, 0.5]),
    "stuck_ratio": st.sampled_from([None, 2.0, 30.0]),
    "protect_for": st.sampled_from([None, 3, 600]),
    "clear": st.sampled_from([None, 0.3]),
    "onset_only": st.booleans(),
    "likelihood": st.booleans(),
    "short": st.sampled_from([1, 10]),
    "long": st.sampled_from([20, 600]),
    "likelihood_warmup": st.sampled_from([1, 15]),
    "margin": st.sampled_from([0.0, 1.5]),
    "peak_memory": st.sampled_from([1, 50]),
})


def reference(params, warmup, bins):
    return RobustZBank(warmup=warmup, bins=bins).reference(**params)


def make_batch(seed, n_slots, n):
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, n_slots, n)
    level = rng.uniform(-50, 50, n_slots)[slots]
    ts = 1_700_000_000_000_000 + np.cumsum(rng.integers(0, 900_000_000, n))
    values = level + rng.normal(0, 1, n) + 10 * np.sin(ts / 3.6e9)
    kinds = rng.random(n)
    values[kinds < 0.03] += rng.choice([-1, 1], int((kinds < 0.03).sum())) * 15  # spikes
    values[(kinds > 0.97) & (kinds < 0.98)] = np.nan
    values[kinds > 0.995] = 7.0  # repeated constants
    values[(kinds > 0.90) & (kinds < 0.93)] = np.round(values[(kinds > 0.90) & (kinds < 0.93)])  # quantised
    shift = (slots == 0) & (np.arange(n) > n // 2)
    values[shift] += 100  # a sustained shift on slot 0
    return slots, values, ts


@settings(max_examples=60, deadline=None)
@given(st.lists(slot_params, min_size=1, max_size=6), st.integers(0, 2**32 - 1), st.integers(3, 12),
       st.sampled_from([1, 4, 24]), st.lists(st.integers(1, 300), min_size=1, max_size=4), st.booleans())
def test_bank_equals_reference_reading_by_reading(params, seed, warmup, bins, batch_sizes, with_ts):
    bank = RobustZBank(warmup=warmup, bins=bins, capacity=1)
    refs = [reference(p, warmup, bins) for p in params]
    for p in params:
        bank.add(**p)
    slots, values, ts = make_batch(seed, len(params), sum(batch_sizes))
    start = 0
    for k, size in enumerate(batch_sizes):
        sl, v, t = slots[start:start + size], values[start:start + size], ts[start:start + size]
        res = bank.process(sl, v, t if with_ts else None)
        for i in range(size):
            d = refs[sl[i]].update(float(v[i]), ts=t[i] / 1e6 if with_ts else None)
            assert res.scores[i] == pytest.approx(d.score, rel=1e-12, abs=1e-15), (k, i)
            assert (bool(res.is_anomaly[i]), bool(res.warm[i])) == (d.is_anomaly, d.warm), (k, i)
        start += size
        if k == 0:
            bank = pickle.loads(pickle.dumps(bank))  # a checkpoint between batches changes nothing
    for s, ref in enumerate(refs):
        st_ = bank.state(s)
        assert st_["warm"] == ref.is_warm and st_["relearns"] == ref.relearns
        base = ref.detector if isinstance(ref.detector, RobustZScore) else ref.detector.detector
        assert st_["in_episode"] == ref.in_episode
        if base.is_warm:
            assert st_["location"] == pytest.approx(base.location, rel=1e-12, abs=1e-12)
            assert st_["scale"] == pytest.approx(base.scale, rel=1e-12)


def test_params_round_trip_and_validation():
    bank = RobustZBank()
    s = bank.add(alpha=0.05, period=3600, persistence=2, relearn_after=10)
    p = bank.params(s)
    assert {k: p[k] for k in ("alpha", "sigmas", "min_scale", "rel_scale", "period", "threshold", "protect",
                              "persistence", "relearn_after", "protect_for", "likelihood")} == {
        "alpha": 0.05, "sigmas": 5.0, "min_scale": 1e-6, "rel_scale": 1e-4, "period": 3600.0, "threshold": 0.9,
        "protect": True, "persistence": 2, "relearn_after": 10, "protect_for": 600, "likelihood": False}
    assert bank.params(bank.add(**p)) == p
    for bad in (dict(alpha=0), dict(threshold=1), dict(persistence=0), dict(period=0),
                dict(persistence=2, relearn_after=1), dict(stuck_ratio=1), dict(clear=0.95), dict(protect_for=0),
                dict(likelihood=True, short=0), dict(likelihood=True, margin=-1), dict(floor_history=1.0)):
        with pytest.raises(InvalidInput):
            bank.add(**bad)
    with pytest.raises(InvalidInput):
        bank.process([len(bank)], [1.0])
    with pytest.raises(InvalidInput):
        bank.process([0, 0], [1.0])
    res = bank.process(np.zeros(0, np.int64), np.zeros(0))
    assert len(res.scores) == 0


def test_checkpoint_is_trimmed_and_growable():
    bank = RobustZBank(capacity=1000)
    for _ in range(3):
        bank.add()
    restored = pickle.loads(pickle.dumps(bank))
    assert len(restored) == 3 and restored._cap == 3
    assert restored.add() == 3 and len(restored) == 4


def test_state_per_slot_is_small():
    plain, seasonal = RobustZBank(), RobustZBank(bins=24)
    plain.add()
    seasonal.add(period=86_400)
    assert plain.nbytes_per_slot() < 1024
    assert seasonal.nbytes_per_slot() < 4096
