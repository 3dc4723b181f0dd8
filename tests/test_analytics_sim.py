"""The analytics on the simulated bottling line: the pump bearing fault raises the predictive maintenance alert
(remaining useful life below the lead time) hours before the trip and before the vibration HI alarm; OEE and
maintenance KPIs come out of the line's state and counters; all of it through the API."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from plantguard.testing.auth import auth_headers
from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.sim.demo import DemoClock
from plantguard.sim.faults import BearingWear
from plantguard.sim.plant import LINE_PATH, PUMP, PUMP_VIBRATION, demo_config
from plantguard.sim.runner import PipelineSink, Simulator
from plantguard.timeutil import US

# The API refuses state-changing requests without a JSON content type (415); these tests send JSON bodies.
JSON_HEADERS = {"content-type": "application/json"}

T0 = 1_767_243_600 * US  # 2026-01-01T05:00:00Z
H = 3600 * US
TTF_H = 8.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """9.5 simulated hours: 1 h healthy, then the bearing wears to failure over 8 h; the pump trips."""
    d = demo_config(str(tmp_path_factory.mktemp("sim") / "data"))
    cfg = parse_config(d)
    clock = DemoClock(T0)
    platform = Platform(cfg, clock=clock).start()
    clock.pipeline = platform.pipeline
    sim = Simulator(cfg, seed=21, start_us=T0, speed=math.inf, chunk_ticks=120)
    clock.sim = sim
    fault = sim.inject(BearingWear(asset=PUMP, start_us=T0 + H, time_to_failure_s=TTF_H * 3600))
    sim.add_sink(PipelineSink(platform.pipeline, max_in_flight=1))
    sim.run(until_us=fault.failure_us + H // 2)
    yield platform, fault
    platform.stop()


def test_predictive_alert_hours_before_failure_and_before_the_hi_alarm(run):
    platform, fault = run
    rul = platform.services.alarms.engine.get(f"{PUMP}:RUL")
    hi = platform.services.alarms.engine.get(f"{PUMP_VIBRATION}:HI")
    assert rul.raised_at is not None, "no predictive alert"
    lead_h = (fault.failure_us - rul.raised_at) / H
    assert lead_h >= 3.0, f"predictive alert only {lead_h:.2f} h before the failure"
    assert rul.raised_at < hi.raised_at  # the prediction comes before the condition alarm
    ev = [e for e in platform.store.analytics_events(kind="rul", key=f"rul/{PUMP}") if e.rule == "rul-alert"]
    assert len(ev) == 1, "the predictive alert chattered"  # hysteresis: it clears only well above the lead time
    assert ev[0].detail["lower"] < 4 * 3600 <= ev[0].detail["lead_time_s"] + 1
    # the estimate series has an interval around its median while degrading
    s = platform.store.analytics_series(f"rul/{PUMP}", fault.start_us, fault.failure_us)
    assert len(s.ts) > 100 and (s.lower <= s.value).all()


def test_no_predictive_alert_while_healthy(run):
    platform, fault = run
    ev = platform.store.analytics_events(kind="rul", key=f"rul/{PUMP}", until=fault.start_us)
    assert not [e for e in ev if e.rule == "rul-alert"]


def test_oee_and_kpis_through_the_api(run):
    platform, fault = run
    with TestClient(create_app(platform.services), base_url="http://127.0.0.1", headers={**JSON_HEADERS, **auth_headers(platform)}) as c:
        start, end = T0 + H, T0 + 19 * H // 2
        r = c.get("/api/analytics/oee", params={"line": LINE_PATH, "start": start // 1000, "end": end // 1000, "by": "shift"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["counting_asset"] == "capper" and [p["label"] for p in body["periods"]][:2] == ["2026-01-01 morning", "2026-01-01 afternoon"]
        tot = body["total"]
        assert tot["status"] == "ok" and 0.5 < tot["oee"] <= 1.0
        assert abs(tot["oee"] - tot["availability"] * tot["performance"] * tot["quality"]) < 1e-9
        # the pump trip takes the whole line down: the filler records the failure in its state
        r = c.get("/api/analytics/kpi", params={"asset": f"{LINE_PATH}/filler", "start": start // 1000, "end": (fault.failure_us + H // 2) // 1000})
        assert r.status_code == 200, r.text
        m = r.json()["maintenance"]
        assert m["failures"] == 1 and m["mtbf_s"] > 0
        r = c.get("/api/analytics/rul", params={"asset": PUMP})
        assert r.status_code == 200 and r.json()["state"] in ("failed", "degrading")
        r = c.get("/api/analytics/spc", params={"point": f"{LINE_PATH}/capper/opcua/head-torque", "start": T0 // 1000, "end": end // 1000})
        assert r.status_code == 200, r.text
        spc = r.json()
        assert spc["capability"]["cpk"] > 0 and spc["limits"]["ucl"] > spc["limits"]["center"]
        r = c.get("/api/analytics/events", params={"kind": "rul", "start": T0 // 1000, "end": end // 1000 + 7200_000})
        assert r.status_code == 200 and r.json()["count"] >= 1
        assert c.get("/api/analytics/oee", params={"line": "no/such/line"}).status_code == 404
        assert c.get("/api/analytics/kpi", params={"asset": PUMP, "start": "now", "end": "now-1h"}).status_code == 400
