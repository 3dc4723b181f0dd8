"""MQTT connector: unit checks of the topic scheme and backoff, then end to end through a real mosquitto into a
real Platform (embedded store, alarms on), including a kill -9 of a running server."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import duckdb
import httpx
import orjson
import pytest
import yaml

from plantguard.connectors.mqtt.client import Publisher
from plantguard.connectors.mqtt.config import MqttConfig, Topics, backoff_delay, check_config
from plantguard.config import parse_config
from plantguard.errors import ConfigError, StoreError
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict, tag
from plantguard.testing.mosquitto import free_port
from plantguard.testing.wait import wait_for
from plantguard.timeutil import now_us

PREFIX = "plantguard/v1"
INGEST = f"{PREFIX}/ingest"
DEVICE = f"{PREFIX}/dev/s1/a1/l1/pump1/plc1"
FAR = 10**18



def plant(data_dir, broker, n_points: int = 5, **ingest) -> dict:
    d = plant_dict(n_points, data_dir=str(data_dir))
    d["mqtt"] = {"enabled": True, "host": broker.host, "port": broker.port, "client_id": "pg-test",
                 "reconnect_min": 0.05, "reconnect_max": 0.5}
    if ingest:
        d["ingest"] = ingest
    return d


def start(d: dict) -> Platform:
    p = Platform(parse_config(d)).start()
    wait_for(lambda: p.services.status.health()["sources"]["mqtt"]["connected"], "the MQTT source to connect")
    return p


def mqtt_health(p: Platform) -> dict:
    return p.services.status.health()["sources"]["mqtt"]


def settled(p: Platform, n_messages: int) -> bool:
    """Every message received so far is durably processed and acknowledged."""
    h = mqtt_health(p)
    return h["messages"] >= n_messages and h["in_flight"] == 0 and h["acked"] >= n_messages


def raw_count(p: Platform, i: int) -> int:
    return len(p.services.telemetry.query_raw(tag(i), 0, FAR).ts)


@pytest.fixture
def pub(mosquitto):  # noqa: F811
    with Publisher(mosquitto.host, mosquitto.port) as p:
        yield p


# -- no broker needed ----------------------------------------------------------------------------------------
def test_topics_map_to_point_prefixes():
    t = Topics(PREFIX)
    assert t.filters == [INGEST, f"{PREFIX}/dev/+/+/+/+/+"]
    assert t.point_prefix(INGEST) is None
    assert t.point_prefix(DEVICE) == "s1/a1/l1/pump1/plc1"
    assert t.point_prefix(DEVICE) == "s1/a1/l1/pump1/plc1"  # cached
    with pytest.raises(ValueError):
        t.point_prefix(f"{PREFIX}/dev/s1//l1/pump1/plc1")
    with pytest.raises(ValueError):
        t.point_prefix("elsewhere/ingest")


def test_config_problems_are_reported_together():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):  # the section's own model refuses them at load, by field
        MqttConfig(topic_prefix="plant/#/", reconnect_min=5, reconnect_max=1)
    with pytest.raises(ConfigError) as e:  # and the source checks again what it is given (built without validation)
        check_config(MqttConfig.model_construct(**{**MqttConfig().model_dump(), "topic_prefix": "plant/#/", "client_id": "",
                                                   "reconnect_min": 5, "reconnect_max": 1}))
    paths = [p.path for p in e.value.problems]
    assert paths.count("mqtt.topic_prefix") == 2 and "mqtt.client_id" in paths and "mqtt.reconnect_min" in paths
    check_config(MqttConfig())


def test_backoff_grows_with_jitter_inside_bounds():
    rand = random.Random(7)
    delays = [[backoff_delay(a, 0.5, 30.0, rand) for a in range(1, 12)] for _ in range(50)]
    assert all(0.5 <= d <= 30.0 for row in delays for d in row)
    assert all(row[0] == 0.5 for row in delays)  # first retry: the minimum
    assert all(d >= 15.0 for row in delays for d in row[7:])  # capped region: upper half of the maximum
    assert len({row[4] for row in delays}) > 40  # jitter: clients that lost the broker together spread out
    means = [sum(row[a] for row in delays) / len(delays) for a in range(7)]
    assert means == sorted(means)


# -- end to end ---------------------------------------------------------------------------------------------

@pytest.mark.mqtt
def test_both_topic_forms_and_key_styles_are_stored(mosquitto, pub, data_dir_mqtt):  # noqa: F811
    p = start(plant(data_dir_mqtt, mosquitto))
    try:
        t0 = now_us() // 1000 - 60_000
        pub.publish(INGEST, orjson.dumps({"readings": [
            {"point": tag(0), "ts": t0, "value": 50.5},
            {"point": tag(1), "ts": "2026-01-01T00:00:00+00:00", "value": True, "quality": "uncertain"},
        ]}))
        pub.publish(DEVICE, orjson.dumps([{"p": "p2", "t": t0 + i, "v": float(i)} for i in range(100)]))
        assert pub.wait_all()
        wait_for(lambda: settled(p, 2), "both messages to be stored")
        assert p.services.telemetry.latest([tag(0)])[tag(0)] == {"ts": t0 * 1000, "value": 50.5, "quality": 0}
        s1 = p.services.telemetry.query_raw(tag(1), 0, FAR)
        assert list(s1.value) == [1.0] and list(s1.quality) == [1]
        s2 = p.services.telemetry.query_raw(tag(2), 0, FAR)
        assert list(s2.ts) == [(t0 + i) * 1000 for i in range(100)] and list(s2.value) == [float(i) for i in range(100)]
        h = mqtt_health(p)
        assert h["ok"] and h["acked"] == 2 and h["rejected_payloads"] == 0
    finally:
        p.stop()


@pytest.mark.mqtt
def test_bad_payloads_become_dead_letters_and_do_not_block(mosquitto, pub, data_dir_mqtt):  # noqa: F811
    p = start(plant(data_dir_mqtt, mosquitto, max_payload_bytes=1024))
    try:
        t0 = now_us() // 1000 - 60_000
        pub.publish(INGEST, b'{"readings": [')  # malformed
        pub.publish(INGEST, orjson.dumps([{"p": tag(0), "t": t0 + i, "v": 1.0} for i in range(40)]))  # > 1024 bytes
        pub.publish(DEVICE, b'{"readings": 5}')  # wrong shape
        pub.publish(DEVICE, orjson.dumps([{"p": "nope", "t": t0, "v": 1.0}, {"p": "p1", "t": t0, "v": 7.0}]))  # one unknown
        pub.publish(DEVICE, orjson.dumps([{"p": "p0", "t": t0, "v": 42.0}]))
        assert pub.wait_all()
        wait_for(lambda: settled(p, 5), "all five messages to be processed and acknowledged")
        assert raw_count(p, 0) == 1 and raw_count(p, 1) == 1
        dead = p.store.dead_letters(source="mqtt")
        reasons = sorted(d["reason"] for d in dead)
        assert len(dead) == 4
        assert any("malformed JSON" in r for r in reasons)
        assert any("exceeds the limit of 1024 bytes" in r for r in reasons)
        assert any('expected {"readings"' in r for r in reasons)
        assert [d["point"] for d in dead if d["point"]] == ["s1/a1/l1/pump1/plc1/nope"]
        h = mqtt_health(p)
        assert h["rejected_payloads"] == 3 and h["acked"] == 5 and h["write_failures"] == 0
    finally:
        p.stop()


@pytest.mark.mqtt
def test_same_message_twice_is_stored_once(mosquitto, pub, data_dir_mqtt):  # noqa: F811
    p = start(plant(data_dir_mqtt, mosquitto))
    try:
        t0 = now_us() // 1000 - 60_000
        msg = orjson.dumps([{"p": "p3", "t": t0 + i, "v": float(i)} for i in range(50)])
        pub.publish(DEVICE, msg)
        pub.publish(DEVICE, msg)
        assert pub.wait_all()
        wait_for(lambda: settled(p, 2), "both copies to be processed")
        assert raw_count(p, 3) == 50
        assert p.pipeline.stats.duplicates == 50
    finally:
        p.stop()


@pytest.mark.mqtt
def test_broker_restart_and_messages_sent_while_offline(mosquitto, data_dir_mqtt):  # noqa: F811
    d = plant(data_dir_mqtt, mosquitto)
    t0 = now_us() // 1000 - 60_000

    def send(i: int) -> None:
        with Publisher(mosquitto.host, mosquitto.port) as pub:
            pub.publish(DEVICE, orjson.dumps([{"p": "p4", "t": t0 + i, "v": float(i)}]))
            assert pub.wait_all()

    p = start(d)
    try:
        send(0)
        wait_for(lambda: raw_count(p, 4) == 1, "the first reading")
        mosquitto.restart()
        wait_for(lambda: mqtt_health(p)["reconnects"] >= 1 and mqtt_health(p)["connected"], "the source to reconnect")
        send(1)
        wait_for(lambda: raw_count(p, 4) == 2, "a reading after the broker restart")
    finally:
        p.stop()
    send(2)  # plantguard is down: the broker keeps it for the persistent session...
    mosquitto.restart()  # ...on disk, across a broker restart too
    p = start(d)
    try:
        wait_for(lambda: raw_count(p, 4) == 3, "the reading published while plantguard was offline")
        assert list(p.services.telemetry.query_raw(tag(4), 0, FAR).value) == [0.0, 1.0, 2.0]
        assert mqtt_health(p)["session_lost"] == 0
    finally:
        p.stop()


@pytest.mark.mqtt
def test_failed_write_is_not_acknowledged_and_is_redelivered(mosquitto, pub, data_dir_mqtt):  # noqa: F811
    p = start(plant(data_dir_mqtt, mosquitto))
    try:
        real_write = p.store.write
        failures = []

        def flaky_write(ws):  # a disk-full style failure the embedded store cannot be made to produce on demand
            if len(ws.batch) and not failures:
                failures.append(len(ws.batch))
                raise StoreError("injected: no space left on device")
            return real_write(ws)

        p.store.write = flaky_write
        t0 = now_us() // 1000 - 60_000
        pub.publish(DEVICE, orjson.dumps([{"p": "p1", "t": t0 + i, "v": float(i)} for i in range(10)]))
        assert pub.wait_all()
        wait_for(lambda: raw_count(p, 1) == 10, "the redelivered message to be stored")
        h = mqtt_health(p)
        assert failures == [10] and h["write_failures"] == 1 and h["reconnects"] >= 1
        wait_for(lambda: mqtt_health(p)["in_flight"] == 0, "the redelivered copy to be acknowledged")
    finally:
        p.stop()


@pytest.mark.mqtt
def test_stop_during_a_stream_then_restart_stores_everything_once(mosquitto, pub, data_dir_mqtt):  # noqa: F811
    d = plant(data_dir_mqtt, mosquitto, n_points=50)
    t0 = now_us() // 1000 - 60_000
    n = 200
    p = start(d)
    try:
        for i in range(n):
            pub.publish(DEVICE, orjson.dumps([{"p": f"p{j}", "t": t0 + i, "v": 1.0} for j in range(50)]))
        wait_for(lambda: mqtt_health(p)["acked"] >= 10, "part of the stream to be stored")
    finally:
        p.stop()  # must return while messages keep arriving; what it did not acknowledge stays with the broker
    assert pub.wait_all()
    p = start(d)
    try:
        wait_for(lambda: p.services.telemetry.latest([tag(49)])[tag(49)] is not None and p.services.telemetry.latest([tag(49)])[tag(49)]["ts"] == (t0 + n - 1) * 1000,
                 "the rest of the stream after the restart")
        wait_for(lambda: mqtt_health(p)["in_flight"] == 0, "the redelivered messages to be acknowledged")
        assert p.store.counts()["raw"] == n * 50
    finally:
        p.stop()


# -- crash safety -------------------------------------------------------------------------------------------
class Server:
    """`plantguard serve` in a child process, watched through its HTTP API."""

    def __init__(self, config_path, api_port: int, log_path) -> None:
        self.args = [sys.executable, "-m", "plantguard.cli.main", "serve", "--config", str(config_path),
                     "--port", str(api_port), "--log-level", "warning"]
        self.url = f"http://127.0.0.1:{api_port}/api"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.password = "the server's password in this test"
        self.client: httpx.Client | None = None  # a signed-in session (health details need a credential)

    def start(self) -> "Server":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", "PLANTGUARD_ADMIN_PASSWORD": self.password})
        log.close()
        wait_for(lambda: self.mqtt().get("connected", False), "the server's MQTT source to connect", timeout=60)
        return self

    def get(self, path: str, **params) -> dict:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}: {open(self.log_path).read()[-2000:]}")
        try:
            if self.client is None:
                c = httpx.Client(timeout=5)
                r = c.post(self.url + "/auth/login", json={"user": "admin", "password": self.password})
                if r.status_code != 200:
                    c.close()
                    return {}
                self.client = c  # the session is in the store: it outlives a kill -9 of the server
            return self.client.get(self.url + path, params=params).json()
        except httpx.HTTPError:
            return {}

    def mqtt(self) -> dict:
        return self.get("/health").get("sources", {}).get("mqtt", {})

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.mark.mqtt
@pytest.mark.slow
def test_kill_9_mid_stream_loses_nothing_acknowledged_and_stores_nothing_twice(mosquitto, tmp_path):  # noqa: F811
    n_points, n_messages, per_message = 100, 300, 100
    data_dir = tmp_path / "data"
    d = plant(data_dir, mosquitto, n_points=n_points)
    d["api"] = {"host": "127.0.0.1", "port": free_port()}
    cfg_path = tmp_path / "plant.yaml"
    cfg_path.write_text(yaml.safe_dump(d))
    server = Server(cfg_path, d["api"]["port"], tmp_path / "server.log").start()
    t0 = now_us() // 1000 - 3_600_000

    def payload(i: int) -> bytes:  # unique (point, ts) per reading: message i carries ts t0 + i
        return orjson.dumps([{"p": f"p{j}", "t": t0 + i, "v": float((i + j) % 50)} for j in range(per_message)])

    try:
        with Publisher(mosquitto.host, mosquitto.port, client_id="pg-load", max_inflight=100) as pub:
            for i in range(n_messages // 2):
                pub.publish(DEVICE, payload(i))
            wait_for(lambda: server.mqtt().get("acked", 0) >= 20, "the server to store part of the stream")
            server.kill9()  # mid-stream: messages in flight, some written and not acknowledged, some neither
            for i in range(n_messages // 2, n_messages):
                pub.publish(DEVICE, payload(i))  # the broker queues these for the offline session
            assert pub.wait_all(60)
            acked = pub.acked()
        assert acked == list(range(n_messages))

        server.start()
        last = f"s1/a1/l1/pump1/plc1/p{per_message - 1}"
        wait_for(lambda: (server.get("/telemetry/latest", points=last).get("data") or [{}])[0].get("ts_ms") == t0 + n_messages - 1,
                 "the last message to be stored after the restart", timeout=60)
        wait_for(lambda: server.mqtt().get("in_flight") == 0, "every redelivered message to be acknowledged")
        assert server.stop() == 0
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()

    con = duckdb.connect(str(data_dir / "plantguard.duckdb"), read_only=True)
    try:
        twice = con.execute("SELECT count(*) FROM (SELECT pid, ts FROM raw GROUP BY pid, ts HAVING count(*) > 1)").fetchone()[0]
        rows = con.execute("SELECT p.tag, r.ts FROM raw r JOIN points p USING (pid)").fetchall()
    finally:
        con.close()
    assert twice == 0
    stored = {(t.rsplit("/", 1)[1], ts) for t, ts in rows}
    assert len(rows) == len(stored)
    expected = {(f"p{j}", (t0 + i) * 1000) for i in acked for j in range(per_message)}
    assert expected - stored == set()
    assert len(rows) == n_messages * per_message


@pytest.fixture
def data_dir_mqtt(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d
