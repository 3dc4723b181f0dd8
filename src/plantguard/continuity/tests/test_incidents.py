"""Incidents: correlation by shared root, MTTD/MTTA/MTTM/MTTR on fixtures, the service's flood handling, email
notification against a real SMTP server."""

import socket

import pytest

from plantguard.continuity.config import ContinuitySettings
from plantguard.continuity.graph import Graph
from plantguard.continuity.incidents import Correlator, Incident, metrics

S = 1_000_000


def graph(n_dev=20):
    nodes = [{"id": "platform", "kind": "platform"}, {"id": "gw", "kind": "gateway", "depends_on": ["platform"]},
             {"id": "gw2", "kind": "gateway", "depends_on": ["platform"]}]
    nodes += [{"id": f"d{i}", "kind": "device", "depends_on": ["gw"]} for i in range(n_dev)]
    nodes += [{"id": f"e{i}", "kind": "device", "depends_on": ["gw2"]} for i in range(n_dev)]
    svc = [{"id": "out", "depends_on": [f"d{i}" for i in range(n_dev)] + [f"e{i}" for i in range(n_dev)], "mtpd": "8h", "rto": "1h"}]
    return Graph.build(ContinuitySettings.model_validate({"services": svc, "nodes": nodes}))


def test_devices_behind_one_gateway_become_one_root():
    g = graph()
    c = Correlator(g, root_share=0.5)
    roots = [g.ids[c.signal("outage", g.index[f"d{i}"], True)[0]] for i in range(20)]
    assert roots[0] == "d0"                       # one silent device is its own incident
    assert roots[-1] == "gw"                      # half of them and more: the gateway
    moved = set()
    for i in range(20):
        moved.add(g.ids[c.root_of[("outage", g.index[f"d{i}"])]])
    assert moved == {"gw"}


def test_two_devices_among_many_stay_separate_and_a_signalling_gateway_takes_its_devices():
    g = graph()
    c = Correlator(g, root_share=0.5)
    a = c.signal("outage", g.index["d1"], True)[0]
    b = c.signal("outage", g.index["e1"], True)[0]
    assert {g.ids[a], g.ids[b]} == {"d1", "e1"}   # not the platform: 2 of 40
    c.signal("outage", g.index["gw2"], True)
    assert g.ids[c.signal("outage", g.index["e2"], True)[0]] == "gw2"


def test_response_metrics_follow_their_definitions():
    fixtures = [Incident(1, "a", "outage", "x", started_at=0, detected_at=60 * S, acknowledged_at=180 * S,
                         mitigated_at=600 * S, resolved_at=3600 * S),
                Incident(2, "b", "outage", "y", started_at=1000 * S, detected_at=1030 * S, acknowledged_at=1090 * S,
                         mitigated_at=None, resolved_at=2000 * S),
                Incident(3, "c", "outage", "z", started_at=0, detected_at=10 * S, merged_into=1)]
    m = metrics(fixtures)
    assert m["mttd_s"] == 45.0 and m["mttd_count"] == 2          # (60 + 30) / 2; the merged one is not counted
    assert m["mtta_s"] == 90.0                                   # (120 + 60) / 2
    assert m["mttm_s"] == 600.0 and m["mttm_count"] == 1         # start -> mitigated, where it was recorded
    assert m["mttr_s"] == 2300.0                                 # (3600 + 1000) / 2


@pytest.fixture
def platform(tmp_path):
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.sim.plant import demo_config

    p = Platform(parse_config(demo_config(str(tmp_path / "d"))))
    yield p
    p.stop()


def test_an_alarm_flood_is_one_incident_per_root_and_survives_a_restart(platform, tmp_path):
    from plantguard.continuity.service import Signal

    svc = platform.services.continuity
    dev = ["site1/packaging/bottling-line-1/filler-feed-pump/wsn", "site1/packaging/bottling-line-1/conveyor/wsn"]
    for k in range(10_000):
        svc.offer(Signal("outage", f"{dev[k % 2]}/p{k}:STALE", f"{dev[k % 2]}/p{k}", True, k * 1000, "stale"))
    assert svc.drain() == 10_000
    open_ = svc.incidents(open_only=True)
    assert [i.root for i in open_] == ["wsn-gateway"]           # the two sensors share the wireless gateway
    inc = open_[0]
    assert inc.signals and len(inc.signals) == 10_000 and inc.severity in ("minor", "major", "critical", "warning")
    # the operator's actions, idempotent and in order, recorded in its timeline
    from plantguard.domain.actor import Actor

    svc.act(inc.id, "acknowledge", Actor.user("olga"))
    svc.act(inc.id, "acknowledge", Actor.user("olga"))
    with pytest.raises(Exception):
        svc.act(inc.id, "review", Actor.user("olga"), review={})   # a review follows the resolution
    svc.act(inc.id, "resolve", Actor.user("olga"))
    got = svc.act(inc.id, "review", Actor.user("olga"), review={"summary": "gateway PSU", "corrective_actions": [{"action": "spare PSU"}]})
    assert got.state == "closed" and got.review["corrective_actions"][0]["action"] == "spare PSU"
    assert got.review["timeline"] and got.acknowledged_at <= got.resolved_at


