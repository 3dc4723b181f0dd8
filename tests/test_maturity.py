"""The maturity capability on the simulated bottling line, end to end: the OPC UA rollout's pilot runs in shadow
mode, its gate is inconclusive without data and passes on it, promotion switches the pilot live and the next
phase to shadow; a device going silent fails the critical KPI (no-go, promotion refused, an improvement action);
the alarm report finds the capper's badly set limit; assessments are reproducible and reported as HTML and PDF;
every route as each role and with hostile input."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.domain.actor import Actor
from plantguard.errors import ConfigError, Conflict, Forbidden, InvalidInput
from plantguard.runtime import Platform
from plantguard.sim.demo import DemoClock, seed_maturity
from plantguard.sim.faults import DeviceOffline
from plantguard.sim.plant import LINE_PATH, NUISANCE_ALARM, demo_config
from plantguard.sim.runner import PipelineSink, Simulator
from plantguard.testing.auth import auth_headers
from plantguard.timeutil import US

J = {"content-type": "application/json"}
T0 = 1_767_243_600 * US  # 2026-01-01T05:00:00Z
M = 60 * US
FILLER, CAPPER = f"{LINE_PATH}/filler/opcua", f"{LINE_PATH}/capper/opcua"
ENG = Actor.user("eve")


def _platform(tmp, minutes: int, faults=(), midway=None):
    cfg = parse_config(demo_config(str(tmp / "data")))
    clock = DemoClock(T0)
    p = Platform(cfg, clock=clock).start()
    clock.pipeline = p.pipeline
    seed_maturity(p)
    early = p.services.maturity.evaluate("opc-ua-integration", ENG)   # no data yet
    sim = Simulator(cfg, seed=11, start_us=T0, speed=math.inf, chunk_ticks=120)
    clock.sim = sim
    for f in faults:
        sim.inject(f)
    sim.add_sink(PipelineSink(p.pipeline, max_in_flight=1))
    if midway is not None:
        sim.run(until_us=T0 + minutes * M // 2)
        midway(p)
    sim.run(until_us=T0 + minutes * M)
    return p, early


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    def midway(p):  # an improvement action done half-way: verified by its KPI before and after
        m = p.services.maturity
        a = m.add_action(ENG, title="re-seat the capper's OPC UA cabling", practice="data",
                         kpi={"kpi": "completeness", "scope": {"devices": [CAPPER]}, "min_samples": 20})
        m.update_action(a["id"], ENG, state="done")
    p, early = _platform(tmp_path_factory.mktemp("m"), 90, midway=midway)
    yield p, early
    p.stop()


def mode(p, device):
    return p.services.model.index().device(device).device.mode


def test_the_gate_is_inconclusive_without_data_and_pauses(line):
    p, early = line
    assert early["verdict"] == "inconclusive"
    assert "too few samples" in " ".join(early["reasons"]) or "no data" in " ".join(early["reasons"])
    assert early["checks"][0]["verdict"] == "inconclusive"


def test_pilot_runs_in_shadow_then_passes_and_promotion_switches_it_live(line):
    p, _ = line
    m = p.services.maturity
    assert mode(p, FILLER) == "shadow" and mode(p, CAPPER) == "live"
    with pytest.raises(Conflict, match="inconclusive"):
        m.promote("opc-ua-integration", ENG, role="engineer")      # the last evaluation had no data
    ev = m.evaluate("opc-ua-integration", ENG)
    c = ev["checks"][0]
    assert ev["verdict"] == "go", ev["reasons"]
    assert c["kpi"] == "completeness" and c["critical"] and c["n_pilot"] >= 50 and c["n_baseline"] >= 50
    assert c["mean_pilot"] > 0.95
    r = m.promote("opc-ua-integration", ENG, role="engineer", note="pilot data complete")
    assert mode(p, FILLER) == "live" and mode(p, CAPPER) == "shadow"
    assert r["current"] == "expand" and r["phases"][0]["state"] == "done"
    assert r["promotions"][-1]["verdict"] == "go" and r["promotions"][-1]["evaluation"] == ev["id"]
    # the next phase needs an admin, and a gate of its own
    with pytest.raises(Forbidden):
        m.promote("opc-ua-integration", ENG, role="engineer")
    with pytest.raises(Conflict, match="no gate evaluation"):
        m.promote("opc-ua-integration", ENG, role="admin")
    facts = m.rollout_facts()
    assert facts["promotions"] == 1 and facts["promotions_on_go"] == 1 and facts["devices_piloted"] == 1
    acts = [e.action for e in p.services.audit.entries()]
    assert "rollout.gate" in acts and "rollout.promote" in acts and "rollout.phase_started" in acts


def test_alarm_report_finds_the_badly_set_limit(line):
    p, _ = line
    r = p.services.maturity.alarm_report(T0, T0 + 90 * M)
    all_ = r["positions"]["all"]
    assert set(r["positions"]) == {"all", "Line 1 console"}
    bad = {b["alarm"]: b["rules"] for b in all_["bad_actors"]}
    torque = NUISANCE_ALARM
    assert torque in bad and any(x.startswith("frequent") for x in bad[torque])
    assert all_["top"][0]["alarm"] == torque
    assert all_["per_10min"]["value"] > 0


def test_assessment_is_reproducible_and_reads_write_nothing(line):
    p, _ = line
    m = p.services.maturity
    store = p.store
    before = store.fetch("SELECT count(*) FROM maturity_assessments")
    at = T0 + 90 * M
    a, b = m.assess(at=at), m.assess(at=at)
    assert a == b
    assert store.fetch("SELECT count(*) FROM maturity_assessments") == before
    ev = {e["id"]: e for e in a["evidence"]}
    assert ev["data.completeness_median"]["status"] == "measured" and ev["data.completeness_median"]["value"] > 90
    assert ev["people.training_current"]["value"] == pytest.approx(100 / 3, abs=0.01)   # Omar expired, Tess missing
    assert ev["quality.alarm_rate"]["status"] == "measured"
    assert ev["predictive.lead_share"]["status"] == "missing"                         # no failure in the window
    assert a["levels"]["people"]["level"] == 1 and a["levels"]["people"]["target"] == 3
    html = m.report(fmt="html").decode()
    assert html.startswith("<!doctype html>") and "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "ev-data.completeness_median" in html
    pdf = m.report(fmt="pdf")
    assert pdf[:5] == b"%PDF-" and len(pdf) > 2000


def test_attestations_training_and_actions(line):
    p, _ = line
    m = p.services.maturity
    now = p.clock()
    with pytest.raises(InvalidInput, match="signed by a named person"):
        m.attest("data.ownership", "owners named", Actor.system("anonymous"))
    with pytest.raises(InvalidInput, match="in the past"):
        m.attest("data.ownership", "owners named", ENG, expires_at=now - 1)
    with pytest.raises(InvalidInput, match="shown by evidence"):
        m.attest("data.completeness", "it is complete", ENG)
    with pytest.raises(InvalidInput, match="unknown indicator"):
        m.attest("nope", "x", ENG)
    a = m.attest("data.ownership", "each source has an owner in the register", ENG, expires_at=now + 86400 * US)
    assert a["signer"] == "eve" and m.attestations()[-1]["valid"]
    with pytest.raises(InvalidInput, match="not in the skills matrix"):
        m.record_training("Nobody", "alarm response", ENG)
    with pytest.raises(InvalidInput, match="unknown skill"):
        m.record_training("Tess Technician", "juggling", ENG)
    m.record_training("Tess Technician", "lockout-tagout", ENG)
    st = {x["name"]: x for x in m.training_status()["people"]}
    assert st["Tess Technician"]["current"] and not st["Omar Operator"]["current"]
    act = m.add_action(ENG, title="tune the capper torque limit", practice="quality",
                       kpi={"kpi": "alarm_rate", "scope": {"devices": [CAPPER]}})
    with pytest.raises(Conflict, match="once it is done"):
        m.verify_action(act["id"], ENG)
    m.update_action(act["id"], ENG, state="done")
    with pytest.raises(Conflict, match="done just now"):
        m.verify_action(act["id"], ENG)
    # the action done half-way: the capper's completeness was already 100 %, so it did not improve it
    half = next(x for x in m.actions() if x["title"].startswith("re-seat"))
    v = m.verify_action(half["id"], ENG, bucket_s=60)
    assert v["verification"]["verdict"] == "not_improved" and v["state"] == "verified", v["verification"]
    assert v["verification"]["result"]["n_pilot"] >= 40 and v["verification"]["result"]["n_baseline"] >= 40
    made = m.sync_actions(ENG, alarm_report=m.alarm_report(T0, T0 + 90 * M))
    assert any(x["source"] == "bad_actor" for x in made)
    assert not m.sync_actions(ENG, alarm_report=m.alarm_report(T0, T0 + 90 * M))   # each once


def test_a_silent_pilot_device_fails_the_critical_kpi(tmp_path):
    p, _ = _platform(tmp_path, 90, faults=[DeviceOffline(device=FILLER, start_us=T0 + 20 * M, end_us=T0 + 60 * M)])
    try:
        m = p.services.maturity
        ev = m.evaluate("opc-ua-integration", ENG)
        assert ev["verdict"] == "no_go", ev["reasons"]
        assert "critical KPI completeness failed" in ev["reasons"][0]
        with pytest.raises(Conflict, match="no_go"):
            m.promote("opc-ua-integration", ENG, role="admin")
        assert mode(p, FILLER) == "shadow"
        assert m.rollout("opc-ua-integration")["status"] == "paused"
        made = m.sync_actions(ENG)
        assert [x["source"] for x in made] == ["gate"]
    finally:
        p.stop()


def test_bad_configuration_is_refused_by_field_path(tmp_path):
    d = demo_config(str(tmp_path / "d"))
    mat = d["maturity"]
    mat["targets"] = [{"site": "*", "levels": {"quality": 3, "astrology": 2, "data": 9}}]
    mat["rollouts"][0]["phases"][1]["scope"] = {"devices": [FILLER]}               # overlaps the pilot
    mat["rollouts"][0]["phases"][0]["gate"]["kpis"].append({"kpi": "happiness"})
    mat["training"]["people"].append({"name": "Zed", "role": "wizard"})
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    text = str(e.value)
    for path in ("maturity.targets[0].levels.astrology", "maturity.targets[0].levels.data",
                 "maturity.rollouts[0].phases[1].scope", "maturity.rollouts[0].phases[0].gate.kpis[1].kpi",
                 "maturity.training.people[3].role"):
        assert path in text, (path, text)
    assert "scopes overlap" in text and "unknown KPI 'happiness'" in text


def client(p, role):
    return TestClient(create_app(p.services), base_url="http://127.0.0.1", headers={**J, **auth_headers(p, role)})


def test_routes_by_role_and_hostile_input(line):
    p, _ = line
    with client(p, "viewer") as v:
        for url in ("/api/maturity", "/api/maturity/model", "/api/maturity/evidence", "/api/maturity/alarm-performance",
                    "/api/maturity/rollouts", "/api/maturity/actions", "/api/maturity/training", "/api/maturity/attestations",
                    "/api/maturity/assessments", "/maturity", "/maturity/alarms", "/maturity/rollouts", "/maturity/improvement",
                    "/maturity/skills"):
            assert v.get(url).status_code == 200, url
        assert v.post("/api/maturity/assessments", json={}).status_code == 403
        assert v.post("/api/maturity/actions", json={"title": "x"}).status_code == 403
        assert v.post("/api/maturity/rollouts/opc-ua-integration/evaluate").status_code == 403
        r = v.get("/api/maturity/report?format=pdf")
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    with client(p, "operator") as o:
        assert o.post("/api/maturity/actions", json={"title": "clean the strainer"}).status_code == 201
        assert o.post("/api/maturity/training", json={"person": "Ann Operator", "skill": "alarm response"}).status_code == 403
    with client(p, "admin") as c:
        bad = [  # 400: the service refused it, with its reason; 422: the request's shape is wrong
               ("get", "/api/maturity/alarm-performance?start=garbage", None, 400),
               ("get", "/api/maturity/alarm-performance?start=now-1d&end=now-2d", None, 400),
               ("get", "/api/maturity/alarm-performance?start=now-5000d", None, 400),
               ("get", "/api/maturity/alarm-performance?position=nobody", None, 404),
               ("get", "/api/maturity/report?format=docx", None, 422),
               ("get", "/api/maturity/assessments/0", None, 422), ("get", "/api/maturity/assessments/999999", None, 404),
               ("get", "/api/maturity/rollouts/nope", None, 404), ("post", "/api/maturity/rollouts/nope/evaluate", {}, 404),
               ("get", "/api/maturity?site=nowhere", None, 404),
               ("post", "/api/maturity/attestations", {"indicator": "data.ownership", "statement": "x", "expires_at": "now-1d"}, 400),
               ("post", "/api/maturity/attestations", {"indicator": "data.ownership", "statement": ""}, 422),
               ("post", "/api/maturity/attestations", {"indicator": "data.ownership", "statement": "x", "expires_at": "now+9999d"}, 400),
               ("post", "/api/maturity/actions", {"title": "x" * 301}, 422),
               ("post", "/api/maturity/actions", {"title": "x", "practice": "astrology"}, 400),
               ("post", "/api/maturity/actions", {"title": "x", "kpi": {"kpi": "happiness"}}, 400),
               ("post", "/api/maturity/actions", {"title": "x", "kpi": {"kpi": "alarm_rate", "scope": {"devices": ["no/such"]}}}, 400),
               ("patch", "/api/maturity/actions/999999", {"state": "done"}, 404),
               ("patch", "/api/maturity/actions/1", {"state": "verified"}, 422),
               ("post", "/api/maturity/training", {"person": "Ann Operator", "skill": "alarm response", "completed_at": "now+1d"}, 400),
               ("post", "/api/maturity/actions/1/verify", {"bucket_s": 1e300}, 422)]
        for method, url, body, want in bad:
            r = getattr(c, method)(url, **({"json": body} if body is not None else {}))
            assert r.status_code == want, (method, url, body, r.status_code, r.text)
        assert c.post("/api/maturity/actions", content=b"\xff\xfe", headers={"content-type": "application/json"}).status_code in (400, 422)
        assert c.post("/api/maturity/actions", content=b"title=x", headers={"content-type": "text/plain"}).status_code in (415, 422)
        r = c.post("/api/maturity/assessments", json={})
        assert r.status_code == 201 and r.json()["id"] >= 1
        assert c.get(f"/api/maturity/assessments/{r.json()['id']}").json()["levels"] == r.json()["levels"]
