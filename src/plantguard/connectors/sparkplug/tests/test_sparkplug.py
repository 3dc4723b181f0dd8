"""Sparkplug B connector end to end: a test edge node (paho + the codec) publishes through a real mosquitto into
a real Platform (embedded store) whose configuration carries a `connectors:` entry."""

from __future__ import annotations

import time

import pytest

from plantguard.testing.wait import wait_for

from plantguard.connectors.sparkplug.codec import DataType as T
from plantguard.connectors.sparkplug.codec import Metric
from plantguard.connectors.sparkplug.connector import SparkplugConnector
from plantguard.connectors.sparkplug.tests.edge import EdgeNode
from plantguard.config import parse_config
from plantguard.errors import ConfigError
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict

pytestmark = pytest.mark.mqtt

NODE_PATH = "s1/a1/l1/pump1/plc1"
DEV_PATH = "s1/a1/l1/pump1/drive"
FAR = 10**18



def config(data_dir, broker, **extra) -> dict:
    d = plant_dict(3, data_dir=str(data_dir), alarms=False)
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"].append(
        {"id": "drive", "points": [{"id": "Motor_Speed", "range": {"low": -1e6, "high": 1e6}},
                                   {"id": "Running", "data_type": "bool"}]})
    d["connectors"] = [{
        "type": "sparkplug", "name": "spb", "host": broker.host, "port": broker.port, "client_id": "pg-spb",
        "groups": ["G1"], "primary_host_id": "plantguard", "reconnect_min": 0.05, "reconnect_max": 0.5,
        "devices": [
            {"group": "G1", "edge_node": "N1", "path": NODE_PATH, "metrics": {"Temp": "p0", "Pressure": "p1"},
             "unmapped_metrics": "ignore"},
            {"group": "G1", "edge_node": "N1", "device": "Drive", "path": DEV_PATH},  # default rule: sanitised names
        ],
        **extra,
    }]
    return d


@pytest.fixture
def platform(mosquitto, tmp_path):
    p = Platform(parse_config(config(tmp_path / "data", mosquitto))).start()
    try:
        wait_for(lambda: p.services.status.health()["sources"]["spb"]["connected"], "the Sparkplug connector to connect")
        yield p
    finally:
        p.stop()


@pytest.fixture
def edge(mosquitto, platform):
    conn = connector(platform)
    with EdgeNode(mosquitto.host, mosquitto.port, "G1", "N1") as e:
        # the connector's subscription is in place once it sees a message of its group
        wait_for(lambda: (e.raw("spBv1.0/G1/NCMD/probe", b""), conn.ignored > 0)[1], "the connector's subscription", 10)
        time.sleep(0.05)  # not a timing assertion: lets the last probes arrive before they are counted below
        wait_for(lambda: health(platform)["in_flight"] == 0, "the probes to be acknowledged")
        platform.spb_base = conn.messages  # messages counted by the tests start after the probes
        yield e


def connector(p: Platform) -> SparkplugConnector:
    return next(s for s in p.sources if isinstance(s, SparkplugConnector))


def health(p: Platform) -> dict:
    return p.services.status.health()["sources"]["spb"]


def settled(p: Platform, messages: int) -> bool:
    """The test's first `messages` messages (after the subscription probes) are stored and acknowledged."""
    h = health(p)
    n = messages + getattr(p, "spb_base", 0)
    return h["messages"] >= n and h["in_flight"] == 0 and h["acked"] >= n


def values(p: Platform, tag: str) -> list[tuple[int, float, int]]:
    s = p.services.telemetry.query_raw(tag, 0, FAR)
    return list(zip(s.ts.tolist(), s.value.tolist(), s.quality.tolist()))


def births(e: EdgeNode, t0: int, seq: int | None = None) -> None:
    e.send("NBIRTH", seq=seq, metrics=[Metric(name="Temp", alias=1, datatype=T.Double, value=20.5),
                      Metric(name="Pressure", alias=2, datatype=T.Float, value=1.5),
                      Metric(name="Node Control/Rebirth", alias=3, datatype=T.Boolean, value=False),
                      Metric(name="Properties/Make", alias=4, datatype=T.String, value="ACME")], ts=t0)
    e.send("DBIRTH", [Metric(name="Motor/Speed", alias=10, datatype=T.Int32, value=-1200),
                      Metric(name="Running", alias=11, datatype=T.Boolean, value=True)], device="Drive", ts=t0)


def t_ms() -> int:
    return int(time.time() * 1000) - 60_000