def test_predictive_alert_names_the_service_at_risk_and_a_breach(platform):
    from plantguard.continuity.service import Signal

    svc = platform.services.continuity
    svc.offer(Signal("predictive", "pump:RUL", "site1/packaging/bottling-line-1/filler-feed-pump", True, 0, "RUL", hours=6.0))
    svc.drain()
    (inc,) = svc.incidents(open_only=True)
    assert inc.root == "pump" and inc.title.startswith("Line 1 output at risk in 6.0 h")
    assert "line1-output" in inc.predicted_breach             # the 3 h pump swap exceeds the 2 h RTO
    svc.runner.wait(max(r.id for r in svc.runs()), 0.5)
    run = svc.runs()[0]
    assert run.playbook == "bearing-failure-predicted" and run.steps[0].state == "waiting_approval"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_notify_sends_email_through_a_real_smtp_server(tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    from plantguard.continuity.service import ContinuityService
    from plantguard.domain.index import PlantIndex
    from plantguard.testing.factories import small_plant

    got = []

    class Box(Message):
        def handle_message(self, message):
            got.append(message)

    port = _free_port()
    ctl = Controller(Box(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:

        cfg = small_plant(data_dir=str(tmp_path / "d"))
        from plantguard.runtime import Platform

        p = Platform(cfg)
        try:
            svc = p.services.continuity
            svc.settings = ContinuitySettings.model_validate({"smtp": {"host": "127.0.0.1", "port": port}})
            out = svc.notify({"email": "ops@plant.local", "subject": "about {title}", "message": "{title} now"}, {"title": "pump"})
            assert "email to 1" in out["detail"]
        finally:
            p.stop()
    finally:
        ctl.stop()
    assert got and got[0]["Subject"] == "about pump" and got[0]["To"] == "ops@plant.local"
    assert "pump now" in got[0].get_payload()


def test_a_blip_shorter_than_open_after_opens_nothing(platform):
    from plantguard.continuity.service import Signal

    svc = platform.services.continuity
    now = platform.clock()
    dev = "site1/packaging/bottling-line-1/conveyor/plc"
    svc.offer(Signal("outage", f"{dev}:OFFLINE", dev, True, now, "offline"))
    svc.offer(Signal("outage", f"{dev}:OFFLINE", dev, False, now + 5_000_000, "back"))
    svc.drain()
    svc.tick()
    assert svc.incidents(open_only=True) == []
    svc.offer(Signal("outage", f"{dev}:OFFLINE", dev, True, now - 61 * S, "offline for a minute"))
    svc.drain()
    (inc,) = svc.incidents(open_only=True)
    assert inc.root == "conveyor-io" and inc.severity == "critical"   # the line stops without the conveyor's I/O


def test_a_limit_alarm_weighs_as_a_degradation_until_something_goes_silent(platform):
    from plantguard.continuity.service import Signal

    svc = platform.services.continuity
    now = platform.clock()
    pump = "site1/packaging/bottling-line-1/filler-feed-pump"
    svc.offer(Signal("outage", f"{pump}/wsn/bearing-vibration:HI", pump, True, now - 120 * S, "HI", condition=True))
    svc.drain()
    (inc,) = svc.incidents(open_only=True)
    assert inc.root == "pump" and inc.severity == "major"          # line 1 would stop if it failed: at risk
    svc.offer(Signal("outage", f"{pump}/plc:OFFLINE", f"{pump}/plc", True, now - 120 * S, "OFFLINE"))
    svc.drain()
    assert {i.severity for i in svc.incidents(open_only=True)} == {"major", "critical"}   # the PLC's silence is a failure


def test_exactly_one_master_is_checked_on_live_data(tmp_path):
    """Two members of an exactly-one group reporting active (split brain) fail the group now; one is fine."""
    import numpy as np

    from plantguard.config import parse_config
    from plantguard.domain.readings import RawBatch
    from plantguard.runtime import Platform
    from plantguard.testing.factories import plant_dict
    from plantguard.timeutil import now_us

    d = plant_dict(2, data_dir=str(tmp_path / "d"))
    dev = "s1/a1/l1/pump1/plc1"
    d["continuity"] = {"services": [{"id": "out", "depends_on": ["ha"], "mtpd": "8h", "rto": "1h"}],
                       "nodes": [{"id": "ha", "kind": "process", "redundancy": [{"members": ["m1", "m2"], "exactly": 1}]},
                                 {"id": "m1", "kind": "device", "ref": dev, "active_point": f"{dev}/p0"},
                                 {"id": "m2", "kind": "device", "active_point": f"{dev}/p1"}]}
    p = Platform(parse_config(d)).start()
    try:
        def send(a, b):
            t = now_us()
            p.pipeline.submit(RawBatch.build([f"{dev}/p0", f"{dev}/p1"], np.array([t, t]), np.array([a, b], float))).result(30)

        svc = p.services.continuity
        send(1, 0)
        assert svc.services_status()[0]["status"] == "ok"
        send(1, 1)
        s = svc.services_status()[0]
        assert s["status"] == "down" and "exactly 1" in s["causes"]["ha"]
    finally:
        p.stop()
