"""Worked examples from the NIST/SEMATECH e-Handbook of Statistical Methods (section 6.3.2 control charts,
6.1.6 process capability) and Montgomery, Introduction to Statistical Quality Control (6th ed.), with their
published numbers (rounded as printed, hence the tolerances)."""

import numpy as np
import pytest

from plantguard.analytics.spc import (CUSUM, EWMA, IndividualsMR, XbarR, XbarS, capability, cp_interval, cpk_interval,
                                      factors, fit_individuals, fit_xbar_r, fit_xbar_s)

# NIST e-Handbook 6.3.2.2: flow rate of the first 10 batches of a new process.
NIST_FLOW = [49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1]

# NIST e-Handbook 6.3.2.4: EWMA example data (EWMA0 = 50, s = 2.0539, lambda = 0.3).
NIST_EWMA = [52.0, 47.0, 53.0, 49.3, 50.1, 47.0, 51.0, 50.1, 51.2, 50.5,
             49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1]

# NIST e-Handbook 6.3.2.3.1: tabular CUSUM example (target 325, k = 0.3175, h = 4.1959, i.e. sigma = 0.635,
# k = 0.5 sigma, h = 6.608 sigma).
NIST_CUSUM = [324.925, 324.675, 324.725, 324.350, 325.350, 325.225, 324.125, 324.525, 325.225, 324.600,
              324.625, 325.150, 328.325, 327.250, 327.825, 328.500, 326.675, 327.775, 326.875, 328.350]

# Montgomery, Example 6.1/6.3 (Table 6.3): inside diameter of forged piston rings, 25 samples of 5 (phase I).
PISTON_RINGS = np.array([
    [74.030, 74.002, 74.019, 73.992, 74.008], [73.995, 73.992, 74.001, 74.011, 74.004],
    [73.988, 74.024, 74.021, 74.005, 74.002], [74.002, 73.996, 73.993, 74.015, 74.009],
    [73.992, 74.007, 74.015, 73.989, 74.014], [74.009, 73.994, 73.997, 73.985, 73.993],
    [73.995, 74.006, 73.994, 74.000, 74.005], [73.985, 74.003, 73.993, 74.015, 73.988],
    [74.008, 73.995, 74.009, 74.005, 74.004], [73.998, 74.000, 73.990, 74.007, 73.995],
    [73.994, 73.998, 73.994, 73.995, 73.990], [74.004, 74.000, 74.007, 74.000, 73.996],
    [73.983, 74.002, 73.998, 73.997, 74.012], [74.006, 73.967, 73.994, 74.000, 73.984],
    [74.012, 74.014, 73.998, 73.999, 74.007], [74.000, 73.984, 74.005, 73.998, 73.996],
    [73.994, 74.012, 73.986, 74.005, 74.007], [74.006, 74.010, 74.018, 74.003, 74.000],
    [73.984, 74.002, 74.003, 74.005, 73.997], [74.000, 74.010, 74.013, 74.020, 74.003],
    [73.988, 74.001, 74.009, 74.005, 73.996], [74.004, 73.999, 73.990, 74.006, 74.009],
    [74.010, 73.989, 73.990, 74.009, 74.014], [74.015, 74.008, 73.993, 74.000, 74.010],
    [73.982, 73.984, 73.995, 74.017, 74.013]])


def test_constants_match_published_tables():
    """NIST e-Handbook 6.3.2 / Montgomery Appendix VI: n=2: d2 1.128, D4 3.267, A2 1.880; n=5: d2 2.326,
    c4 0.9400, A2 0.577, A3 1.427, B4 2.089, D4 2.114; n=10: c4 0.9727, B3 0.284, B4 1.716, D3 0.223, D4 1.777."""
    f2, f5, f10 = factors(2), factors(5), factors(10)
    assert (f2.d2, f2.D4, f2.A2) == pytest.approx((1.128, 3.267, 1.880), abs=6e-4)
    assert (f5.d2, f5.c4, f5.A2, f5.A3, f5.B4, f5.D4) == pytest.approx((2.326, 0.9400, 0.577, 1.427, 2.089, 2.114),
                                                                       abs=6e-4)
    assert (f10.c4, f10.B3, f10.B4, f10.D3, f10.D4) == pytest.approx((0.9727, 0.284, 1.716, 0.223, 1.777), abs=6e-4)
    assert f5.B3 == f5.D3 == 0.0


