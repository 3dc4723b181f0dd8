"""A partition's learned state moves to another bank and carries on exactly where it was: the slots taken out of
a bank, processed further, give the same results as in the bank they came from (both bank kinds, at any point
of their life: warming up, collecting a baseline, established, in an episode)."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given, settings, strategies as st

from plantguard.analytics.anomaly.bank import RobustZBank
from plantguard.analytics.spc import SlotSettings, SpcBank


def _stream(seed: int, n_slots: int, n: int):
    rng = np.random.default_rng(seed)
    slots = rng.integers(0, n_slots, n)
    x = rng.normal(0, 1, n) + np.where(np.arange(n) > n // 2, 6.0 * (slots % 2), 0.0)
    ts = np.cumsum(rng.integers(500_000, 1_500_000, n)).astype(np.int64)
    return slots, x, ts


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_slots=st.integers(2, 6), cut=st.integers(0, 1500), seasonal=st.booleans(),
       likelihood=st.booleans())
def test_robust_z_slots_taken_over_continue_identically(seed, n_slots, cut, seasonal, likelihood):
    bank = RobustZBank(warmup=30, bins=6)
    for i in range(n_slots):
        bank.add(period=3600.0 if seasonal and i % 2 else None, likelihood=likelihood, onset_only=likelihood,
                 clear=0.5 if likelihood else None, protect=False)
    slots, x, ts = _stream(seed, n_slots, 3000)
    bank.process(slots[:cut], x[:cut], ts[:cut])
    moved = [i for i in range(n_slots) if i % 2 == seed % 2] or [0]
    other = pickle.loads(pickle.dumps(bank.take(moved)))  # through a checkpoint, as a worker would get it
    rest = np.isin(slots[cut:], moved)
    a = bank.process(slots[cut:][rest], x[cut:][rest], ts[cut:][rest])
    remap = {s: i for i, s in enumerate(moved)}
    b = other.process(np.array([remap[s] for s in slots[cut:][rest]], dtype=np.int64), x[cut:][rest], ts[cut:][rest])
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.is_anomaly, b.is_anomaly)


def test_robust_z_absorb_appends_and_refuses_another_layout():
    a, b = RobustZBank(warmup=30, bins=6), RobustZBank(warmup=30, bins=6)
    a.add()
    b.add(sigmas=7.0)
    b.add(sigmas=8.0)
    assert a.absorb(b) == [1, 2] and a.params(2)["sigmas"] == 8.0 and len(a) == 3
    import pytest

    from plantguard.errors import InvalidInput

    with pytest.raises(InvalidInput):
        a.absorb(RobustZBank(warmup=40, bins=6))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_slots=st.integers(2, 6), cut=st.integers(0, 800), baseline=st.integers(10, 60))
def test_spc_slots_taken_over_continue_identically(seed, n_slots, cut, baseline):
    bank = SpcBank()
    for _ in range(n_slots):
        bank.add(SlotSettings(baseline=baseline, rules="nelson"))
    slots, x, ts = _stream(seed, n_slots, 1600)
    bank.process(slots[:cut], ts[:cut], x[:cut])
    moved = list(range(1, n_slots, 2))
    other = pickle.loads(pickle.dumps(bank.take(moved)))
    rest = np.isin(slots[cut:], moved)
    a = bank.process(slots[cut:][rest], ts[cut:][rest], x[cut:][rest])
    remap = {s: i for i, s in enumerate(moved)}
    b = other.process(np.array([remap[s] for s in slots[cut:][rest]], dtype=np.int64), ts[cut:][rest], x[cut:][rest])
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.ewma, b.ewma)
    assert [(e["ts"], e["rule"], e["chart"]) for e in a.events()] == [(e["ts"], e["rule"], e["chart"]) for e in b.events()]
    for s in moved:
        assert bank.state(s) == other.state(remap[s]) or str(bank.state(s)) == str(other.state(remap[s]))
