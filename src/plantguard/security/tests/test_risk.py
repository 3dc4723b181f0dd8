"""The risk register: the documented weights, the trend and history, the CSV export, and the API."""

from __future__ import annotations

import csv
import io

from plantguard.security.posture import Finding
from plantguard.security.risk import Dependents, compute, level_of, to_csv


def f(sev: str, dev: str = "d1", check: str = "x") -> Finding:
    return Finding(check, sev, dev, f"a {sev} finding", {}, "fix it")


def test_likelihood_times_impact_with_the_documented_weights():
    entries = {e.device: e for e in compute(
        {"d1": [f("critical"), f("low")], "d2": [f("medium")]},
        {"d1": "safety", "d2": None, "d3": "low"},
        {"d1": Dependents(5, True, 3), "d3": Dependents(1)})}
    d1, d2, d3 = entries["d1"], entries["d2"], entries["d3"]
    assert (d1.likelihood, d1.impact, d1.score, d1.level) == (5.0, 5.0, 25.0, "critical")  # 1 + 4 + 0.25; 5 + 0.5 + 1, capped
    assert (d2.likelihood, d2.impact, d2.score, d2.level) == (3.0, 2.0, 6.0, "medium")
    assert (d3.likelihood, d3.impact, d3.score, d3.level) == (1.0, 1.0, 1.0, "low")  # nothing found: the floor
    assert [e.device for e in compute({"d2": [f("medium")]}, {"d1": "high", "d2": "high"}, {})] == ["d2", "d1"]
    assert [level_of(x) for x in (5.9, 6, 11.9, 12, 19.9, 20)] == ["low", "medium", "medium", "high", "high", "critical"]


def test_events_raise_the_likelihood_and_reasons_explain_the_score():
    [e] = compute({"d1": [f("low")]}, {"d1": "medium"}, {}, events={"d1": 2})
    assert e.likelihood == 3.0 and any("security event" in r for r in e.reasons) and any("criticality medium" in r for r in e.reasons)


def test_csv_export_has_one_row_per_device():
    rows = list(csv.reader(io.StringIO(to_csv(compute({"a": [f("high", "a")]}, {"a": "high", "b": None}, {})))))
    assert rows[0][:3] == ["device", "score", "level"] and [r[0] for r in rows[1:]] == ["a", "b"]


def test_the_register_over_the_api_keeps_history_and_trend(tmp_path):
    """Reading the register writes nothing; running the audit (or the platform's background run) records it."""
    from fastapi.testclient import TestClient

    from plantguard.api.app import create_app
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.testing.auth import auth_headers
    from plantguard.testing.factories import plant_dict

    class Clock:
        t = 1_800_000_000_000_000

        def __call__(self):
            return self.t

    clock = Clock()
    d = plant_dict(2, data_dir=str(tmp_path))
    d["connectors"] = [{"type": "modbus", "name": "plc", "transport": {"kind": "tcp", "host": "10.0.0.5", "port": 502},
                        "devices": [{"device": "s1/a1/l1/pump1/plc1", "points": [{"id": "p0", "address": 0}]}]}]
    p = Platform(parse_config(d), clock=clock)
    try:
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=auth_headers(p, "engineer")) as c:
            [first] = c.get("/api/security/risks").json()
            assert first["device"] == "s1/a1/l1/pump1/plc1" and first["trend"] == "new" and first["score"] > 1
            assert c.get("/api/security/risks/s1/a1/l1/pump1/plc1/history").json() == []  # a read recorded nothing
            assert p.store.fetch("SELECT count(*) FROM device_identity") == [(0,)]
            p.services.risks.record()  # what the background run does
            clock.t += 10**6
            [again] = c.get("/api/security/risks").json()
            assert again["trend"] == "steady" and again["previous"] == first["score"]
            doc = c.get("/api/model").json()
            doc["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["inventory"] = {"criticality": "safety", "owner": "ot"}
            assert c.put("/api/model", json={"sites": doc["sites"]}).status_code == 200
            clock.t += 10**6
            [up] = c.get("/api/security/risks").json()
            assert up["trend"] == "up" and up["score"] > first["score"]
            p.services.risks.record()
            hist = c.get("/api/security/risks/s1/a1/l1/pump1/plc1/history").json()
            assert [h["score"] for h in hist] == [up["score"], first["score"]]  # only changes are kept
            r = c.get("/api/security/risks", params={"format": "csv"})
            assert r.headers["content-type"].startswith("text/csv") and "s1/a1/l1/pump1/plc1" in r.text
    finally:
        p.stop()


def test_an_unknown_severity_filter_is_refused_not_ignored(tmp_path):
    from fastapi.testclient import TestClient

    from plantguard.api.app import create_app
    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.testing.auth import auth_headers
    from plantguard.testing.factories import plant_dict

    p = Platform(parse_config(plant_dict(1, data_dir=str(tmp_path))))
    try:
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=auth_headers(p, "engineer")) as c:
            assert c.get("/api/security/findings", params={"severity": "absurd"}).status_code in (400, 422)
            assert c.get("/api/security/findings", params={"severity": "high"}).status_code == 200
    finally:
        p.stop()