def test_individuals_chart_nist_6_3_2_2():
    """NIST 6.3.2.2: x-bar = 50.81, MR-bar = 1.8778, UCL = 55.80, LCL = 45.82, MR chart UCL = 6.13."""
    lim = fit_individuals(NIST_FLOW)
    assert lim.center == pytest.approx(50.81, abs=1e-9)
    assert lim.spread_center == pytest.approx(1.8778, abs=1e-4)
    assert (lim.ucl, lim.lcl) == pytest.approx((55.80, 45.82), abs=0.005)
    assert lim.spread_ucl == pytest.approx(6.13, abs=0.01)
    assert lim.removed == () and lim.n_used == 10
    # the same limits from the streaming chart's auto baseline
    chart = IndividualsMR(baseline=10)
    states = [chart.update(x).state for x in NIST_FLOW]
    assert states == ["insufficient_data"] * 10
    assert chart.limits.center == lim.center and chart.limits.sigma == lim.sigma


def test_ewma_chart_nist_6_3_2_4():
    """NIST 6.3.2.4: EWMA0 = 50, s = 2.0539, lambda = 0.3: UCL = 52.5884, LCL = 47.4115; the EWMA series starts
    50.60, 49.52, 50.56 and ends 51.23, 51.94, 51.99; no point is beyond the limits."""
    chart = EWMA(lam=0.3, L=3.0, center=50.0, sigma=2.0539)
    res = [chart.update(x) for x in NIST_EWMA]
    assert res[0].detail["ucl"] == pytest.approx(52.5884, abs=2e-4)
    assert res[0].detail["lcl"] == pytest.approx(47.4115, abs=2e-4)
    z = [r.value for r in res]
    assert z[:3] == pytest.approx([50.60, 49.52, 50.56], abs=0.005)
    assert z[-3:] == pytest.approx([51.23, 51.94, 51.99], abs=0.005)
    assert all(r.state == "in_control" for r in res)


def test_cusum_nist_6_3_2_3_1():
    """NIST 6.3.2.3.1 tabular CUSUM (target 325, k = 0.3175, h = 4.1959): the upper sum is 0 until sample 5
    (0.03), then 3.01 at sample 13, 4.94 at sample 14 (first out-of-control signal) ... 19.04 at sample 20;
    the lower sum peaks at 0.72 (sample 8)."""
    sigma = 0.635
    chart = CUSUM(k=0.3175 / sigma, h=4.1959 / sigma, center=325.0, sigma=sigma)
    res = [chart.update(x) for x in NIST_CUSUM]
    upper = [r.detail["upper"] * sigma for r in res]
    lower = [r.detail["lower"] * sigma for r in res]
    assert upper[4] == pytest.approx(0.03, abs=0.006)
    assert upper[12:] == pytest.approx([3.01, 4.94, 7.45, 10.63, 11.99, 14.44, 16.00, 19.04], abs=0.015)
    assert max(lower) == pytest.approx(0.72, abs=0.006) and int(np.argmax(lower)) == 7
    signals = [i + 1 for i, r in enumerate(res) if r.violations]
    assert signals == list(range(14, 21))
    assert all(v.chart == "cusum_upper" for r in res for v in r.violations)


