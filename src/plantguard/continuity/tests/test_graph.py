"""Impact analysis on hand-built graphs whose answers are worked out by hand."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from plantguard.continuity.config import ContinuitySettings
from plantguard.continuity.graph import Graph, validate

H = 3600.0


def cs(services, nodes):
    return ContinuitySettings.model_validate({"services": services, "nodes": nodes})


def svc(id, deps=(), **kw):
    return {"id": id, "depends_on": list(deps), "mtpd": kw.pop("mtpd", "24h"), "rto": kw.pop("rto", "4h"), **kw}


LINE = cs([svc("out", ["fill"], cost_per_hour=1000, mbco=0.5)], [
    {"id": "fill", "kind": "process", "depends_on": ["plc"],
     "redundancy": [{"members": ["pumpA", "pumpB"], "at_least": 1}]},
    {"id": "pumpA", "kind": "device", "recovery": "6h"},
    {"id": "pumpB", "kind": "device", "recovery": "6h"},
    {"id": "plc", "kind": "device", "depends_on": ["gw"], "recovery": "2h"},
    {"id": "gw", "kind": "gateway", "depends_on": ["net"], "buffer": "4h", "recovery": "1h"},
    {"id": "net", "kind": "network", "recovery": "8h"},
])


def test_redundancy_holds_one_member_and_degrades():
    g = Graph.build(LINE)
    imp = g.impact({"pumpA": 0})
    s = imp.services["out"]
    assert s.down_at == math.inf and s.degraded_at == 0          # no spare left: degraded, still producing
    imp = g.impact({"pumpA": 0, "pumpB": 600})
    assert imp.services["out"].down_at == 600                      # the second loss takes it down
    assert imp.services["out"].path[:2] == ["out", "fill"]


def test_buffer_autonomy_delays_the_cascade():
    g = Graph.build(LINE)
    imp = g.impact({"net": 0})
    assert imp.nodes["gw"].down_at == 4 * H and imp.nodes["gw"].degraded_at == 0
    assert imp.services["out"].down_at == 4 * H
    assert imp.services["out"].path == ["out", "fill", "plc", "gw", "net"]
    assert imp.cost_per_hour_at(0) == 0 and imp.cost_per_hour_at(5 * H) == 1000


def test_workaround_keeps_a_share_for_its_limit_and_mbco_decides_disruption():
    s = cs([svc("out", ["line"], mbco=0.6)], [
        {"id": "line", "kind": "process", "depends_on": ["robot"],
         "workaround": {"capacity": 0.5, "limit": "3h", "description": "pack by hand"}},
        {"id": "robot", "kind": "device", "recovery": "10h"}])
    g = Graph.build(s)
    imp = g.impact({"robot": 0})
    o = imp.services["out"]
    assert (o.degraded_at, o.down_at, o.capacity) == (0, 3 * H, 0.5)
    assert o.disrupted_at == 0                                     # 50 % is below the 60 % MBCO
    est = g.estimates("out")
    assert est["estimated_rto_s"] == 10 * H and est["rto_met"] is False


def test_exactly_and_at_least_k_of_n_with_degraded_threshold():
    s = cs([svc("out", ["heads"])], [
        {"id": "heads", "kind": "process", "redundancy": [
            {"members": ["h1", "h2", "h3", "h4"], "at_least": 2, "degraded_below": 3}]},
        *[{"id": f"h{i}", "kind": "device"} for i in range(1, 5)]])
    g = Graph.build(s)
    assert "out" not in g.impact({"h1": 0}).services                # 3 of 4 up: still ok
    two = g.impact({"h1": 0, "h2": 100}).services["out"]
    assert two.degraded_at == 100 and two.down_at == math.inf
    three = g.impact({"h1": 0, "h2": 100, "h3": 200}).services["out"]
    assert three.down_at == 200
    prop = cs([svc("out", ["heads"], mbco=0.6)], [
        {"id": "heads", "kind": "process", "redundancy": [{"members": ["h1", "h2", "h3", "h4"], "at_least": 1, "proportional": True}]},
        *[{"id": f"h{i}", "kind": "device"} for i in range(1, 5)]])
    p = Graph.build(prop).impact({"h1": 0, "h2": 50}).services["out"]
    assert (p.degraded_at, p.capacity, p.disrupted_at, p.down_at) == (0, 0.5, 0, math.inf)  # half the heads: below a 60 % MBCO
    ha = cs([svc("out", ["db"])], [{"id": "db", "redundancy": [{"members": ["m1", "m2"], "exactly": 1}]},
                                   {"id": "m1", "kind": "device"}, {"id": "m2", "kind": "device"}])
    assert Graph.build(ha).impact({"m1": 0}).services["out"].down_at == math.inf


def test_estimates_rpo_from_buffer_and_backups_with_paths():
    g = Graph.build(LINE)
    est = g.estimates("out")
    # the network is down 8 h; the gateway buffers 4 h: the PLC's data is lost for the other 4 h
    assert est["estimated_rpo_s"] == 4 * H
    assert est["rpo_path"][0] == "plc" and est["rpo_path"][-1] == "net"
    # the network outage: down after 4 h, back after 8 h -> 4 h; the PLC: 2 h from its failure
    assert est["estimated_rto_s"] == 4 * H and est["rto_path"][-1] == "net"
    spof = {d["node"] for d in g.single_points("out")}
    assert spof == {"plc", "gw", "net"}                          # not the pumps: they back each other up


def test_validation_reports_field_paths():
    bad = cs([svc("out", ["fill", "ghost"])], [
        {"id": "fill", "depends_on": ["a"], "redundancy": [{"members": ["a", "b"], "at_least": 3}]},
        {"id": "a", "kind": "device"}, {"id": "b", "kind": "device"}, {"id": "a", "kind": "device"}])
    got = dict(validate(bad))
    assert "dangling" in got["services[0].depends_on[1]"]
    assert "cannot be met" in got["nodes[0].redundancy[0].at_least"]
    assert "duplicate" in got["nodes[3].id"]
    cyc = cs([svc("out", ["x"])], [{"id": "x", "depends_on": ["y"]}, {"id": "y", "depends_on": ["x"], "kind": "device"}])
    (path, msg), = validate(cyc)
    assert msg.startswith("cycle:") and ".depends_on[0]" in path
    lonely = cs([svc("out", ["x"])], [{"id": "x", "kind": "process"}])
    assert validate(lonely) == [("services[0].depends_on", "service 'out' has no path to any asset or device")]


def test_rto_must_lie_within_mtpd():
    with pytest.raises(Exception, match="within the mtpd"):
        cs([svc("out", [], rto="10h", mtpd="8h")], [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 29), min_size=1, max_size=5), st.integers(0, 2**31))
def test_a_cascade_never_comes_before_its_cause(failed, seed):
    """On random layered graphs: a node is never down before the earliest failure it depends on, nor degraded
    after it is down."""
    import random

    rnd = random.Random(seed)
    nodes = []
    for i in range(30):
        deps = [f"n{j}" for j in rnd.sample(range(i), min(i, rnd.randint(0, 3)))] if i else []
        nodes.append({"id": f"n{i}", "kind": "device" if i < 5 else "process", "depends_on": deps,
                      "buffer": rnd.choice([0, 60, 0])})
    s = cs([svc("out", ["n29"])], nodes)
    g = Graph.build(s)
    imp = g.impact({f"n{i}": 10.0 * k for k, i in enumerate(failed)})
    first = min(imp.failed.values())
    for n in imp.nodes.values():
        assert n.degraded_at <= n.down_at
        assert n.degraded_at >= first
