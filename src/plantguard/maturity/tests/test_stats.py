"""Gate statistics against known answers: scipy's Mann-Whitney U on fixtures, the bootstrap interval's coverage on
simulated data with a known difference, and the gate's verdicts (missing data inconclusive, critical KPIs apart)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from plantguard.maturity.stats import EXACT_MAX, KpiResult, bootstrap_diff, gate, judge, mann_whitney


def test_mann_whitney_matches_a_textbook_fixture():
    # two small samples with ties; scipy's asymptotic test with tie correction is the reference
    a = [1.1, 2.3, 2.3, 3.5, 4.0, 5.2, 6.1]
    b = [0.5, 1.1, 1.9, 2.0, 2.3, 2.8]
    u, p_gt, p_lt = mann_whitney(a, b)
    ref = sps.mannwhitneyu(a, b, alternative="greater", method="asymptotic")
    assert u == ref.statistic and p_gt == pytest.approx(ref.pvalue)
    assert p_lt == pytest.approx(sps.mannwhitneyu(a, b, alternative="less", method="asymptotic").pvalue)
    # U by hand: pairs (a_i > b_j) + 0.5 ties
    hand = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    assert u == hand


@pytest.mark.parametrize("n", [200, EXACT_MAX + 3000])
def test_bootstrap_interval_covers_the_true_difference(n):
    """95 % intervals from both resampling paths (value by value, and stratified for large samples) cover the
    true difference of means about 95 % of the time, on skewed data."""
    rng = np.random.default_rng(42)
    true = 0.3
    reps = 120 if n <= EXACT_MAX else 60
    hits = 0
    widths = []
    for k in range(reps):
        a = rng.exponential(1.0, n) + true
        b = rng.exponential(1.0, n)
        lo, hi = bootstrap_diff(a, b, resamples=1000, seed=k)
        hits += lo <= true <= hi
        widths.append(hi - lo)
    cover = hits / reps
    assert 0.88 <= cover <= 1.0, cover
    # the width agrees with the normal theory for a difference of means (sd 1 each): 2 * 1.96 * sqrt(2/n)
    assert np.median(widths) == pytest.approx(2 * 1.96 * np.sqrt(2 / n), rel=0.12)


def test_judge_verdicts():
    rng = np.random.default_rng(1)
    base = rng.normal(100, 5, 400)
    same = rng.normal(100, 5, 400)
    worse = rng.normal(90, 5, 400)   # higher is better: 10 lower is worse
    assert judge("oee", same, base).verdict == "passed"
    r = judge("oee", worse, base)
    assert r.verdict == "failed" and r.p_worse < 1e-6 and r.ci_high < 0
    assert judge("oee", worse, base, tolerance=20).verdict == "passed"      # within the allowed worsening
    assert judge("scrap", worse, base, better="lower").verdict == "passed"  # lower is better: an improvement
    assert judge("scrap", worse, base, better="lower", expect="better").verdict == "passed"
    assert judge("oee", same, base, expect="better").verdict == "failed"


@pytest.mark.parametrize("pilot,baseline,why", [
    (None, [1.0] * 60, "pilot: no data"), ([], [1.0] * 60, "pilot: no data"), ([1.0] * 60, [], "baseline: no data"),
    ([1.0] * 49, [1.0] * 60, "too few samples"), ([float("nan")] * 60, [1.0] * 60, "errored"),
    ([float("inf")] + [1.0] * 59, [1.0] * 60, "errored")])
def test_missing_errored_or_small_data_is_inconclusive_never_passed(pilot, baseline, why):
    r = judge("k", pilot, baseline)
    assert r.verdict == "inconclusive" and why in r.reason
    assert gate([r]).verdict == "inconclusive"


def test_an_errored_measurement_is_inconclusive():
    r = judge("k", [1.0] * 100, [1.0] * 100, error="store unavailable")
    assert r.verdict == "inconclusive" and "store unavailable" in r.reason


def test_every_measurement_errored_never_passes():
    checks = [judge(f"k{i}", None, None) for i in range(20)]
    g = gate(checks)
    assert g.verdict == "inconclusive" and g.verdict != "go"


def _c(kpi, verdict, critical=False):
    return KpiResult(kpi, verdict, "fixture", critical=critical)


def test_a_failing_critical_kpi_is_no_go_whatever_the_others_say():
    checks = [_c(f"minor{i}", "passed") for i in range(49)] + [_c("scrap", "failed", critical=True)]
    g = gate(checks)
    assert g.verdict == "no_go" and g.score == 100.0 and "critical KPI scrap failed" in g.reasons[0]


def test_score_thresholds_and_marginal():
    ten = lambda n_fail: [_c(f"k{i}", "failed" if i < n_fail else "passed") for i in range(20)]  # noqa: E731
    assert gate(ten(0)).verdict == "go"
    assert gate(ten(1)).verdict == "go"                      # 95 %
    g = gate(ten(2))                                         # 90 %: marginal, a person decides
    assert g.verdict == "inconclusive" and g.marginal and g.score == 90.0
    assert gate(ten(6)).verdict == "no_go"                   # 70 % < 75
    assert gate([]).verdict == "inconclusive"
    assert gate([_c("safety", "passed", critical=True)]).verdict == "go"
    assert gate([_c("safety", "inconclusive", critical=True), _c("m", "passed")]).verdict == "inconclusive"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=50, max_size=300), st.lists(st.floats(-1e6, 1e6), min_size=50, max_size=300))
def test_judge_never_crashes_and_the_interval_brackets_the_observed_difference(a, b):
    r = judge("k", a, b, resamples=200)
    assert r.verdict in ("passed", "failed")
    assert r.ci_low <= r.ci_high
    assert r.ci_low - 1e-6 * (1 + abs(r.difference)) <= r.difference <= r.ci_high + 1e-6 * (1 + abs(r.difference)) or \
        (r.ci_high - r.ci_low) < 1e-9 * (1 + abs(r.difference))
