"""/api/continuity and the continuity page as each role, and with hostile input: every refusal is a 4xx with its
reason, nothing is changed half-way, and reads write nothing."""

import pytest
from fastapi.testclient import TestClient

from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.continuity.service import Signal
from plantguard.runtime import Platform
from plantguard.sim.plant import PUMP, demo_config
from plantguard.testing.auth import auth_headers

J = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    p = Platform(parse_config(demo_config(str(tmp_path_factory.mktemp("c") / "d")))).start()
    yield p
    p.stop()


def client(p, role):
    return TestClient(create_app(p.services), base_url="http://127.0.0.1", headers={**J, **auth_headers(p, role)})


def test_services_what_if_and_estimates(platform):
    with client(platform, "viewer") as c:
        svcs = c.get("/api/continuity/services").json()
        assert {s["id"] for s in svcs} == {"line1-output", "order-fulfilment", "condition-monitoring"}
        assert all(s["status"] == "ok" for s in svcs)
        r = c.post("/api/continuity/what-if", json={"nodes": ["cell-network"]}).json()
        cm = next(s for s in r["services"] if s["id"] == "condition-monitoring")
        assert cm["down_at_s"] == 4 * 3600 and cm["status_now"] == "degraded"   # the gateway buffers 4 h
        e = c.get("/api/continuity/services/line1-output/estimates").json()
        assert e["estimated_rto_s"] > e["rto_s"] and e["rto_path"][0] == "line1-output"
        assert c.get("/api/continuity/incidents/metrics").status_code == 200
        assert c.get("/continuity").status_code == 200


def test_hostile_input_is_refused_with_its_reason(platform):
    with client(platform, "admin") as c:
        assert c.post("/api/continuity/what-if", json={"nodes": []}).status_code == 422
        assert c.post("/api/continuity/what-if", json={"nodes": ["x" * 301]}).status_code == 422
        assert c.post("/api/continuity/what-if", json={"nodes": ["nope"]}).status_code == 404
        assert c.post("/api/continuity/what-if", json={"nodes": ["pump"], "at_s": {"pump": 1e300}}).status_code == 422
        assert c.post("/api/continuity/what-if", content=b"\xff\xfe", headers={"content-type": "application/json"}).status_code in (400, 422)
        assert c.post("/api/continuity/what-if", content=b"nodes=x", headers={"content-type": "text/plain"}).status_code in (415, 422)
        assert c.get("/api/continuity/incidents/0").status_code == 422
        assert c.get("/api/continuity/incidents/99999").status_code == 404
        assert c.get("/api/continuity/incidents/" + "9" * 40).status_code == 422
        assert c.post("/api/continuity/incidents/1", json={"action": "explode"}).status_code == 422
        assert c.post("/api/continuity/runs", json={"playbook": "nope"}).status_code == 404
        assert c.get("/api/continuity/services/nope/estimates").status_code == 404
        before = c.get("/api/continuity/graph").json()
        cyc = {"services": [{"id": "s", "depends_on": ["a"], "mtpd": "1h", "rto": "30m"}],
               "nodes": [{"id": "a", "depends_on": ["b"], "kind": "device"}, {"id": "b", "depends_on": ["a"]}]}
        r = c.put("/api/continuity/graph", json=cyc)
        assert r.status_code == 422 and "cycle: a -> b -> a" in r.text and "continuity.nodes[1].depends_on[0]" in r.text
        dangling = {"services": [{"id": "s", "depends_on": ["ghost"], "mtpd": "1h", "rto": "30m"}], "nodes": []}
        r = c.put("/api/continuity/graph", json=dangling)
        assert r.status_code == 422 and "continuity.services[0].depends_on[0]" in r.text
        r = c.put("/api/continuity/graph", json={"services": [{"id": "s", "mtpd": "1h", "rto": "2h"}]})
        assert r.status_code == 422 and "within the mtpd" in r.text
        assert c.put("/api/continuity/graph", json={"playbooks": []}).status_code == 422
        r = c.put("/api/continuity/graph", json={"services": [{"id": "s", "depends_on": ["pump"], "mtpd": "8h", "rto": "1h", "mbco": "NaN"}]})
        assert r.status_code == 422 and '"continuity.services[0].mbco"' in r.text   # the platform's field-path form
        assert c.get("/api/continuity/graph").json() == before      # nothing changed


def test_roles_apply_and_a_playbook_waits_for_the_right_approver(platform):
    svc = platform.services.continuity
    svc.offer(Signal("predictive", f"{PUMP}:RUL", PUMP, True, platform.clock(), "RUL", hours=5.0))
    svc.drain()
    inc = next(i for i in svc.incidents(open_only=True) if i.root == "pump")
    run = next(r for r in svc.runs() if r.incident_id == inc.id)
    svc.runner.wait(run.id, 0.3)
    with client(platform, "viewer") as v:
        assert v.post(f"/api/continuity/incidents/{inc.id}", json={"action": "acknowledge"}).status_code == 403
        assert v.put("/api/continuity/graph", json={"services": [], "nodes": []}).status_code == 403
    with client(platform, "operator") as o:
        r = o.post(f"/api/continuity/incidents/{inc.id}", json={"action": "acknowledge"})
        assert r.status_code == 200 and r.json()["state"] == "acknowledged"
        assert o.post(f"/api/continuity/runs/{run.id}/steps/notify-maintenance", json={"approve": True}).status_code == 403
    with client(platform, "engineer") as e:
        assert e.put("/api/continuity/graph", json={"services": [], "nodes": []}).status_code == 403   # admins edit the graph
        r = e.post(f"/api/continuity/runs/{run.id}/steps/notify-maintenance", json={"approve": True})
        assert r.status_code == 200
        assert e.post(f"/api/continuity/runs/{run.id}/steps/notify-maintenance", json={"approve": True}).status_code in (400, 409)
    done = svc.runner.wait(run.id, 30)
    # no SMTP server in this configuration: the notify step fails, recorded, and nothing after it ran
    assert done.state == "failed" and done.steps[0].state == "failed" and done.steps[1].state == "pending"
    entries = [e.action for e in platform.services.audit.entries(0, 10_000)]
    assert "playbook.step_approved" in entries and "playbook.step_failed" in entries and "incident.acknowledge" in entries
