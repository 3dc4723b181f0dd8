"""Streaming statistics against batch numpy computations (hypothesis, derandomised by the root conftest)."""

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter

from plantguard.analytics.spc import (CUSUM, EWMA, CHARTS, IndividualsMR, Limits, SlotSettings, SpcBank, capability,
                                      fit_individuals, fit_xbar_s)
from plantguard.errors import InvalidInput

floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
series = st.lists(floats, min_size=3, max_size=60)


@given(series)
def test_center_and_mr_bar_match_numpy(xs):
    x = np.array(xs)
    lim = fit_individuals(x, max_iter=0)
    assert lim.center == pytest.approx(x.mean(), rel=1e-9, abs=1e-9)
    assert lim.spread_center == pytest.approx(np.abs(np.diff(x)).mean(), rel=1e-9, abs=1e-9)


@given(st.lists(st.lists(floats, min_size=4, max_size=4), min_size=1, max_size=20))
def test_s_bar_matches_numpy(groups):
    a = np.array(groups)
    lim = fit_xbar_s(a, max_iter=0)
    assert lim.center == pytest.approx(a.mean(axis=1).mean(), rel=1e-9, abs=1e-9)
    assert lim.spread_center == pytest.approx(a.std(axis=1, ddof=1).mean(), rel=1e-9, abs=1e-9)


@given(series, st.floats(0.05, 1.0))
def test_ewma_matches_lfilter(xs, lam):
    x = np.array(xs)
    chart = EWMA(lam=lam, center=1.0, sigma=2.0)
    got = np.array([chart.update(v).value for v in x])
    want = lfilter([lam], [1.0, -(1.0 - lam)], x, zi=[(1.0 - lam) * 1.0])[0]
    assert np.allclose(got, want, rtol=1e-9, atol=1e-7)


@given(series, st.floats(0.0, 1.0))
def test_cusum_matches_cumulative_minimum(xs, k):
    x = np.array(xs)
    z = (x - 3.0) / 50.0
    chart = CUSUM(k=k, h=1e6, center=3.0, sigma=50.0)
    res = [chart.update(v) for v in x]
    s = np.cumsum(z - k)
    upper = s - np.minimum(0.0, np.minimum.accumulate(s))
    s2 = np.cumsum(-z - k)
    lower = s2 - np.minimum(0.0, np.minimum.accumulate(s2))
    assert np.allclose([r.detail["upper"] for r in res], upper, atol=1e-9)
    assert np.allclose([r.detail["lower"] for r in res], lower, atol=1e-9)


# -- the bank against the reference charts -----------------------------------------------------------------------
def reference(settings: SlotSettings):
    kw = dict(baseline=settings.baseline, max_iter=settings.max_iter)
    return (IndividualsMR(rules=settings.rules, **kw), EWMA(lam=settings.lam, L=settings.L, **kw),
            CUSUM(k=settings.k, h=settings.h, headstart=settings.headstart,
                  reset_on_signal=settings.reset_on_signal, **kw))


def run_reference(charts, x, t):
    events, states = [], []
    ewma = math.nan
    worst = None
    for c in charts:
        r = c.update(x, t)
        if c is charts[1]:
            ewma = r.value if r.value is not None else math.nan
        for v in r.violations:
            events.append((v.index, v.rule, CHARTS.index(v.chart)))
        states.append(r.state)
    # combined state as the bank reports it
    if "skipped" in states:
        worst = "skipped"
    elif "insufficient_data" in states:
        worst = "insufficient_data"
    elif "no_variation" in states:
        worst = "no_variation"
    elif events:
        worst = "out_of_control"
    else:
        worst = "in_control"
    return worst, ewma, events


value = st.one_of(st.floats(-5, 5, allow_nan=False), st.just(math.nan), st.sampled_from([0.0, 1.0, 2.0]))
reading = st.tuples(st.integers(0, 2), st.integers(-1, 3), value)   # slot, ts step (<= 0: stale), value


@settings(max_examples=40)
@given(st.lists(reading, min_size=1, max_size=200), st.sampled_from(["nelson", "western_electric", [1, 3, 7]]),
       st.integers(2, 8), st.booleans(), st.integers(1, 3))