# -- configuration (no broker needed) ------------------------------------------------------------------------
def test_config_problems_are_reported_with_paths(tmp_path):
    d = plant_dict(1, data_dir=str(tmp_path))
    d["connectors"] = [{"type": "sparkplug", "name": "spb", "groups": ["G1", "a/b", "STATE"], "primary_host_id": "h#",
                        "reconnect_min": 5, "reconnect_max": 1,
                        "devices": [{"group": "G2", "edge_node": "N+1", "path": "s1/a1/l1"},
                                    {"group": "G1", "edge_node": "N1", "path": NODE_PATH, "metrics": {"A": "p0", "B": "p0", "C": "bad id"}},
                                    {"group": "G1", "edge_node": "N1", "path": NODE_PATH}]}]
    with pytest.raises(ConfigError) as e:
        parse_config(d)
    paths = {p.path for p in e.value.problems}
    assert {"connectors[0].groups[1]", "connectors[0].groups[2]", "connectors[0].primary_host_id", "connectors[0].reconnect_min",
            "connectors[0].devices[0].group", "connectors[0].devices[0].edge_node", "connectors[0].devices[0].path",
            "connectors[0].devices[1].metrics.B", "connectors[0].devices[1].metrics.C", "connectors[0].devices[2]",
            "connectors[0].devices[2].path"} <= paths
    with pytest.raises(ConfigError) as e:
        parse_config({**d, "connectors": [{"type": "sparkplug", "name": "spb", "groups": [], "qos": 0}]})
    assert {"connectors[0].groups", "connectors[0].qos"} <= {p.path for p in e.value.problems}


# -- end to end -----------------------------------------------------------------------------------------------
def test_births_then_data_are_stored_on_mapped_points(platform, edge):
    t0 = t_ms()
    births(edge, t0)
    edge.send("NDATA", [Metric(alias=1, value=21.0), Metric(alias=2, value=1.75, timestamp=t0 + 5)], ts=t0 + 10)  # aliases only
    edge.send("DDATA", [Metric(alias=10, value=1500, timestamp=t0 + 20), Metric(name="Running", value=False)], device="Drive", ts=t0 + 30)
    wait_for(lambda: settled(platform, 4), "4 Sparkplug messages to be stored and acknowledged")

    assert values(platform, f"{NODE_PATH}/p0") == [(t0 * 1000, 20.5, 0), ((t0 + 10) * 1000, 21.0, 0)]  # payload time
    assert values(platform, f"{NODE_PATH}/p1") == [(t0 * 1000, 1.5, 0), ((t0 + 5) * 1000, 1.75, 0)]  # metric time wins
    assert values(platform, f"{DEV_PATH}/Motor_Speed") == [(t0 * 1000, -1200.0, 0), ((t0 + 20) * 1000, 1500.0, 0)]
    assert values(platform, f"{DEV_PATH}/Running") == [(t0 * 1000, 1.0, 0), ((t0 + 30) * 1000, 0.0, 0)]
    h = health(platform)
    node = h["nodes"]["G1/N1"]
    assert node["online"] and node["devices"]["Drive"]["online"] and node["last_seq"] == 3 and node["gaps"] == 0
    assert h["ok"] and h["bad_payloads"] == 0 and h["rebirths_requested"] == 0
    assert platform.pipeline.stats.rejected == 0  # control and text metrics were not sent as readings
    assert edge.rebirth_requests() == 0


def test_sequence_gap_requests_rebirth(platform, edge):
    t0 = t_ms()
    births(edge, t0)
    edge.send("NDATA", [Metric(alias=1, value=1.0)], ts=t0 + 1)
    edge.seq = 200  # messages 3..199 lost
    edge.send("NDATA", [Metric(alias=1, value=2.0)], ts=t0 + 2)
    wait_for(lambda: edge.rebirth_requests() == 1, "the rebirth request (NCMD) at the edge node")
    wait_for(lambda: settled(platform, 4), "messages stored")
    node = health(platform)["nodes"]["G1/N1"]
    assert node["gaps"] == 1 and node["rebirths_requested"] == 1 and node["last_seq"] == 200
    # the reset is a security event on the plant devices the node feeds, with the sequence numbers as evidence
    from plantguard.security.events import list_events

    evs = list_events(platform.store, rule="behaviour.sequence_reset")
    assert sorted(e.device for e in evs) == sorted([NODE_PATH, DEV_PATH])
    assert all(e.evidence["expected"] == 3 and e.evidence["seq"] == 200 and e.evidence["node"] == "G1/N1" for e in evs)

    # the node answers with a new birth (here at seq 253, to cross the wrap): 253, 254, 255, 0, 1, ... is no gap
    births(edge, t0 + 3, seq=253)
    for i in range(10):
        edge.send("NDATA", [Metric(alias=1, value=float(i))], ts=t0 + 10 + i)
    wait_for(lambda: settled(platform, 16), "messages stored")
    node = health(platform)["nodes"]["G1/N1"]
    assert node["gaps"] == 1 and node["last_seq"] == 8 and node["rebirths_requested"] == 1
    assert len(values(platform, f"{NODE_PATH}/p0")) == 2 + 1 + 1 + 10


