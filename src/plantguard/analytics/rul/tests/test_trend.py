"""DegradationTrend on the simulator's own bearing-wear fault (pump drive-end bearing vibration, 5 s period)."""

import math
import pickle

import numpy as np
import pytest

from plantguard.analytics.rul import DegradationTrend, RulEstimate
from plantguard.sim.faults import BearingWear
from plantguard.sim.plant import pump_vibration_level
from plantguard.sim.runner import Simulator
from plantguard.timeutil import US

THRESHOLD = pump_vibration_level(1.0)  # mean vibration at full wear, when the pump trips
LEAD_S = 2 * 3600.0
START_US = 1_700_000_000 * US


def bearing_series(seed: int, *, hours: float = 10.0, onset_h: float | None = 2.0, ttf_h: float = 8.0):
    """(timestamps in s, vibration in mm/s, failure time in s or None) of the pump bearing, from the simulator."""
    # only the pump's bearing-vibration point; its signal spec is the demo plant's (matched by asset/device/point)
    point = {"id": "bearing-vibration", "name": "Drive-end bearing vibration", "unit": "mm/s", "data_type": "float",
             "period": "5s", "range": {"low": 0, "high": 50}}
    pump = {"id": "filler-feed-pump", "name": "Pump", "kind": "pump",
            "devices": [{"id": "wsn", "name": "Sensor", "protocol": "mqtt", "points": [point]}]}
    cfg = {"version": 1, "sites": [{"id": "site", "name": "Site", "timezone": "UTC", "areas": [
        {"id": "area", "name": "Area", "lines": [{"id": "line", "name": "Line", "assets": [pump]}]}]}]}
    sim = Simulator(cfg, seed=seed, start_us=START_US, speed=math.inf, clock=lambda: 2**62)
    fail = None
    if onset_h is not None:
        f = sim.inject(BearingWear(asset="filler-feed-pump", start_us=START_US + int(onset_h * 3600 * US), time_to_failure_s=ttf_h * 3600))
        fail = f.failure_us / US
    batch = sim.generate(int(hours * 3600 / 5))
    return np.asarray(batch.ts) / US, np.asarray(batch.value, dtype=float), fail


@pytest.mark.parametrize("seed", [1, 2])
def test_alert_fires_before_failure_and_interval_covers_truth(seed):
    ts, v, fail = bearing_series(seed)
    model = DegradationTrend(threshold=THRESHOLD)
    first_alert, hits, finite = None, [], 0
    for t, x in zip(ts, v):
        if t >= fail:
            break
        est = model.update(t, x)
        if est.state == "degrading" and math.isfinite(est.upper):
            hits.append(est.lower <= fail - t <= est.upper)
        if first_alert is None and est.alert(LEAD_S):
            first_alert = t
    assert model.onset_s is not None and model.onset_s < fail - 5 * 3600  # onset found early in the 8 h life
    assert first_alert is not None
    warning_h = (fail - first_alert) / 3600
    # the alert comes at about the lead time, never later, and not hours too early
    assert 2.0 <= warning_h <= 3.0, warning_h
    assert len(hits) > 3000 and np.mean(hits) >= 0.8, np.mean(hits)


def test_healthy_bearing_never_alerts():
    ts, v, _ = bearing_series(4, hours=24.0, onset_h=None)
    model = DegradationTrend(threshold=THRESHOLD)
    states = set()
    for t, x in zip(ts, v):
        est = model.update(t, x)
        states.add(est.state)
        assert not est.alert(LEAD_S)
    assert states == {"insufficient_data", "healthy"}


def test_failed_state_at_threshold():
    model = DegradationTrend(threshold=5.0, warmup_s=60, min_baseline=5)
    for i in range(20):
        model.update(i * 5.0, 1.0 + 0.01 * (i % 3))
    for i in range(20, 200):
        est = model.update(i * 5.0, 6.0)
    assert est.state == "failed" and est.median == est.lower == est.upper == 0.0 and est.alert(1.0)


def test_bad_input_is_ignored():
    model = DegradationTrend(threshold=5.0, warmup_s=10, min_baseline=3)
    assert model.update(0.0, 1.0).state == "insufficient_data"
    for t, x in [(1.0, math.nan), (2.0, math.inf), (3.0, None), (4.0, "x")]:
        assert model.update(t, x).state == "insufficient_data"
    model.update(5.0, 1.0)
    model.update(5.0, 100.0)  # duplicate timestamp
    model.update(4.0, 100.0)  # out of order
    est = model.update(20.0, 1.0)
    assert est.state == "healthy" and model.baseline[0] == 1.0
    assert model.baseline[1] == pytest.approx(0.01)  # constant signal: the standard deviation floor
    assert not est.alert(1e9)


def test_insufficient_data_never_alerts():
    est = RulEstimate.insufficient()
    assert est.state == "insufficient_data" and math.isnan(est.median) and not est.alert(math.inf)


def test_checkpoint_resumes_identically():
    ts, v, fail = bearing_series(5, hours=5.0)
    a = DegradationTrend(threshold=THRESHOLD)
    half = len(ts) // 2
    for t, x in zip(ts[:half], v[:half]):
        a.update(t, x)
    b = pickle.loads(pickle.dumps(a))
    for t, x in zip(ts[half:], v[half:]):
        ea, eb = a.update(t, x), b.update(t, x)
        assert ea == eb
    assert ea.state == "degrading" and math.isfinite(ea.median)
    assert repr(a.clone()) == repr(a)


def test_estimate_validation():
    with pytest.raises(ValueError):
        RulEstimate(5.0, 6.0, 7.0)
    with pytest.raises(ValueError):
        RulEstimate(5.0, 4.0, 7.0, state="broken")
    with pytest.raises(ValueError):
        DegradationTrend(threshold=1.0, level=1.5)