def test_bank_matches_reference_charts(readings, rules, baseline, reset, batches):
    sets = [SlotSettings(baseline=baseline, lam=0.3, L=2.5, k=0.5, h=3.0, headstart=1.0 if reset else 0.0,
                         reset_on_signal=reset, rules=rules, max_iter=3 if reset else 10) for _ in range(3)]
    bank = SpcBank(capacity=1)
    for s in sets:
        bank.add(s)
    refs = [reference(s) for s in sets]
    clock = [0, 0, 0]
    slots, ts, vals = [], [], []
    for slot, step, v in readings:
        clock[slot] += step
        slots.append(slot), ts.append(clock[slot]), vals.append(v)
    slots, ts, vals = np.array(slots), np.array(ts, dtype=np.int64), np.array(vals)
    want_state, want_ewma, want_events = [], [], []
    for i, (s, t, v) in enumerate(zip(slots, ts, vals, strict=True)):
        st_, ew, evs = run_reference(refs[s], float(v), int(t))
        want_state.append(st_), want_ewma.append(ew)
        want_events += [(i, int(s), int(t), idx, rule, chart) for idx, rule, chart in evs]
    cuts = np.linspace(0, len(slots), batches + 1).astype(int)
    got_state, got_ewma, got_events = [], [], []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        res = bank.process(slots[a:b], ts[a:b], vals[a:b])
        bank = pickle.loads(pickle.dumps(bank))            # checkpoints between batches change nothing
        got_state += res.state_names()
        got_ewma += list(res.ewma)
        got_events += [(int(p) + a, int(s), int(t), int(i), int(r), int(c)) for p, s, t, i, r, c in
                       zip(res.event_pos, res.event_slot, res.event_ts, res.event_index, res.event_rule,
                           res.event_chart, strict=True)]
    assert got_state == want_state
    assert np.array_equal(np.array(got_ewma), np.array(want_ewma), equal_nan=True)
    assert sorted(got_events) == sorted(want_events)
    for s in range(3):
        ref_lim = refs[s][0].limits
        st_ = bank.state(s)
        assert (st_.limits is None) == (ref_lim is None)
        if ref_lim is not None:
            assert st_.limits == ref_lim
        assert st_.n_missing == refs[s][0].n_missing and st_.n_out_of_order == refs[s][0].n_out_of_order


def test_bank_explicit_limits_and_no_variation():
    bank = SpcBank()
    a, b = bank.add(), bank.add(SlotSettings(baseline=5))
    bank.set_limits(a, Limits.given(10.0, 1.0))
    res = bank.process(np.array([a, a, b, b, b, b, b, b]), np.arange(8), np.array([10.0, 14.0] + [7.0] * 6))
    assert res.state_names() == ["in_control", "out_of_control"] + ["insufficient_data"] * 5 + ["no_variation"]
    assert bank.state(b).status == "no_variation" and bank.state(b).limits.sigma == 0.0
    assert {(e["chart"], e["rule"]) for e in res.events()} >= {("individuals", 1)}


def test_bad_input_is_defined():
    chart = IndividualsMR(baseline=3)
    assert chart.update(float("nan"), 1).skip_reason == "missing"
    assert chart.update(1.0, 1).skip_reason == "out_of_order"         # equal ts: ignored
    assert [chart.update(v, t).state for v, t in ((1.0, 2), (2.0, 3), (1.5, 4))] == ["insufficient_data"] * 3
    assert chart.update(1.4, 5).state == "in_control"
    assert (chart.n_missing, chart.n_out_of_order) == (1, 1)
    flat = IndividualsMR(baseline=3)
    assert [flat.update(5.0).state for _ in range(5)][-1] == "no_variation"
    with pytest.raises(InvalidInput):
        fit_individuals([1.0])
    with pytest.raises(InvalidInput):
        capability([1.0, 2.0, 3.0], lsl=5, usl=4)
    with pytest.raises(InvalidInput):
        capability([2.0, 2.0, 2.0], lsl=1, usl=4)
    with pytest.raises(InvalidInput):
        capability([2.0], lsl=1, usl=4)
    one_sided = capability([1.0, 2.0, 3.0, 2.5], usl=6)
    assert one_sided.cp is None and one_sided.cpk == one_sided.cpu
