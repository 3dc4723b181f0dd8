"""Every source, fuzzed on its topics and payloads: after each case the source still ingests a good message and
health tells the truth. MQTT and Sparkplug run over a real Mosquitto broker; CSV import and replay read real
files. A source whose thread dies shows it in health and metrics and is restarted by the platform's supervisor."""

from __future__ import annotations

import time

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from plantguard.connectors.csv.importer import CsvOptions, import_csv
from plantguard.connectors.mqtt.client import Publisher
from plantguard.connectors.sparkplug.connector import SparkplugConnector
from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict, tag
from plantguard.testing.wait import wait_for

PREFIX = "plantguard/v1"
DEVICE_TOPIC = f"{PREFIX}/dev/s1/a1/l1/pump1/plc1"
FUZZ = settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate], suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def now_ms() -> int:
    return int(time.time() * 1000) - 60_000


# -- MQTT ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def mqtt_platform(mosquitto, tmp_path):
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    d["mqtt"] = {"enabled": True, "host": mosquitto.host, "port": mosquitto.port, "client_id": "pg-fuzz",
                 "reconnect_min": 0.05, "reconnect_max": 0.5}
    p = Platform(parse_config(d)).start()
    wait_for(lambda: p.services.status.health()["sources"]["mqtt"]["connected"], "the MQTT source to connect")
    yield p
    p.stop()


@pytest.fixture
def pub(mosquitto):
    with Publisher(mosquitto.host, mosquitto.port) as p:
        yield p


class _Good:
    """A good reading per call, each with a new timestamp, and a check that it was stored."""

    def __init__(self) -> None:
        self.t = now_ms() - 10_000_000

    def send(self, pub: Publisher) -> int:
        self.t += 1
        pub.publish(DEVICE_TOPIC, orjson.dumps({"readings": [{"p": "p1", "t": self.t, "v": 1.0}]}))
        return self.t

    @staticmethod
    def stored(p: Platform, t: int) -> bool:
        return p.services.telemetry.latest([tag(1)])[tag(1)] is not None and p.services.telemetry.latest([tag(1)])[tag(1)]["ts"] >= t * 1000


def test_empty_topic_level_is_a_dead_letter_and_ingest_goes_on(mqtt_platform, pub):
    p = mqtt_platform
    pub.publish(f"{PREFIX}/dev/s1//l1/pump1/plc1", b'{"readings": []}')
    good = _Good()
    t = good.send(pub)
    wait_for(lambda: good.stored(p, t), "the good message after the bad topic")
    # The acknowledgement follows the durable write, so the reading can be visible a moment before it is acked.
    wait_for(lambda: p.services.status.health()["sources"]["mqtt"]["in_flight"] == 0, "the good message to be acknowledged")
    h = p.services.status.health()
    assert h["status"] == "ok" and h["sources"]["mqtt"]["thread_alive"]
    dl = p.store.dead_letters(code="bad_topic")
    assert len(dl) == 1 and "s1//l1" in dl[0]["reason"]


def test_an_exception_while_handling_a_message_becomes_a_dead_letter(mqtt_platform, pub, monkeypatch):
    topics = mqtt_platform.sources[0].topics
    real = topics.point_prefix
    calls = []

    def failing(topic):
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("a bug while reading the topic")
        return real(topic)

    monkeypatch.setattr(topics, "point_prefix", failing)
    pub.publish(DEVICE_TOPIC, b'{"readings": []}')
    good = _Good()
    t = good.send(pub)
    wait_for(lambda: good.stored(mqtt_platform, t), "the good message after the failing one")
    assert mqtt_platform.services.status.health()["sources"]["mqtt"]["handler_errors"] == 1
    wait_for(lambda: len(mqtt_platform.store.dead_letters(code="handler_error")) == 1, "the dead letter of the failure")


def test_a_dead_network_thread_shows_in_health_and_is_restarted(mqtt_platform, pub):
    p = mqtt_platform
    src = p.sources[0]
    src._client._c.loop_stop()  # the network thread ends as if a callback had raised  # noqa: SLF001
    assert p.services.status.health()["sources"]["mqtt"]["thread_alive"] is False or p.supervisor_restarts.get("mqtt", 0) >= 1
    wait_for(lambda: p.supervisor_restarts.get("mqtt", 0) >= 1, "the supervisor to restart the source")
    wait_for(lambda: p.services.status.health()["sources"]["mqtt"]["connected"], "the restarted source to connect")
    good = _Good()
    t = good.send(pub)
    wait_for(lambda: good.stored(p, t), "a message through the restarted source")
    assert p.services.status.health()["sources"]["mqtt"]["supervisor_restarts"] >= 1


# Control characters are excluded: the broker itself disconnects a client that publishes them in a topic.
topic_levels = st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="+#\x00"), max_size=8), min_size=0, max_size=7)
payloads = st.one_of(st.binary(max_size=200), st.builds(lambda o: orjson.dumps(o), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10)),
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.sampled_from(["readings", "p", "t", "v", "q", "st", "x"]), kids, max_size=4)),
    max_leaves=12)))


