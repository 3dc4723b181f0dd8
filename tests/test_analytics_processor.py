"""The analytics processor inside a real Platform (embedded store): SPC, univariate and multivariate anomaly
detection configured in the plant model, results stored and queryable, alarms raised through the ISA-18.2
engine, checkpoints surviving a restart, shadow devices never alarming."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.errors import ConfigError
from plantguard.plant_analytics.processor import Thinner
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict, tag

NOW = 1_795_251_600_000_000  # 2026-11-21T09:00Z
S = 1_000_000


class Clock:
    def __init__(self, t: int = NOW) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def _points(d):
    return d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]


def cfg_dict(data_dir, *, mode="live", spc=None, anomaly=None, asset=None):
    d = plant_dict(4, data_dir=str(data_dir), alarms=False)
    pts = _points(d)
    pts[0]["analytics"] = {"spc": spc or {"baseline": 50, "priority": "medium"}}
    pts[1]["analytics"] = {"anomaly": anomaly or {"detector": "robust_z", "threshold": 0.9, "params": {"persistence": 2}}}
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["mode"] = mode
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["analytics"] = asset or {
        "anomaly": {"detector": "mahalanobis", "points": ["plc1/p2", "plc1/p3"], "threshold": 0.99,
                    "params": {"warmup": 100}}}
    return d


def feed(p: Platform, clock: Clock, start_s: int, n: int, values: dict[int, np.ndarray]) -> None:
    """n seconds of readings of the given points, one batch per 10 s (as a live source would deliver them)."""
    for lo in range(0, n, 10):
        hi = min(n, lo + 10)
        tags, ts, vals = [], [], []
        for i, arr in values.items():
            for k in range(lo, hi):
                tags.append(tag(i))
                ts.append(NOW + (start_s + k) * S)
                vals.append(float(arr[k]))
        clock.t = NOW + (start_s + hi) * S
        p.pipeline.process_now(RawBatch.build(tags, ts, vals))


def normal(n, seed, loc=50.0, sd=1.0):
    return np.random.default_rng(seed).normal(loc, sd, n)


def correlated(n, seed):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, n)
    return 20 + 2 * base + rng.normal(0, 0.1, n), 10 + base + rng.normal(0, 0.05, n)


def test_spc_anomaly_and_multivariate_end_to_end(tmp_path):
    clock = Clock()
    p = Platform(parse_config(cfg_dict(tmp_path)), clock=clock)
    p2, p3 = correlated(600, 3)
    x0 = normal(600, 1)
    x0[400:] += 6.0  # a shift of 6 sigma after the baseline
    x1 = normal(600, 2, loc=10, sd=0.5)
    x1[500] = 40.0  # spikes
    x1[501] = 41.0
    p3b = p3.copy()
    p3b[450:470] = 10 + (p2[450:470] - 20) / 2 * -1  # the correlation flips for 20 s
    feed(p, clock, 0, 600, {0: x0, 1: x1, 2: p2, 3: p3b})

    # SPC: limits from the first 50 readings, violations after the shift, alarm raised
    st = p.store.analytics_states("spc/")[f"spc/{tag(0)}"]
    assert st["limits"]["n_used"] <= 50 and abs(st["limits"]["center"] - 50) < 1
    ev = p.store.analytics_events(kind="spc", key=f"spc/{tag(0)}", limit=10_000)
    assert {e.rule for e in ev if e.ts >= NOW + 400 * S} >= {"nelson-1", "nelson-2", "ewma", "cusum_upper"}
    rec = p.services.alarms.engine.get(f"{tag(0)}:SPC")
    assert rec.active and rec.state == "unacknowledged" and rec.priority == "medium" and "SPC" in rec.message
    # in control before the shift: isolated violations are recorded as events but raise no alarm
    raised = [e.at for e in p.store.alarm_events(f"{tag(0)}:SPC") if e.event == "raised"]
    assert raised and min(raised) >= NOW + 400 * S
    ewma = p.store.analytics_series(f"ewma/{tag(0)}", NOW, NOW + 700 * S)
    assert 50 <= len(ewma.ts) <= 70  # thinned to one row per 10 s

    # robust z: the spike pair is an anomaly, both ends recorded, alarm raised then returned
    ev1 = p.store.analytics_events(kind="anomaly", key=f"anomaly/{tag(1)}")
    rules = [(e.rule, (e.ts - NOW) // S) for e in reversed(ev1)]
    assert ("anomaly-start", 501) in rules and any(r == "anomaly-end" and t > 501 for r, t in rules)
    r1 = p.services.alarms.engine.get(f"{tag(1)}:ANOMALY")
    assert not r1.active and r1.state == "returned_to_normal"
    sc = p.store.analytics_series(f"anomaly/{tag(1)}", NOW, NOW + 700 * S)
    assert sc.value.max() >= 0.9 and np.median(sc.value) < 0.9

    # multivariate: the broken correlation is found on the asset, not before it
    key = "s1/a1/l1/pump1"
    ev2 = p.store.analytics_events(kind="anomaly", key=f"anomaly/{key}")
    starts = [(e.ts - NOW) // S for e in ev2 if e.rule == "anomaly-start" and e.key == f"anomaly/{key}"]
    assert starts and all(450 <= t < 480 for t in starts), starts
    assert "features" in ev2[-1].detail

    live = p.services.analytics.processor.live()
    assert live["spc"][tag(0)]["status"] in ("out_of_control", "in_control")
    assert live["assets"][key]["anomaly"]["warm"]
    p.stop()


def test_checkpoint_restores_learned_state(tmp_path):
    clock = Clock()
    cfg = parse_config(cfg_dict(tmp_path))
    p = Platform(cfg, clock=clock)
    feed(p, clock, 0, 100, {0: normal(100, 5), 1: normal(100, 6)})
    limits = p.services.analytics.processor.live()["spc"][tag(0)]["limits"]
    p.stop()  # close() saves a checkpoint
    p = Platform(cfg, clock=clock)
    live = p.services.analytics.processor.live()
    assert live["spc"][tag(0)]["limits"] == limits  # not collecting a baseline again
    assert live["anomaly"][tag(1)]["warm"]
    p.stop()


def test_changed_settings_relearn_only_that_key(tmp_path):
    clock = Clock()
    d = cfg_dict(tmp_path)
    p = Platform(parse_config(d), clock=clock)
    feed(p, clock, 0, 100, {0: normal(100, 5), 1: normal(100, 6)})
    _points(d)[0]["analytics"]["spc"]["baseline"] = 80
    p.replace_model(d)
    live = p.services.analytics.processor.live()
    assert live["spc"][tag(0)]["status"] == "insufficient_data"
    assert live["anomaly"][tag(1)]["warm"]
    p.stop()


def test_shadow_device_analytics_are_stored_but_never_alarm(tmp_path):
    clock = Clock()
    p = Platform(parse_config(cfg_dict(tmp_path, mode="shadow")), clock=clock)
    x0 = normal(200, 1)
    x0[100:] += 8
    feed(p, clock, 0, 200, {0: x0, 1: normal(200, 2)})
    assert p.store.analytics_events(kind="spc")
    assert not [a for a in p.services.alarms.engine.list() if a.condition in ("SPC", "ANOMALY", "RUL")]
    p.stop()


def test_bad_quality_is_not_analysed(tmp_path):
    clock = Clock()
    p = Platform(parse_config(cfg_dict(tmp_path)), clock=clock)
    n = 60
    b = RawBatch.build([tag(0)] * n, [NOW + k * S for k in range(n)], [50.0] * n)
    b.quality[:] = 2
    clock.t = NOW + n * S
    p.pipeline.process_now(b)
    assert p.services.analytics.processor.live()["spc"][tag(0)]["n_points"] == 0
    p.stop()


def test_config_errors_name_the_field(tmp_path):
    d = cfg_dict(tmp_path, asset={"anomaly": {"points": ["plc1/p2", "plc1/nope"]}, "rul": {"point": "x/y", "failure_threshold": 1}},
                 spc={"center": 5.0, "lsl": 3, "usl": 2})
    _points(d)[1]["analytics"]["anomaly"]["detector"] = "mahalanobis"
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    paths = {p.path for p in e.value.problems}
    base = "sites[0].areas[0].lines[0].assets[0]"
    assert f"{base}.analytics.anomaly.points[1]" in paths
    assert f"{base}.analytics.rul.point" in paths
    assert f"{base}.devices[0].points[0].analytics.spc" in paths
    assert f"{base}.devices[0].points[0].analytics.spc.usl" in paths
    assert f"{base}.devices[0].points[1].analytics.anomaly.detector" in paths


def test_thinner_keeps_the_highest_of_each_interval_across_batches():
    th = Thinner(10 * S)
    s = np.array([0, 0, 1, 0], np.int64)
    t = np.array([1, 2, 3, 12], np.int64) * S
    v = np.array([0.1, 0.7, 0.2, 0.3])
    out = th.feed(s, t, v)
    assert list(zip(*(a.tolist() for a in out))) == [(0, 2 * S, 0.7)]
    out = th.feed(np.array([0, 1], np.int64), np.array([15, 25], np.int64) * S, np.array([0.9, 0.4]))
    assert sorted(zip(*(a.tolist() for a in out))) == [(1, 3 * S, 0.2)]
    out = th.flush()
    assert sorted(zip(*(a.tolist() for a in out))) == [(0, 15 * S, 0.9), (1, 25 * S, 0.4)]
    # NaN is never stored
    assert len(th.feed(np.array([0], np.int64), np.array([40 * S]), np.array([np.nan]))[0]) == 0


# -- the operator's view: status that cannot contradict violations, gating by machine state ------------------------
def gated_dict(data_dir):
    """p0 under SPC only while the asset runs; p3 is the asset's machine state (1 running, 0 stopped)."""
    d = plant_dict(4, data_dir=str(data_dir), alarms=False)
    pts = _points(d)
    pts[0]["analytics"] = {"spc": {"baseline": 50, "lsl": 40, "usl": 60, "alarm": False}, "only_when": "running"}
    pts[3].update({"id": "state", "data_type": "state", "states": {0: "stopped", 1: "running"}, "range": None})
    del pts[3]["range"]
    pts.append({"id": "good-count", "data_type": "int"})
    d["sites"][0]["areas"][0]["lines"][0]["oee"] = {"ideal_rate_per_h": 3600, "state_categories": {0: "planned_stop", 1: "running"}}
    return d


