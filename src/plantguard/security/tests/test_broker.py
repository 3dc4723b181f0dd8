"""Device credentials on a real Mosquitto started with the password and ACL files plantguard generates: a device
publishes under its own topic and nowhere else, an unknown or revoked device cannot connect, rotation keeps the
old key for its overlap, and plantguard's ingest client reads everything."""

from __future__ import annotations

import time

import orjson
import paho.mqtt.client as mqtt
import pytest

from plantguard.config import parse_config
from plantguard.domain.actor import Actor
from plantguard.runtime import Platform
from plantguard.security.broker import mosquitto_hash
from plantguard.testing.factories import plant_dict
from plantguard.testing.mosquitto import MosquittoBroker, MosquittoUnavailable
from plantguard.testing.wait import wait_for

PREFIX = "plantguard/v1"
A, B = "s1/a1/l1/pump1/plc1", "s1/a1/l1/pump1/plc2"
ADMIN = Actor.system("tests")
INGEST_PW = "the ingest client's broker password"


def test_mosquitto_hash_is_pbkdf2_sha512_in_its_format():
    import base64
    import hashlib

    h = mosquitto_hash("secret", salt=b"0123456789ab", iterations=101)
    kind, it, salt, digest = h.split("$")[1:]
    assert (kind, it, base64.b64decode(salt)) == ("7", "101", b"0123456789ab")
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"secret", b"0123456789ab", 101)