def test_data_before_birth_and_unknown_alias_request_rebirth(platform, edge):
    t0 = t_ms()
    edge.send("NDATA", [Metric(alias=1, value=5.0)], ts=t0)
    wait_for(lambda: edge.rebirth_requests() == 1, "a rebirth request for data before the birth")
    births(edge, t0 + 1)
    edge.send("NDATA", [Metric(alias=99, value=5.0), Metric(alias=1, value=6.0)], ts=t0 + 2)
    wait_for(lambda: edge.rebirth_requests() == 2, "a rebirth request for an alias never born")
    edge.send("DDATA", [Metric(alias=10, value=1)], device="Other", ts=t0 + 3)  # a device never born
    wait_for(lambda: settled(platform, 5), "messages stored")
    node = health(platform)["nodes"]["G1/N1"]
    assert node["before_birth"] == 2 and node["unknown_aliases"] == 1
    assert node["rebirths_requested"] == 2  # the third cause came within rebirth_interval: no NCMD storm
    assert values(platform, f"{NODE_PATH}/p0") == [((t0 + 1) * 1000, 20.5, 0), ((t0 + 2) * 1000, 6.0, 0)]


def test_death_marks_offline_and_latest_values_bad(platform, edge):
    t0 = t_ms()
    births(edge, t0)
    edge.send("DDATA", [Metric(alias=10, value=900)], device="Drive", ts=t0 + 10)
    edge.send("DDEATH", [], device="Drive", ts=t0 + 20)
    wait_for(lambda: settled(platform, 4), "messages stored")
    node = health(platform)["nodes"]["G1/N1"]
    assert node["online"] and not node["devices"]["Drive"]["online"]
    assert values(platform, f"{DEV_PATH}/Motor_Speed")[-1] == ((t0 + 20) * 1000, 900.0, 2)
    assert platform.services.telemetry.latest([f"{DEV_PATH}/Running"])[f"{DEV_PATH}/Running"]["quality"] == 2

    edge.send("DBIRTH", [Metric(name="Motor/Speed", alias=10, datatype=T.Int32, value=950)], device="Drive", ts=t0 + 30)
    edge.bd_seq = 7  # the will of an older session must not kill the current one
    edge.send("NDEATH", [], ts=t0 + 40)
    wait_for(lambda: health(platform)["nodes"]["G1/N1"]["stale_deaths"] == 1, "the stale NDEATH")
    assert health(platform)["nodes"]["G1/N1"]["online"]
    edge.bd_seq = 0
    edge.send("NDEATH", [], ts=t0 + 50)
    wait_for(lambda: settled(platform, 7), "messages stored")
    node = health(platform)["nodes"]["G1/N1"]
    assert not node["online"] and not node["devices"]["Drive"]["online"] and node["deaths"] == 1
    latest = platform.services.telemetry.latest([f"{NODE_PATH}/p0", f"{NODE_PATH}/p1", f"{DEV_PATH}/Motor_Speed", f"{DEV_PATH}/Running"])
    assert latest[f"{NODE_PATH}/p0"] == {"ts": (t0 + 50) * 1000, "value": 20.5, "quality": 2}
    assert latest[f"{DEV_PATH}/Motor_Speed"] == {"ts": (t0 + 50) * 1000, "value": 950.0, "quality": 2}
    assert all(v["quality"] == 2 for v in latest.values())
    assert not health(platform)["rebirths_requested"]


def test_undecodable_payload_is_dead_lettered_and_later_messages_are_fine(platform, edge):
    t0 = t_ms()
    births(edge, t0)
    edge.raw(edge.topic("NDATA"), b"\xff\xff\xff not protobuf")
    edge.send("NDATA", [Metric(alias=1, value=30.0)], ts=t0 + 1, seq=2)
    wait_for(lambda: settled(platform, 4), "messages stored")
    h = health(platform)
    assert h["bad_payloads"] == 1 and h["nodes"]["G1/N1"]["bad_payloads"] == 1 and h["nodes"]["G1/N1"]["gaps"] == 0
    dead = platform.store.dead_letters(source="sparkplug")
    assert len(dead) == 1 and "spBv1.0/G1/NDATA/N1" in dead[0]["reason"] and "not a Sparkplug B payload" in dead[0]["reason"]
    assert values(platform, f"{NODE_PATH}/p0")[-1] == ((t0 + 1) * 1000, 30.0, 0)
    assert h["ok"]