def test_xbar_r_montgomery_piston_rings():
    """Montgomery Example 6.1 (piston rings, n = 5): x-double-bar = 74.001, R-bar = 0.023; X-bar chart
    UCL = 74.014, LCL = 73.988; R chart UCL = D4 R-bar = 2.114 (0.023) = 0.049, LCL = 0; no sample out of
    control in phase I. The book rounds R-bar (0.02276) to 0.023 before multiplying, so the R chart UCL is
    checked from the rounded value and against D4 * R-bar unrounded."""
    lim = fit_xbar_r(PISTON_RINGS)
    assert lim.center == pytest.approx(74.001, abs=6e-4)
    assert lim.spread_center == pytest.approx(0.023, abs=6e-4)
    assert (lim.ucl, lim.lcl) == pytest.approx((74.014, 73.988), abs=6e-4)
    assert round(factors(5).D4 * 0.023, 3) == 0.049
    assert lim.spread_ucl == pytest.approx(factors(5).D4 * lim.spread_center) and lim.spread_lcl == 0.0
    assert lim.removed == () and lim.n_used == 25
    chart = XbarR(subgroup_size=5, baseline=25)
    for row in PISTON_RINGS:
        for x in row:
            chart.update(x)
    assert chart.limits == lim


def test_xbar_s_montgomery_piston_rings():
    """Montgomery Example 6.3 (same data, X-bar and S charts, A3 = 1.427, B3 = 0, B4 = 2.089): X-bar chart
    UCL = 74.014, LCL = 73.988, as with R; S chart LCL = 0 and UCL = B4 S-bar."""
    lim = fit_xbar_s(PISTON_RINGS)
    assert (lim.ucl, lim.lcl) == pytest.approx((74.014, 73.988), abs=6e-4)
    assert lim.spread_ucl == pytest.approx(2.089 * lim.spread_center, rel=1e-3) and lim.spread_lcl == 0.0
    assert lim.removed == ()
    chart = XbarS(subgroup_size=5, baseline=25)
    for row in PISTON_RINGS:
        chart.update_subgroup(row)
    assert chart.limits == lim
    # phase II: Montgomery's samples 37-40 show the upward shift; a far-off subgroup is flagged by rule 1
    r = chart.update_subgroup([74.035, 74.040, 74.045, 74.030, 74.038])
    assert r.state == "out_of_control" and r.violations[0].rule == 1


def test_capability_nist_6_1_6():
    """NIST 6.1.6: USL = 20, LSL = 8, mean 16, sigma 2 give Cp = 1.0, Cpu = 0.6667, Cpl = 1.3333,
    Cpk = 0.6667."""
    values = [14.0, 18.0]    # mean 16, sample std 2.828: sigma given below as the handbook's 2
    c = capability(values, lsl=8, usl=20, sigma_within=2.0)
    assert c.cp == pytest.approx(1.0)
    assert (c.cpu, c.cpl, c.cpk) == pytest.approx((0.6667, 1.3333, 0.6667), abs=1e-4)


def test_capability_intervals_montgomery():
    """Montgomery Example 8.5: n = 20, s = 1.75, specs 38..62: Cp-hat = 2.29, 95% interval 1.57 <= Cp <= 3.01.
    Example 8.6: n = 20, Cpk-hat = 1.33: 95% interval 0.88 <= Cpk <= 1.78."""
    ci = cp_interval(24 / (6 * 1.75), 20, 0.95)
    assert (ci.low, ci.high) == pytest.approx((1.57, 3.01), abs=0.01)
    ki = cpk_interval(1.33, 20, 0.95)
    assert (ki.low, ki.high) == pytest.approx((0.88, 1.78), abs=0.005)


def test_capability_piston_rings_montgomery():
    """Montgomery 6.2.5: piston rings with specs 74.000 +/- 0.05 and sigma-hat = R-bar / d2 = 0.023 / 2.326
    = 0.0099 give PCR (Cp) = 1.68. The book's sigma comes from R-bar rounded to 0.023; unrounded
    (0.02276 / 2.326 = 0.00979) Cp is 1.70."""
    book = capability(PISTON_RINGS, lsl=73.95, usl=74.05, sigma_within=0.0099)
    assert book.cp == pytest.approx(1.68, abs=0.005)
    c = capability(PISTON_RINGS, lsl=73.95, usl=74.05, subgroup_size=5)
    assert c.sigma_within == pytest.approx(0.02276 / 2.326, rel=1e-3)
    assert c.cp_ci.low < c.cp < c.cp_ci.high and c.ppk_ci.low < c.ppk < c.ppk_ci.high