def connect(broker, username, password, timeout=5.0):
    """(client, rc): rc 0 when the broker accepted the credentials."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{time.monotonic_ns()}", protocol=mqtt.MQTTv311)
    if username is not None:
        c.username_pw_set(username, password)
    result = {}
    c.on_connect = lambda cl, ud, flags, rc, props: result.setdefault("rc", rc.value if hasattr(rc, "value") else int(rc))
    c.reconnect_delay_set(60, 120)  # a refused client must not keep retrying in the background
    c.connect(broker.host, broker.port)
    c.loop_start()
    deadline = time.monotonic() + timeout
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.01)
    if result.get("rc") != 0:
        close(c)
    return c, result.get("rc")


def accepted(broker, username, password) -> bool:
    c, rc = connect(broker, username, password)
    if rc == 0:
        close(c)
    return rc == 0


def close(c):
    c.disconnect()
    c.loop_stop()


@pytest.fixture
def secured(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANTGUARD_MQTT_PASSWORD", INGEST_PW)
    bdir = tmp_path / "broker"
    bdir.mkdir()
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    dev = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"]
    dev.append({**dev[0], "id": "plc2"})
    d["security"] = {"broker": {"password_file": str(bdir / "passwd"), "acl_file": str(bdir / "acl"),
                                "pid_file": str(bdir / "mosquitto.pid"), "log_file": str(bdir / "mosquitto.log"),
                                "auth_failures": 5}}
    cfg = parse_config(d)
    p = Platform(cfg)
    creds = p.services.broker_credentials
    a = creds.issue(A, ADMIN)
    b = creds.issue(B, ADMIN)
    try:
        broker = MosquittoBroker(workdir=bdir, extra_conf=["allow_anonymous false", f"password_file {bdir / 'passwd'}",
                                                            f"acl_file {bdir / 'acl'}", "log_type debug"]).start()
    except MosquittoUnavailable as e:
        p.stop()
        pytest.fail(str(e))
    d["mqtt"] = {"enabled": True, "host": broker.host, "port": broker.port, "client_id": "pg-secured", "username": "plantguard-ingest",
                 "password": INGEST_PW, "reconnect_min": 0.05, "reconnect_max": 0.5}
    p.stop()
    p = Platform(parse_config(d)).start()
    wait_for(lambda: p.services.status.health()["sources"]["mqtt"]["connected"], "the ingest client to connect with its credentials")
    yield p, broker, a, b
    p.stop()
    broker.close()


def reading(point: str, t: int, v: float) -> bytes:
    return orjson.dumps({"readings": [{"p": point, "t": t, "v": v}]})


def publish_once(broker, user, pw, topic, payload) -> None:
    """One connection per message: the broker may drop a connection that publishes where its ACL denies."""
    c, rc = connect(broker, user, pw)
    assert rc == 0
    try:
        c.publish(topic, payload, qos=1).wait_for_publish(5)
    except (RuntimeError, ValueError):
        pass  # disconnected by the broker for the denied publish: the message went nowhere
    finally:
        close(c)


def test_a_device_publishes_under_its_own_topic_and_nowhere_else(secured):
    p, broker, (ua, pa), (ub, pb) = secured
    assert connect(broker, None, None)[1] != 0  # anonymous: refused
    assert connect(broker, ua, "a wrong password")[1] != 0
    t = int(time.time() * 1000) - 60_000
    publish_once(broker, ua, pa, f"{PREFIX}/dev/{A}", reading("p0", t, 1.0))
    publish_once(broker, ua, pa, f"{PREFIX}/dev/{B}", reading("p0", t, 66.0))  # as device B: denied by the ACL
    publish_once(broker, ua, pa, f"{PREFIX}/ingest", orjson.dumps({"readings": [{"point": f"{B}/p1", "ts": t, "value": 66.0}]}))
    publish_once(broker, ub, pb, f"{PREFIX}/dev/{B}", reading("p1", t, 2.0))
    wait_for(lambda: p.services.telemetry.latest([f"{B}/p1"])[f"{B}/p1"] is not None, "device B's own reading")
    wait_for(lambda: p.services.telemetry.latest([f"{A}/p0"])[f"{A}/p0"] is not None, "device A's own reading")
    assert p.services.telemetry.latest([f"{B}/p0"])[f"{B}/p0"] is None  # A never wrote as B
    assert p.services.telemetry.latest([f"{B}/p1"])[f"{B}/p1"]["value"] == 2.0  # nor through the ingest topic


def test_revoked_and_rotated_keys_at_the_broker(secured):
    p, broker, (ua, pa), (ub, pb) = secured
    creds = p.services.broker_credentials
    new_user, new_pw = creds.rotate(A, ADMIN, overlap_s=3600)
    wait_for(lambda: accepted(broker, new_user, new_pw), "the new key to work after the reload")
    assert accepted(broker, ua, pa)  # the old one too, during the overlap
    assert creds.revoke(A, ADMIN) == 2
    wait_for(lambda: not accepted(broker, new_user, new_pw) and not accepted(broker, ua, pa), "revoked keys to be refused after the reload")
    assert accepted(broker, ub, pb)  # the other device is untouched
    creds.suspend(B, True, ADMIN)
    wait_for(lambda: not accepted(broker, ub, pb), "a suspended device to be refused")
    creds.suspend(B, False, ADMIN)
    wait_for(lambda: accepted(broker, ub, pb), "the device to be admitted again")
    from plantguard.security.audit import read_entries

    actions = [e.action for e in read_entries(p.store)]
    assert {"device.credential.issue", "device.credential.revoke", "device.credential.suspend"} <= set(actions)


def test_an_unknown_device_gets_no_credential(secured):
    p, *_ = secured
    from plantguard.errors import NotFound

    with pytest.raises(NotFound):
        p.services.broker_credentials.issue("s1/a1/l1/pump1/nope", ADMIN)


def test_the_brokers_refusals_become_security_events(secured):
    """From Mosquitto's own log: device A publishing under B's topic is an ACL denial raised on A; a run of refused
    connections is raised on the broker with the addresses."""
    from plantguard.security.events import list_events

    p, broker, (ua, pa), (ub, pb) = secured
    watcher = p.services.broker_log
    watcher.poll()
    t = int(time.time() * 1000) - 60_000
    publish_once(broker, ua, pa, f"{PREFIX}/dev/{B}", reading("p0", t, 66.0))  # as device B
    for _ in range(5):
        assert connect(broker, ub, "not the password")[1] != 0

    def got():
        watcher.poll()
        return {e.rule: e for e in list_events(p.store)}

    wait_for(lambda: {"access.acl_denied", "access.broker_auth_failures"} <= set(got()), "the broker's refusals as events")
    ev = got()
    assert ev["access.acl_denied"].device == A and ev["access.acl_denied"].evidence["topic"] == f"{PREFIX}/dev/{B}"
    assert ev["access.acl_denied"].evidence["username"] == ua
    assert ev["access.broker_auth_failures"].evidence["addresses"] == {"127.0.0.1": 5}
    assert watcher.errors == 0


def test_the_log_watcher_survives_rotation_odd_lines_and_floods(tmp_path):
    from plantguard.security.broker_log import MAX_READ, BrokerLogWatcher

    f = tmp_path / "mosquitto.log"
    f.write_text("1: old history: Client <unknown> disconnected, not authorised.\n" * 50)
    raised = []
    w = BrokerLogWatcher(f, clock=lambda: 1_000_000, raise_event=lambda *a: raised.append(a), device_of=lambda u: None,
                         auth_failures=3)
    w.poll()  # starts at the end: history is not news
    with open(f, "ab") as fh:
        fh.write(b"\xff\xfe garbage \x00\n" + b"2: Denied PUBLISH from (((\n" + b"3: Client <unknown> disconnected, not authorised.\n" * 2)
    w.poll()
    assert raised == [] and w.errors == 0
    f.write_text("4: Client <unknown> disconnected, not authorised.\n")  # rotated: a new, shorter file
    w.poll()
    assert [r[1] for r in raised] == ["access.broker_auth_failures"]
    with open(f, "ab") as fh:  # a flood: read in bounded steps
        fh.write(b"5: Received PUBLISH from x (d0, q1, r0, m1, 't', ... (1 bytes))\n" * (3 * MAX_READ // 60))
    assert 0 < w.poll() <= MAX_READ // 60 + 1
