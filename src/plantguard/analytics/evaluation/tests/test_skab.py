import math

import numpy as np
import pytest

from plantguard.analytics.evaluation.skab import (
    PROFILES, NabCounts, SkabConfig, _tanh_reward, binary_scores, evaluate_skab, format_report, load_skab,
    nab_windows)

COLS = ["Accelerometer1RMS", "Accelerometer2RMS", "Current", "Pressure", "Temperature", "Thermocouple",
        "Voltage", "Volume Flow RateRMS"]


def write_file(path, n, fault=None, labelled=True, seed=0):
    """A synthetic recording in SKAB's format; `fault` = (start, end) rows where pressure and current drop."""
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2020-03-01T10:00:00")
    head = ["datetime", *COLS] + (["anomaly", "changepoint"] if labelled else [])
    lines = [";".join(head)]
    for i in range(n):
        flow = 32 + rng.normal(0, 0.3)
        bad = fault is not None and fault[0] <= i < fault[1]
        vals = [0.03 + 0.001 * rng.normal(), 0.04 + 0.001 * rng.normal(),
                (0.8 if bad else 1.3) + 0.02 * rng.normal(), (0.5 if bad else 1.0) + 0.02 * rng.normal(),
                70 + 0.01 * i + 0.05 * rng.normal(), 25 + 0.05 * rng.normal(), 230 + rng.normal(), flow]
        row = [str(t0 + np.timedelta64(i, "s")).replace("T", " "), *(f"{v:.6g}" for v in vals)]
        if labelled:
            cp = fault is not None and i in fault
            row += ["1.0" if bad else "0.0", "1.0" if cp else "0.0"]
        lines.append(";".join(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_binary_scores_hand_computed():
    f1, far, mar = binary_scores(tp=6, tn=10, fp=2, fn=2)
    assert f1 == pytest.approx(6 / (6 + 2))
    assert far == pytest.approx(100 * 2 / 12)
    assert mar == pytest.approx(100 * 2 / 8)
    assert binary_scores(0, 10, 0, 5) == (0.0, 0.0, 100.0)


def test_nab_windows_cut_right_window():
    times = np.arange(0, 300)
    cp = np.zeros(300, bool)
    cp[[10, 40, 200]] = True
    assert nab_windows(times, cp, 60) == [(10, 70), (70, 100), (200, 260)]


def test_tanh_reward_ends_and_middle():
    a_tp, a_fp, _ = PROFILES["Standard"]
    assert _tanh_reward(0.0, a_tp, a_fp) == pytest.approx(1.0)
    assert _tanh_reward(1.0, a_tp, a_fp) == pytest.approx(-0.11)
    # the curve is symmetric: the middle earns the mean of A_tp and A_fp
    assert _tanh_reward(0.5, a_tp, a_fp) == pytest.approx((1 - 0.11) / 2, abs=3e-3)


def test_nab_perfect_null_and_hand_computed():
    wins = [(100.0, 160.0), (300.0, 360.0)]
    perfect = NabCounts()
    perfect.add(wins, np.array([100.0, 300.0]))
    assert perfect.normalised() == pytest.approx({k: 100.0 for k in PROFILES})
    null = NabCounts()
    null.add(wins, np.array([]))
    assert null.normalised() == pytest.approx({k: 0.0 for k in PROFILES})
    assert null.missed == 2
    # one detection at the start of window 1, a later second one in it (ignored), window 2 missed,
    # one detection outside every window: S = 1 - 1 - 0.11 = -0.11 (Standard)
    c = NabCounts()
    c.add(wins, np.array([100.0, 130.0, 200.0]))
    assert c.missed == 1 and c.false_positives == 1 and c.delays == [0.0]
    s_null, s_perf = -2.0, 2.0
    assert c.normalised()["Standard"] == pytest.approx(100 * (-0.11 - s_null) / (s_perf - s_null))
    assert c.normalised()["LowFP"] == pytest.approx(100 * (-0.22 - s_null) / (s_perf - s_null))
    assert c.normalised()["LowFN"] == pytest.approx(100 * (1 - 2 - 0.11 + 4) / (2 + 4))


def test_load_skab_synthetic_tree(tmp_path):
    write_file(tmp_path / "valveX" / "0.csv", 50, fault=(20, 30))
    write_file(tmp_path / "free" / "normal.csv", 40, labelled=False)
    files = load_skab(tmp_path)
    assert [f.name for f in files] == ["free/normal.csv", "valveX/0.csv"]
    free, f = files
    assert not free.labelled and f.labelled
    assert f.columns == COLS and f.X.shape == (50, 8)
    assert np.all(np.diff(f.times) == 1)
    assert int(f.anomaly.sum()) == 10 and list(np.flatnonzero(f.changepoint)) == [20, 30]


def test_evaluate_on_synthetic_faults(tmp_path):
    write_file(tmp_path / "free" / "normal.csv", 2400, labelled=False, seed=1)
    for k in range(2):
        write_file(tmp_path / "faults" / f"{k}.csv", 900, fault=(550, 750), seed=10 + k)
    cfg = SkabConfig(reference_chunk=800)
    rep = evaluate_skab(tmp_path, cfg)
    assert rep.files == 2 and rep.rows == 1000 and rep.changepoints == 4
    # smoothing (30 rows) and hysteresis (30 rows below low) keep alarms up after each recovery: the false
    # alarms are that tail (the synthetic noise sits close to the low threshold, so the tail is long)
    assert rep.f1 > 0.75 and rep.mar < 5 and rep.far < 45
    assert rep.regime is not None and rep.regime.low == pytest.approx(0.5 * rep.regime.high)
    legacy = evaluate_skab(tmp_path, SkabConfig(reference_chunk=800, outliers="t2"))
    assert legacy.regime is None and legacy.f1 > 0.8 and legacy.mar < 5 and legacy.far < 25
    assert rep.nab["Standard"] > 40
    text = format_report(rep)
    assert "400 rows" in text and "Conv-AE" in text and "MSCRED" in text
    assert not math.isnan(rep.mean_delay_s)
