"""Quarantine on a real platform: a quarantined device's readings are kept aside (nothing lost) and never reach the
main store or the analytics; release takes a second person and admits or discards what was held; an automatic
policy quarantines on a behavioural event."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.domain.actor import Actor
from plantguard.domain.readings import RawBatch
from plantguard.errors import Forbidden
from plantguard.runtime import Platform
from plantguard.testing.auth import auth_headers, login
from plantguard.testing.factories import plant_dict
from plantguard.testing.wait import wait_for

S = 1_000_000
DEV = "s1/a1/l1/pump1/plc1"
OTHER = "s1/a1/l1/pump1/plc2"


@pytest.fixture
def plat(tmp_path):
    d = plant_dict(2, data_dir=str(tmp_path), alarms=False)
    devs = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"]
    devs.append({**devs[0], "id": "plc2"})
    p = Platform(parse_config(d)).start()
    yield p
    p.stop()


def send(p, tags, t0, values):
    return p.pipeline.submit(RawBatch.build(tags, [t0 + i * S for i in range(len(tags))], values), [], timeout=10).result(30)


def test_a_quarantined_device_is_held_aside_and_released_by_another_user(plat):
    p = plat
    q = p.services.quarantine
    t0 = p.clock() - 3600 * S
    send(p, [f"{DEV}/p0"], t0, [1.0])
    ann, bob = Actor.user("ann"), Actor.user("bob")
    q.quarantine(DEV, ann, "firmware changed without a work order")
    res = send(p, [f"{DEV}/p0", f"{DEV}/p1", f"{OTHER}/p0"], t0 + 10 * S, [66.0, 67.0, 3.0])
    assert res.accepted == 3 and res.rejected == 0  # stored, so the sender's messages are acknowledged
    assert p.services.telemetry.latest([f"{DEV}/p0"])[f"{DEV}/p0"]["value"] == 1.0  # the main store never saw the held reading
    assert p.services.telemetry.latest([f"{OTHER}/p0"])[f"{OTHER}/p0"]["value"] == 3.0  # other devices flow as before
    assert p.services.telemetry.query_raw(f"{DEV}/p1", t0, t0 + 3600 * S).ts.tolist() == []
    [rec] = q.list()
    assert (rec.device, rec.by, rec.held_readings) == (DEV, "user:ann", 2)
    with pytest.raises(Forbidden, match="four eyes"):
        q.release(DEV, ann, "checked", "admit")
    out = q.release(DEV, bob, "the change was planned: work order 4711", "admit")
    assert out == {"device": DEV, "disposition": "admit", "held": 2, "admitted": 2}
    assert p.services.telemetry.latest([f"{DEV}/p0"])[f"{DEV}/p0"]["value"] == 66.0 and q.list() == []
    send(p, [f"{DEV}/p0"], t0 + 100 * S, [5.0])  # flowing again
    assert p.services.telemetry.latest([f"{DEV}/p0"])[f"{DEV}/p0"]["value"] == 5.0
    from plantguard.security.audit import read_entries

    actions = [(e.action, e.actor) for e in read_entries(p.store)]
    assert ("quarantine", "user:ann") in actions and ("quarantine.release.admit", "user:bob") in actions


def test_discarding_what_was_held_and_the_api(plat):
    p = plat
    t0 = p.clock() - 3600 * S
    with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=auth_headers(p, "admin", name="ann")) as c:
        assert c.post(f"/api/security/quarantine/{DEV}", json={"reason": ""}).status_code == 422
        r = c.post(f"/api/security/quarantine/{DEV}", json={"reason": "flood from the device"})
        assert r.status_code == 201 and r.json()["by"] == "token:ann/t1"
        assert c.post(f"/api/security/quarantine/{DEV}", json={"reason": "again"}).status_code == 409
        send(p, [f"{DEV}/p0"], t0, [9.0])
        assert c.get("/api/security/quarantine").json()[0]["held_readings"] == 1
        r = c.post(f"/api/security/quarantine/{DEV}/release", json={"reason": "x", "disposition": "discard"})
        assert r.status_code == 403  # the same token that quarantined it
    with TestClient(create_app(p.services), base_url="http://127.0.0.1") as c2:
        login(c2, p, "admin", "bob")
        r = c2.post(f"/api/security/quarantine/{DEV}/release", json={"reason": "a test device", "disposition": "discard"},
                    headers={"content-type": "application/json"})
        assert r.status_code == 200 and r.json()["held"] == 1 and r.json()["admitted"] == 0
    assert p.services.telemetry.latest([f"{DEV}/p0"])[f"{DEV}/p0"] is None and p.services.quarantine.list() == []


def test_a_policy_quarantines_on_a_behavioural_event(tmp_path):
    import numpy as np

    d = plant_dict(2, data_dir=str(tmp_path), alarms=False)
    d["security"] = {"quarantine_on": ["behaviour.implausible_jump"], "behaviour": {"learning_readings": 50}}
    p = Platform(parse_config(d)).start()
    try:
        t0 = p.clock() - 7200 * S
        rng = np.random.default_rng(1)
        send(p, [f"{DEV}/p0"] * 100, t0, list(rng.normal(10, 1, 100)))
        send(p, [f"{DEV}/p0"], t0 + 100 * S, [-995.0])  # more than half the range (-1000..1000) in one second
        wait_for(lambda: [r.device for r in p.services.quarantine.list()] == [DEV], "the policy to quarantine the device")
        assert p.services.quarantine.list()[0].by == "system:policy"
        send(p, [f"{DEV}/p0"], t0 + 101 * S, [11.0])
        assert p.services.telemetry.latest([f"{DEV}/p0"])[f"{DEV}/p0"]["value"] == -995.0  # held aside from now on
    finally:
        p.stop()


def test_security_signals_are_in_the_metrics(plat):
    p = plat
    p.services.quarantine.quarantine(DEV, Actor.user("ann"), "a test")
    send(p, [f"{DEV}/p0"], p.clock() - 600 * S, [1.0])
    try:
        p.services.accounts.login("nobody", "wrong password, long enough")
    except Exception:  # noqa: BLE001 - the failure is the point
        pass
    with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=auth_headers(p, "viewer")) as c:
        text = c.get("/metrics").text
    assert "plantguard_quarantined_devices 1.0" in text and "plantguard_ingest_quarantined_total 1.0" in text
    assert "plantguard_login_failures_total 1.0" in text and "plantguard_security_events_total 0.0" in text


@pytest.mark.parametrize("days,start,end,when,open_", [
    (["mon"], "06:00", "14:00", "2026-11-30 06:00", True),    # a Monday, at the start
    (["mon"], "06:00", "14:00", "2026-11-30 14:00", False),   # the end is not in the window
    (["mon"], "06:00", "14:00", "2026-12-01 07:00", False),   # Tuesday
    (["fri"], "22:00", "06:00", "2026-12-04 23:30", True),    # Friday night
    (["fri"], "22:00", "06:00", "2026-12-05 05:59", True),    # ... into Saturday morning: the window opened Friday
    (["fri"], "22:00", "06:00", "2026-12-04 05:00", False),   # Friday early morning belongs to Thursday's window
    (["sun"], "00:00", "00:00", "2026-12-06 12:00", True),    # start = end: the whole day
])
def test_write_windows_in_local_time(days, start, end, when, open_):
    import datetime as dt

    from plantguard.security.writes import WriteWindow

    w = WriteWindow(path="s1/a1", days=days, start=start, end=end)
    assert w.open_at(dt.datetime.fromisoformat(when)) is open_
    assert w.covers("s1/a1/l1/x/d") and w.covers("s1/a1") and not w.covers("s1/a10/l1/x/d")


def test_write_windows_refuse_bad_times_and_days():
    from pydantic import ValidationError

    from plantguard.security.writes import WriteWindow

    for bad in ({"start": "24:00", "end": "01:00"}, {"start": "6:00", "end": "07:00"}, {"start": "06:00", "end": "x"},
                {"start": "06:00", "end": "07:00", "days": ["monday"]}, {"start": "06:00", "end": "07:00", "days": []}):
        with pytest.raises(ValidationError):
            WriteWindow(path="s1", **bad)