def test_spc_status_never_says_in_control_next_to_recent_violations(tmp_path):
    clock = Clock()
    p = Platform(parse_config(cfg_dict(tmp_path, spc={"baseline": 50, "alarm": False})), clock=clock)
    x0 = normal(200, 1)
    x0[186] = 58.0  # one reading 8 sigma out, then 13 ordinary ones: EWMA and CUSUM are back inside by the end
    feed(p, clock, 0, 200, {0: x0})
    live = p.services.analytics.live()["spc"][tag(0)]
    assert live["last_reading_status"] == "in_control", live  # the last reading alone is inside the limits
    assert live["status"] == "out_of_control" and live["rules_fired_recently"] > 0
    p.stop()


def test_spc_and_capability_run_only_while_the_machine_runs(tmp_path):
    clock = Clock()
    p = Platform(parse_config(gated_dict(tmp_path)), clock=clock)
    state_tag = tag(0).rsplit("/", 1)[0] + "/state"
    x0 = normal(400, 4)
    x0[200:300] = 0.0  # the machine is stopped: the torque reads 0
    state = np.ones(400)
    state[200:300] = 0
    for lo in range(0, 400, 10):
        tags = [tag(0)] * 10 + [state_tag] * 10
        ts = [NOW + (lo + k) * S for k in range(10)] * 2
        clock.t = NOW + (lo + 10) * S
        p.pipeline.process_now(RawBatch.build(tags, ts, list(x0[lo:lo + 10]) + list(state[lo:lo + 10])))
    assert p.services.analytics.processor.stats["gated"] == 100
    events = p.services.analytics.events(kind="spc", limit=1000)
    # the stopped stretch (readings of 0, far outside the limits) raised no violation
    assert not [e for e in events if NOW + 200 * S <= e.ts < NOW + 300 * S], [e.as_dict() for e in events][:3]
    assert p.services.analytics.live()["spc"][tag(0)]["n_points"] == 300
    rep = p.services.analytics.spc_report(tag(0), NOW, NOW + 400 * S)
    assert rep["readings_excluded_by_state"] == 100 and rep["capability"]["n"] == 300
    assert rep["capability"]["ppk"] > 1.0  # the stopped readings do not drag the performance index down
    p.stop()