@FUZZ
@given(levels=topic_levels, payload=payloads)
def test_fuzzed_mqtt_topics_and_payloads_never_stop_the_source(mqtt_platform, pub, levels, payload):
    topic = f"{PREFIX}/dev/" + "/".join(levels) if levels else f"{PREFIX}/ingest"
    pub.publish(topic, payload)
    good = _Good()
    t = good.send(pub)
    wait_for(lambda: good.stored(mqtt_platform, t), f"a good message after {topic!r} {payload!r}", 15)
    h = mqtt_platform.services.status.health()
    assert h["status"] == "ok" and h["sources"]["mqtt"]["thread_alive"], h


# -- Sparkplug ------------------------------------------------------------------------------------------------------
NODE_PATH = "s1/a1/l1/pump1/plc1"


@pytest.fixture
def spb_platform(mosquitto, tmp_path):
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    d["connectors"] = [{"type": "sparkplug", "name": "spb", "host": mosquitto.host, "port": mosquitto.port, "client_id": "pg-spb-fuzz",
                        "groups": ["G1"], "reconnect_min": 0.05, "reconnect_max": 0.5,
                        "devices": [{"group": "G1", "edge_node": "N1", "path": NODE_PATH, "metrics": {"T": "p0"}}]}]
    p = Platform(parse_config(d)).start()
    wait_for(lambda: p.services.status.health()["sources"]["spb"]["connected"], "the Sparkplug connector to connect")
    yield p
    p.stop()


spb_topics = st.builds(lambda kind, node, dev: "/".join(x for x in ("spBv1.0", "G1", kind, node, dev) if x is not None),
                       st.sampled_from(["NBIRTH", "NDATA", "DBIRTH", "DDATA", "NDEATH", "DDEATH", "STATE", "X"]),
                       st.sampled_from(["N1", "N2", ""]), st.one_of(st.none(), st.sampled_from(["D1", ""])))


@FUZZ
@given(topic=spb_topics, payload=st.binary(max_size=200))
def test_fuzzed_sparkplug_messages_never_stop_the_connector(spb_platform, pub, topic, payload):
    conn = next(s for s in spb_platform.sources if isinstance(s, SparkplugConnector))
    before = conn.messages
    pub.publish(topic, payload)
    probe = f"spBv1.0/G1/NCMD/probe{before}"
    pub.publish(probe, b"")  # ignored by the connector, but counted: proves the loop still takes messages
    wait_for(lambda: conn.messages >= before + 2 and conn.health()["in_flight"] == 0, f"the connector to handle {topic!r}")
    h = spb_platform.services.status.health()["sources"]["spb"]
    assert h["thread_alive"] and h["connected"], h


# -- HTTP ingest and the gateway endpoint are fuzzed in test_hardening.py --------------------------------------

# -- CSV import -----------------------------------------------------------------------------------------------------
csv_cell = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), st.sampled_from(["", "nan", "1e999", "-0", "true"]))
csv_rows = st.lists(st.lists(csv_cell, min_size=0, max_size=5), max_size=12)


@FUZZ
@given(rows=csv_rows)
def test_fuzzed_csv_files_become_dead_letters_not_failures(tmp_path_factory, rows):
    d = tmp_path_factory.mktemp("csv")
    p = Platform(parse_config(plant_dict(2, data_dir=str(d / "data"))), alarms=False, analytics=False)
    try:
        f = d / "h.csv"
        body = "\n".join(",".join(r) for r in rows)
        f.write_text("timestamp,point,value\n" + body + f"\n2024-05-01T12:00:00Z,{tag(1)},1.5\n", encoding="utf-8")
        rep = import_csv(p.pipeline, f, CsvOptions(format="long"))
        assert rep.accepted + rep.duplicates >= 1, rep  # the good last line is stored
    finally:
        p.stop()


# -- replay ---------------------------------------------------------------------------------------------------------
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=csv_rows)
def test_fuzzed_recordings_never_stop_replay(tmp_path_factory, rows):
    from plantguard.connectors.registry import validate
    from plantguard.connectors.replay import ReplayConnector

    d = tmp_path_factory.mktemp("replay")
    f = d / "rec.csv"
    body = "\n".join(";".join(r) for r in rows)
    f.write_text("datetime;A\n" + body + "\n2024-05-01T12:00:00Z;1.5\n", encoding="utf-8")
    ((_, cfg),) = validate([{"type": "replay", "name": "rec", "file": str(f), "device": NODE_PATH, "points": {"A": "p1"},
                             "delimiter": ";", "timestamp_column": "datetime", "speed": 0, "reconnect_min": 0.05, "reconnect_max": 0.2}])
    p = Platform(parse_config(plant_dict(2, data_dir=str(d / "data"))), alarms=False, analytics=False).start()
    try:
        conn = ReplayConnector(cfg, p.pipeline)
        p.add_source(conn)
        wait_for(lambda: conn.finished.is_set() or conn.readings_played >= 1, "the recording to play")
        wait_for(lambda: p.services.telemetry.latest([tag(1)])[tag(1)] is not None, "the good last row to be stored")
        assert conn.alive() and p.services.status.health()["sources"]["rec"]["thread_alive"]
    finally:
        p.stop()
