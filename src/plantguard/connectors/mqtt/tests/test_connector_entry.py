"""MQTT as a `connectors:` entry like every other connector: two brokers' worth of entries side by side, the
`mqtt:` shorthand, a name collision between them, and the probe (against a real mosquitto)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from plantguard.config import parse_config
from plantguard.connectors.mqtt.capability import as_connector
from plantguard.connectors.mqtt.client import Publisher
from plantguard.connectors.mqtt.config import MqttConfig, MqttConnectorConfig
from plantguard.connectors.mqtt.connector import MqttConnector
from plantguard.errors import ConfigError
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict, tag
from plantguard.testing.mosquitto import free_port
from plantguard.testing.wait import wait_for
from plantguard.timeutil import now_us


def entry(broker, name: str, prefix: str) -> dict:
    return {"type": "mqtt", "name": name, "host": broker.host, "port": broker.port, "client_id": f"pg-{name}",
            "topic_prefix": prefix, "reconnect_min": 0.05, "reconnect_max": 0.5}


def test_two_connector_entries_ingest_their_own_prefixes(mosquitto, tmp_path):
    d = plant_dict(3, data_dir=str(tmp_path / "data"))
    d["connectors"] = [entry(mosquitto, "line_a", "plant/a"), entry(mosquitto, "line_b", "plant/b")]
    p = Platform(parse_config(d)).start()
    try:
        wait_for(lambda: all(p.services.status.health()["sources"][n]["connected"] for n in ("line_a", "line_b")), "both entries to connect")
        t = now_us() // 1000 - 60_000
        with Publisher(mosquitto.host, mosquitto.port) as pub:
            pub.publish("plant/a/dev/s1/a1/l1/pump1/plc1", orjson.dumps({"readings": [{"p": "p1", "t": t, "v": 1.5}]}))
            pub.publish("plant/b/dev/s1/a1/l1/pump1/plc1", orjson.dumps({"readings": [{"p": "p2", "t": t, "v": 2.5}]}))
            assert pub.wait_all(10)
        wait_for(lambda: all(p.services.telemetry.latest([tag(i)])[tag(i)] is not None for i in (1, 2)), "a reading through each entry")
        h = p.services.status.health()["sources"]
        assert h["line_a"]["type"] == "mqtt" and h["line_a"]["messages"] == 1 and h["line_b"]["messages"] == 1
        assert h["line_a"]["links"][f"{mosquitto.host}:{mosquitto.port}"]["state"] == "online"
    finally:
        p.stop()


def test_the_mqtt_section_is_the_shorthand_of_one_entry():
    cfg = MqttConfig(enabled=True, host="10.0.0.5", topic_prefix="x/y", qos=0)
    c = as_connector(cfg)
    assert isinstance(c, MqttConnectorConfig) and c.name == "mqtt" and c.broker() == cfg


def test_an_entry_named_like_the_enabled_section_is_refused_by_path():
    d = plant_dict(1)
    d["mqtt"] = {"enabled": True}
    d["connectors"] = [{"type": "mqtt", "name": "mqtt"}]
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    assert "connectors[0].name" in {p.path for p in e.value.problems}


@pytest.mark.parametrize("bad, path", [({"topic_prefix": "a/#"}, "topic_prefix"), ({"port": 70000}, "port"),
                                       ({"qos": 2}, "qos"), ({"reconnect_min": 9, "reconnect_max": 1}, "reconnect_max")])
def test_bad_entries_are_refused_by_field_path(bad, path):
    d = plant_dict(1)
    d["connectors"] = [{"type": "mqtt", "name": "m", **bad}]
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    assert f"connectors[0].{path}" in {p.path for p in e.value.problems}


def test_probe_reports_a_reachable_broker_and_the_risks_of_the_settings(mosquitto):
    cfg = MqttConnectorConfig(name="m", host=mosquitto.host, port=mosquitto.port)
    [r] = asyncio.run(MqttConnector.probe(cfg, duration_s=5))
    assert r.reachable and r.connect_ms is not None and r.connect_ms >= 0
    assert any("anonymous" in x for x in r.risks) and any("TLS" in x for x in r.risks)


def test_probe_of_a_closed_port_says_unreachable():
    cfg = MqttConnectorConfig(name="m", host="127.0.0.1", port=free_port())
    [r] = asyncio.run(MqttConnector.probe(cfg, duration_s=1))
    assert not r.reachable and r.notes