def test_only_when_needs_the_line_state(tmp_path):
    d = gated_dict(tmp_path)
    del d["sites"][0]["areas"][0]["lines"][0]["oee"]
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    assert any(pr.path.endswith("analytics.only_when") for pr in e.value.problems)


def test_the_default_wiring_raises_one_alarm_per_episode(tmp_path):
    """A point with `anomaly: {}` runs the default wiring in the bank: a persistent level shift is one episode
    (one start, one end, one ANOMALY alarm raised), the stored score series holds its onset, and the new level
    becomes normal."""
    clock = Clock()
    d = cfg_dict(tmp_path, anomaly={"alarm": True})
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0].pop("analytics")
    p = Platform(parse_config(d), clock=clock)
    x = normal(2000, 9)
    x[1200:] += 12.0
    feed(p, clock, 0, 2000, {1: x})
    ev = p.store.analytics_events(kind="anomaly", key=f"anomaly/{tag(1)}")
    starts = [(e.ts - NOW) // S for e in ev if e.rule == "anomaly-start"]
    ends = [(e.ts - NOW) // S for e in ev if e.rule == "anomaly-end"]
    assert starts == [1200] and len(ends) == 1 and ends[0] < 1800
    series = p.store.analytics_series(f"anomaly/{tag(1)}", NOW, NOW + 2000 * S)
    assert series.value.max() >= 0.9 and (series.value >= 0.9).sum() == 1  # the onset, once
    assert not p.services.analytics.processor.live()["anomaly"][tag(1)]["in_episode"]
    assert p.services.alarms.engine.get(f"{tag(1)}:ANOMALY") is not None
    p.stop()


def test_the_rul_trend_sees_only_readings_of_the_allowed_machine_state(tmp_path):
    """The condition indicator reads near 0 while the machine is stopped; with only_when on that point the
    degradation trend is fed the running readings only, exactly as if the stops had never been recorded."""
    def run(gated: bool, with_stops: bool):
        d = gated_dict(tmp_path / f"{gated}-{with_stops}")
        pts = _points(d)
        pts[0]["analytics"] = {"only_when": ["running"]} if gated else None
        if not gated:
            pts[0].pop("analytics")
        d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["analytics"] = {
            "rul": {"point": "plc1/p0", "failure_threshold": 30.0, "lead_time": "1h", "alarm": False}}
        clock = Clock()
        p = Platform(parse_config(d), clock=clock)
        state_tag = tag(0).rsplit("/", 1)[0] + "/state"
        t = np.arange(3000)
        vib = 2.0 + 0.004 * t + np.random.default_rng(5).normal(0, 0.05, 3000)
        state = np.ones(3000)
        stopped = (t % 600) >= 500
        vib[stopped] = 0.05
        state[stopped] = 0
        keep = np.ones(3000, bool) if with_stops else ~stopped
        for lo in range(0, 3000, 100):
            sel = np.flatnonzero(keep[lo:lo + 100]) + lo
            tags = [tag(0)] * len(sel) + [state_tag] * 100
            ts = [NOW + int(k) * S for k in sel] + [NOW + (lo + k) * S for k in range(100)]
            clock.t = NOW + (lo + 100) * S
            p.pipeline.process_now(RawBatch.build(tags, ts, list(vib[sel]) + list(state[lo:lo + 100])))
        key = next(iter(p.services.analytics.live()["assets"]))
        rul = p.services.analytics.live()["assets"][key]["rul"]
        p.stop()
        return rul

    gated = run(True, True)
    reference = run(False, False)  # the stops never recorded
    ungated = run(False, True)
    assert reference["median"] is not None and math.isfinite(reference["median"]), reference
    assert gated["median"] == pytest.approx(reference["median"], rel=1e-9)
    assert ungated["median"] != pytest.approx(reference["median"], rel=1e-3)
