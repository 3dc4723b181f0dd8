"""The HTTP API against a real Platform (embedded store in tmp_path, writer thread running)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from plantguard.testing.auth import auth_headers, login
from plantguard.api.app import create_app
from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.ingest import parse
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict, tag
from plantguard.timeutil import to_us

# The API refuses state-changing requests without a JSON content type (415); these tests send JSON bodies.
JSON_HEADERS = {"content-type": "application/json"}

T0 = to_us("2024-05-01T12:00:00Z")  # the platform's "now" in every test
T0_MS = T0 // 1000
H_MS = 3_600_000
P0, P1, P2 = tag(0), tag(1), tag(2)
DEVICE = "s1/a1/l1/pump1/plc1"
POINT_PATH0 = "sites[0].areas[0].lines[0].assets[0].devices[0].points"


class Clock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def make_platform(tmp_path, *, alarms: bool = False, clock: Clock | None = None, **ingest) -> Platform:
    d = plant_dict(3, data_dir=str(tmp_path / "data"))
    if ingest:
        d["ingest"] = ingest
    return Platform(parse_config(d), clock=clock or Clock(), alarms=alarms)


@pytest.fixture
def platform(tmp_path):
    p = make_platform(tmp_path).start()
    yield p
    p.stop()


@pytest.fixture
def client(platform):
    with TestClient(create_app(platform.services), base_url="http://127.0.0.1", headers={**JSON_HEADERS, **auth_headers(platform)}) as c:
        yield c


def ingest(client, readings) -> dict:
    r = client.post("/api/ingest", content=json.dumps({"readings": readings}))
    assert r.status_code == 200, r.text
    return r.json()


def problems(r) -> dict[str, str]:
    return {p["path"]: p["message"] for p in r.json()["problems"]}


# -- plant model: whole document ---------------------------------------------------------------------------
def test_get_model_returns_hierarchy_and_version(client):
    r = client.get("/api/model")
    assert r.status_code == 200
    body = r.json()
    assert body["model_version"] >= 1
    assert [p["id"] for p in body["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]] == ["p0", "p1", "p2"]
    assert "storage" not in body  # platform settings (paths, credentials) are not part of the model


def test_put_model_json_round_trips_and_bumps_version(client):
    doc = client.get("/api/model").json()
    doc["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"].append({"id": "flow", "unit": "m3/h"})
    r = client.put("/api/model", json=doc)
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == doc["model_version"] + 1
    assert f"{DEVICE}/flow" in [p["tag"] for p in client.get("/api/points").json()["data"]]


def test_put_model_yaml(client):
    d = plant_dict(1)
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"].append({"id": "speed", "unit": "rpm"})
    r = client.put("/api/model", content=yaml.safe_dump(d), headers={"content-type": "application/yaml"})
    assert r.status_code == 200, r.text
    assert [p["tag"] for p in client.get("/api/points").json()["data"]] == [P0, f"{DEVICE}/speed"]


def test_put_invalid_model_lists_every_problem_and_keeps_the_stored_model(client):
    before = client.get("/api/model").json()
    doc = json.loads(json.dumps(before))
    pts = doc["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]
    pts[0]["range"] = {"low": 10, "high": 0}
    pts[1]["id"] = "p0"
    pts[2]["colour"] = "red"
    r = client.put("/api/model", json=doc)
    assert r.status_code == 422
    # schema errors are reported first; the document is then fixed and semantic errors show up
    assert f"{POINT_PATH0}[2].colour" in problems(r)
    del pts[2]["colour"]
    r = client.put("/api/model", json=doc)
    assert r.status_code == 422
    found = problems(r)
    assert found.keys() >= {f"{POINT_PATH0}[0].range", f"{POINT_PATH0}[1].id"}
    assert "duplicate id 'p0'" in found[f"{POINT_PATH0}[1].id"]
    assert r.json()["detail"].startswith(f"{len(found)} configuration error")
    assert client.get("/api/model").json() == before


def test_put_model_bad_bodies(client):
    assert client.put("/api/model", content=b"{not json").status_code == 400
    r = client.put("/api/model", content=b"sites: [\n  - id: [", headers={"content-type": "application/yaml"})
    assert r.status_code == 400 and "not valid YAML" in r.json()["detail"]
    assert client.put("/api/model", json=[1, 2]).status_code == 400


def test_put_model_with_outdated_version_is_a_conflict(client):
    doc = client.get("/api/model").json()
    assert client.put("/api/model", json=doc).status_code == 200
    doc["model_version"] -= 1
    r = client.put("/api/model", json=doc)
    assert r.status_code == 409 and "outdated" in r.json()["detail"]


# -- plant model: fine-grained edits -------------------------------------------------------------------------
def test_point_crud(client):
    r = client.post(f"/api/model/devices/{DEVICE}/points", json={"id": "p9", "unit": "bar", "range": {"low": 0, "high": 16}})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["path"] == f"{DEVICE}/p9" and created["data_type"] == "float"  # defaults filled in
    assert client.get(f"/api/model/points/{DEVICE}/p9").json()["unit"] == "bar"
    assert client.get(f"/api/model/devices/{DEVICE}/points").json()["count"] == 4

    r = client.patch(f"/api/model/points/{DEVICE}/p9", json={"unit": "kPa", "range": None})
    assert r.status_code == 200, r.text
    assert r.json()["unit"] == "kPa" and "range" not in r.json()

    # the new point is live: the pipeline accepts readings for it
    assert ingest(client, [{"point": f"{DEVICE}/p9", "ts": T0_MS - 1000, "value": 1.5}])["accepted"] == 1

    assert client.delete(f"/api/model/points/{DEVICE}/p9").status_code == 204
    assert client.get(f"/api/model/points/{DEVICE}/p9").status_code == 404
    res = ingest(client, [{"point": f"{DEVICE}/p9", "ts": T0_MS, "value": 2}])
    assert res["rejected"] == 1 and "retired" in res["errors"][0]["reason"]
    # its history stays queryable
    assert client.get("/api/telemetry/raw", params={"point": f"{DEVICE}/p9", "start": "now-1h"}).json()["count"] == 1


def test_create_every_level_and_list(client):
    steps = [
        ("/api/model/sites", {"id": "s2", "name": "Second", "timezone": "Europe/Paris"}, "s2"),
        ("/api/model/sites/s2/areas", {"id": "a1"}, "s2/a1"),
        ("/api/model/areas/s2/a1/lines", {"id": "l1"}, "s2/a1/l1"),
        ("/api/model/lines/s2/a1/l1/assets", {"id": "mixer", "kind": "mixer"}, "s2/a1/l1/mixer"),
        ("/api/model/assets/s2/a1/l1/mixer/devices", {"id": "plc", "points": [{"id": "t"}]}, "s2/a1/l1/mixer/plc"),
        ("/api/model/devices/s2/a1/l1/mixer/plc/points", {"id": "speed", "unit": "rpm"}, "s2/a1/l1/mixer/plc/speed"),
    ]
    for url, body, path in steps:
        r = client.post(url, json=body)
        assert r.status_code == 201, (url, r.text)
        assert r.json()["path"] == path
    assert [s["path"] for s in client.get("/api/model/sites").json()["data"]] == ["s1", "s2"]
    assert client.get("/api/model/sites/s2/areas").json()["count"] == 1
    assert client.get("/api/model/areas/s2/a1/lines").json()["data"][0]["path"] == "s2/a1/l1"
    assert client.get("/api/model/lines/s2/a1/l1/assets").json()["data"][0]["kind"] == "mixer"
    assert client.get("/api/model/assets/s2/a1/l1/mixer/devices").json()["data"][0]["path"] == "s2/a1/l1/mixer/plc"
    assert [p["path"] for p in client.get("/api/model/devices/s2/a1/l1/mixer/plc/points").json()["data"]] == [
        "s2/a1/l1/mixer/plc/t", "s2/a1/l1/mixer/plc/speed"]
    for url in ("/api/model/sites/s2", "/api/model/areas/s2/a1", "/api/model/lines/s2/a1/l1", "/api/model/assets/s2/a1/l1/mixer",
                "/api/model/devices/s2/a1/l1/mixer/plc", "/api/model/points/s2/a1/l1/mixer/plc/speed"):
        assert client.get(url).status_code == 200, url

    r = client.patch("/api/model/sites/s2", json={"name": "Renamed"})
    assert r.status_code == 200 and r.json()["name"] == "Renamed"
    assert client.patch("/api/model/assets/s2/a1/l1/mixer", json={"kind": "blender"}).json()["kind"] == "blender"
    assert client.patch("/api/model/devices/s2/a1/l1/mixer/plc", json={"protocol": "modbus"}).json()["protocol"] == "modbus"

    assert client.delete("/api/model/sites/s2").status_code == 204  # and everything below it
    assert client.get("/api/points", params={"prefix": "s2/"}).json()["count"] == 0


def test_invalid_edits_are_422_with_document_paths_and_change_nothing(client):
    before = client.get("/api/model").json()
    r = client.post(f"/api/model/devices/{DEVICE}/points", json={"id": "bad", "range": {"low": 5, "high": 1}, "data_type": "text"})
    assert r.status_code == 422
    assert f"{POINT_PATH0}[3].data_type" in problems(r)
    r = client.post(f"/api/model/devices/{DEVICE}/points", json={"id": "bad", "range": {"low": 5, "high": 1}})
    assert r.status_code == 422
    assert problems(r) == {f"{POINT_PATH0}[3].range": "low (5) must be below high (1)"}
    r = client.patch(f"/api/model/points/{P0}", json={"alarms": {"limits": {"hi": 5000}}})
    assert r.status_code == 422
    assert "outside the engineering range" in problems(r)[f"{POINT_PATH0}[0].alarms.limits.hi"]
    r = client.post("/api/model/sites", json={"name": "no id"})
    assert r.status_code == 422 and "sites[1].id" in problems(r)
    r = client.patch("/api/model/sites/s1", json={"timezone": "Mars/Olympus"})
    assert r.status_code == 422 and "unknown time zone" in problems(r)["sites[0].timezone"]
    r = client.patch(f"/api/model/points/{P0}", json={"id": "renamed"})
    assert r.status_code == 422 and f"{POINT_PATH0}[0].id" in problems(r)
    r = client.patch(f"/api/model/devices/{DEVICE}", json={"points": []})
    assert r.status_code == 422 and "sites[0].areas[0].lines[0].assets[0].devices[0].points" in problems(r)
    assert client.post(f"/api/model/devices/{DEVICE}/points", content=b"[1]").status_code == 400
    assert client.post(f"/api/model/devices/{DEVICE}/points", content=b"{oops").status_code == 400
    assert client.get("/api/model").json() == before


def test_create_existing_is_409_and_unknown_paths_are_404(client):
    r = client.post(f"/api/model/devices/{DEVICE}/points", json={"id": "p1"})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    assert client.get(f"/api/model/points/{DEVICE}/nope").status_code == 404
    assert client.get("/api/model/devices/s1/a1/l1/pump1/nope/points").status_code == 404
    assert client.post("/api/model/devices/s1/a1/l1/nope/plc1/points", json={"id": "x"}).status_code == 404
    assert client.patch("/api/model/sites/zz", json={"name": "x"}).status_code == 404
    assert client.delete("/api/model/areas/s1/zz").status_code == 404
    assert client.get("/api/model/points/s1/a1").status_code == 404  # too few segments for a point


def test_entities_named_like_collections_stay_addressable(client):
    # a device whose id is 'points' must not be mistaken for the points collection of its asset
    assert client.post("/api/model/assets/s1/a1/l1/pump1/devices", json={"id": "points"}).status_code == 201
    r = client.get("/api/model/devices/s1/a1/l1/pump1/points")
    assert r.status_code == 200 and r.json()["path"] == "s1/a1/l1/pump1/points"
    assert client.get("/api/model/devices/s1/a1/l1/pump1/points/points").json() == {"data": [], "count": 0}


def test_flat_points_list(client):
    r = client.get("/api/points")
    assert r.json()["count"] == 3
    first = r.json()["data"][0]
    assert first == {"tag": P0, "name": None, "unit": "degC", "data_type": "float", "range": {"low": -1000.0, "high": 1000.0},
                     "period": "1s", "criticality": "medium", "device": DEVICE, "auto": False, "shadow": False}
    assert client.get("/api/points", params={"prefix": P1}).json()["count"] == 1
    assert client.get("/api/points", params={"prefix": "elsewhere/"}).json() == {"data": [], "count": 0}


# -- ingest ------------------------------------------------------------------------------------------------
def test_ingest_stores_readings(client):
    res = ingest(client, [
        {"point": P0, "ts": "2024-05-01T11:00:00Z", "value": 50.5},
        {"point": P0, "ts": "2024-05-01T13:00:00+02:00", "value": 51, "quality": "uncertain"},  # 11:00:00 UTC too: duplicate
        {"point": P1, "ts": T0_MS - 1000, "value": True},
    ])
    assert res == {"accepted": 2, "rejected": 0, "duplicates": 1, "errors": []}
    r = client.post("/api/ingest", content=json.dumps([{"p": P2, "t": T0_MS - 5, "v": 7}]))  # bare list, short keys
    assert r.json()["accepted"] == 1


def test_ingest_rejects_bad_readings_with_reasons_and_stores_the_rest(client):
    res = ingest(client, [
        {"point": P0, "ts": T0_MS - 3000, "value": 1.0},
        {"point": "s1/a1/l1/pump1/plc1/ghost", "ts": T0_MS - 3000, "value": 1.0},
        {"point": P0, "ts": "NaN", "value": 2.0},
        {"point": P0, "ts": 1e300, "value": 3.0},
        {"point": P0, "ts": T0_MS + 24 * H_MS, "value": 4.0},
        {"point": P1, "ts": T0_MS - 3000, "value": "NaN"},
        {"point": P1, "ts": T0_MS - 2000, "value": 5000},
        {"point": P2, "ts": T0_MS - 3000, "value": 6.0, "quality": "excellent"},
        "not an object",
        {"point": P2, "ts": T0_MS - 2000, "value": 7.0},
    ])
    assert (res["accepted"], res["rejected"], res["duplicates"]) == (2, 8, 0)
    reasons = [(e["point"], e["reason"]) for e in res["errors"]]
    text = " | ".join(r for _, r in reasons)
    for expected in ("unknown point", "invalid timestamp", "in the future", "value must be a number", "outside the engineering range",
                     "quality must be", "not a JSON object"):
        assert expected in text, expected
    ghost = next(e for e in res["errors"] if e["point"] == "s1/a1/l1/pump1/plc1/ghost")
    assert ghost["reason"].startswith("unknown point") and ghost["ts"] == "2024-05-01T11:59:57Z"
    future = next(e for e in res["errors"] if "future" in e["reason"])
    assert future["ts"] == "2024-05-02T12:00:00Z"

    raw0 = client.get("/api/telemetry/raw", params={"point": P0, "start": "now-1h"}).json()
    assert [d["value"] for d in raw0["data"]] == [1.0]
    raw2 = client.get("/api/telemetry/raw", params={"point": P2, "start": "now-1h"}).json()
    assert [d["value"] for d in raw2["data"]] == [7.0]
    dead = client.get("/api/dead-letters", params={"source": "http"}).json()
    assert dead["count"] == 8
    assert {d["point"] for d in dead["data"]} >= {"s1/a1/l1/pump1/plc1/ghost", P0, P1, P2}


def test_duplicate_requests_are_counted_and_stored_once(client):
    readings = [{"point": P1, "ts": T0_MS - i * 1000, "value": float(i)} for i in range(1, 6)]
    assert ingest(client, readings)["accepted"] == 5
    again = ingest(client, readings)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 5, 0)
    late = ingest(client, readings[:2] + [{"point": P1, "ts": T0_MS - 10_000, "value": 10.0}])  # older but new
    assert (late["accepted"], late["duplicates"]) == (1, 2)
    assert client.get("/api/telemetry/raw", params={"point": P1, "start": "now-1h"}).json()["count"] == 6


def test_ingest_malformed_payloads_are_400(client):
    r = client.post("/api/ingest", content=b'{"readings": [ {"point": "x", ')
    assert r.status_code == 400 and r.json()["detail"].startswith("malformed JSON")
    r = client.post("/api/ingest", content=b'[{"point": "x", "ts": NaN, "value": 1}]')  # NaN is not JSON
    assert r.status_code == 400
    r = client.post("/api/ingest", content=b'{"data": []}')
    assert r.status_code == 400 and "readings" in r.json()["detail"]
    assert client.post("/api/ingest", content=b"").status_code == 400
    assert client.get("/api/dead-letters").json()["count"] == 0  # nothing was accepted for processing


def test_ingest_empty_list(client):
    assert ingest(client, []) == {"accepted": 0, "rejected": 0, "duplicates": 0, "errors": []}


def test_ingest_oversize_is_413(tmp_path):
    p = make_platform(tmp_path, max_payload_bytes=1024).start()
    try:
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers={**JSON_HEADERS, **auth_headers(p)}) as c:
            big = json.dumps([{"point": P0, "ts": T0_MS - i, "value": 1.0} for i in range(40)]).encode()
            assert len(big) > 1024
            r = c.post("/api/ingest", content=big)  # announced by Content-Length
            assert r.status_code == 413 and "limit of 1024 bytes" in r.json()["detail"]
            r = c.post("/api/ingest", content=iter([big[:600], big[600:]]))  # chunked: caught while reading
            assert r.status_code == 413
            small = json.dumps([{"point": P0, "ts": T0_MS - 1, "value": 1.0}]).encode()
            assert c.post("/api/ingest", content=small).json()["accepted"] == 1
    finally:
        p.stop()


def test_ingest_when_queue_is_full_is_503_with_retry_after(tmp_path):
    p = make_platform(tmp_path, max_queue_readings=1000)
    try:
        n = 1000  # fills the queue: the writer is not started yet, so nothing drains it
        p.pipeline.submit(RawBatch.build([P1] * n, (T0 - np.arange(n) * 1000).astype(np.int64), np.zeros(n)))
        app = create_app(p.services)
        app.state.submit_timeout_s = 0
        with TestClient(app, base_url="http://127.0.0.1", headers={**JSON_HEADERS, **auth_headers(app.state.services)}) as c:
            r = c.post("/api/ingest", content=json.dumps([{"point": P0, "ts": T0_MS, "value": 1}]))
            assert r.status_code == 503
            assert r.headers["retry-after"] == "1" and "queue full" in r.json()["detail"]
        p.start()
    finally:
        p.stop()


# -- telemetry ---------------------------------------------------------------------------------------------
@pytest.fixture
def series(client):
    """P0: one reading per minute over the last two hours, value = minutes before T0; the newest is bad."""
    readings = [{"point": P0, "ts": T0_MS - m * 60_000, "value": float(m)} for m in range(1, 121)]
    readings[0]["quality"] = "bad"
    assert ingest(client, readings)["accepted"] == 120
    return readings


def test_raw_query_time_forms(client, series):
    r = client.get("/api/telemetry/raw", params={"point": P0, "start": "now-1h"})
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 60 and body["start"] == "2024-05-01T11:00:00Z" and body["end"] == "2024-05-01T12:00:00Z"
    first, last = body["data"][0], body["data"][-1]
    assert first == {"ts": "2024-05-01T11:00:00Z", "ts_ms": T0_MS - H_MS, "value": 60.0, "quality": "good"}
    assert last["quality"] == "bad" and last["value"] == 1.0

    same = [
        {"start": "2024-05-01T11:00:00Z", "end": "2024-05-01T12:00:00Z"},
        {"start": "2024-05-01T13:00:00+02:00", "end": "2024-05-01T14:00:00+02:00"},
        {"start": str(T0_MS - H_MS), "end": str(T0_MS)},
        {"start": "now-60m", "end": "now"},
        {"start": "now - 3600"},
    ]
    for params in same:
        assert client.get("/api/telemetry/raw", params={"point": P0, **params}).json()["data"] == body["data"], params
    # an unescaped '+' in a query string arrives as a space
    r = client.get(f"/api/telemetry/raw?point={P0}&start=2024-05-01T13:00:00+02:00")
    assert r.json()["count"] == 60
    assert client.get("/api/telemetry/raw", params={"point": P0, "start": "now-30d", "limit": 5}).json()["count"] == 5


def test_raw_query_bad_input(client, series):
    def get(**params):
        return client.get("/api/telemetry/raw", params={"point": P0, **params})

    r = get(start="yesterday")
    assert r.status_code == 400 and r.json()["detail"].startswith("start: invalid time 'yesterday'")
    assert get(start="2024-05-01T11:00:00").status_code == 400  # no offset
    assert get(end="now-2h").status_code == 400  # end before start
    assert "end must be after start" in get(end="now-2h").json()["detail"]
    r = get(limit=0)
    assert r.status_code == 422 and "query.limit" in problems(r)
    assert client.get("/api/telemetry/raw", params={"point": "nope/x"}).status_code == 404
    assert client.get("/api/telemetry/raw").status_code == 422  # point is required


def test_downsample(client, series):
    r = client.get("/api/telemetry/downsample", params={"point": P0, "start": "now-2h", "buckets": 2, "agg": "max"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tier"] == "1h" and body["width_ms"] == H_MS and body["agg"] == "max"
    # bad-quality readings are stored raw but left out of rollups: the newest bucket's max is 59, not 60
    assert [(b["ts"], b["value"], b["count"]) for b in body["data"]] == [
        ("2024-05-01T10:00:00Z", 120.0, 60), ("2024-05-01T11:00:00Z", 60.0, 59)]
    assert body["data"][0]["ts_ms"] == T0_MS - 2 * H_MS

    r = client.get("/api/telemetry/downsample", params={"point": P0, "start": "now-10m", "width": "5m", "agg": "count"})
    body = r.json()
    assert body["tier"] == "1m" and body["width_ms"] == 300_000
    assert [b["value"] for b in body["data"]] == [5.0, 4.0]  # the bad reading is not counted

    r = client.get("/api/telemetry/downsample", params={"point": P0, "start": "now-10m", "width": "90s", "agg": "last"})
    assert r.json()["tier"] == "raw" and r.json()["width_ms"] == 90_000
    default = client.get("/api/telemetry/downsample", params={"point": P0, "start": "now-2h"}).json()  # 500 buckets
    assert default["tier"] == "raw" and default["width_ms"] == 14_400
    assert default["count"] == 119  # one bucket per good reading


def test_downsample_bad_input(client, series):
    def get(**params):
        return client.get("/api/telemetry/downsample", params={"point": P0, **params})

    assert get(agg="median").status_code == 422
    assert get(buckets=10, width="1m").status_code == 400
    assert get(width="fortnight").status_code == 400
    assert get(width="0").status_code == 400
    assert get(start="now-30d", width="1ms").status_code == 400  # too many buckets
    assert get(buckets=0).status_code == 422
    assert client.get("/api/telemetry/downsample", params={"point": "x", "buckets": 1}).status_code == 404


def test_latest(client, series):
    r = client.get("/api/telemetry/latest", params={"points": f"{P0},{P1}"})
    assert r.status_code == 200
    assert r.json() == {"data": [
        {"point": P0, "ts": "2024-05-01T11:59:00Z", "ts_ms": T0_MS - 60_000, "value": 1.0, "quality": "bad"},
        {"point": P1, "ts": None, "ts_ms": None, "value": None, "quality": None},
    ], "count": 2}
    r = client.post("/api/telemetry/latest", json=[P1, P0])
    assert [d["point"] for d in r.json()["data"]] == [P1, P0]
    r = client.post("/api/telemetry/latest", json=[P0, "no/such/point"])
    assert r.status_code == 404 and "no/such/point" in r.json()["detail"]
    assert client.post("/api/telemetry/latest", json={"points": [P0]}).status_code == 422
    assert client.get("/api/telemetry/latest").status_code == 422


# -- alarms ------------------------------------------------------------------------------------------------
@pytest.fixture
def alarm_client(tmp_path):
    clock = Clock()
    p = make_platform(tmp_path, alarms=True, clock=clock).start()
    try:
        # an engineer's dashboard session: actions are recorded as user:ana
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=JSON_HEADERS) as c:
            login(c, p, "engineer", "ana")
            c.clock = clock
            yield c
    finally:
        p.stop()


HI = f"{P0}:HI"


def test_alarm_list_get_and_filters(alarm_client):
    c = alarm_client
    ingest(c, [{"point": P0, "ts": T0_MS - 1000, "value": 85.0}])
    r = c.get("/api/alarms", params={"active": True})
    assert r.status_code == 200
    assert [a["id"] for a in r.json()["data"]] == [HI]
    a = c.get(f"/api/alarms/{HI}").json()
    assert (a["state"], a["active"], a["value"], a["limit"], a["raised_at"]) == ("unacknowledged", True, 85.0, 80.0, "2024-05-01T11:59:59Z")
    assert [x["id"] for x in c.get("/api/alarms", params={"state": "unacknowledged"}).json()["data"]] == [HI]
    assert c.get("/api/alarms", params={"priority": "urgent"}).json()["count"] == 0
    assert c.get("/api/alarms", params={"prefix": P1}).json()["count"] == 0
    assert {x["condition"] for x in c.get("/api/alarms", params={"prefix": P0}).json()["data"]} >= {"HI", "HIHI", "LO", "LOLO"}
    assert c.get("/api/alarms", params={"state": "sleepy"}).status_code == 422
    assert c.get(f"/api/alarms/{P0}:NOPE").status_code == 404


def test_alarm_ack_shelve_unshelve(alarm_client):
    c = alarm_client
    ingest(c, [{"point": P0, "ts": T0_MS - 1000, "value": 85.0}])

    r = c.post(f"/api/alarms/{HI}/ack", json={"user": "ana", "note": "checking the pump"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["acked_by"], r.json()["acked_at"]) == ("acknowledged", "ana", "2024-05-01T12:00:00Z")
    r = c.post(f"/api/alarms/{HI}/ack", json={"user": "ana"})
    assert r.status_code == 409 and "already acknowledged" in r.json()["detail"]

    r = c.post(f"/api/alarms/{HI}/shelve", json={"user": "ana", "duration": "2h", "reason": "maintenance"})
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["shelved_until"], r.json()["shelve_reason"]) == ("shelved", "2024-05-01T14:00:00Z", "maintenance")
    assert c.post(f"/api/alarms/{HI}/shelve", json={"user": "ana", "duration": 60, "reason": "again"}).status_code == 409
    assert c.get("/api/alarms", params={"state": "shelved"}).json()["data"][0]["id"] == HI

    r = c.post(f"/api/alarms/{HI}/unshelve", json={"user": "ana"})
    assert r.status_code == 200 and r.json()["state"] != "shelved"
    assert c.post(f"/api/alarms/{HI}/unshelve", json={"user": "ana"}).status_code == 409

    events = c.get(f"/api/alarms/{HI}/events").json()
    assert events["count"] == len(events["data"])
    kinds = [e["event"] for e in events["data"]]
    assert {"raised", "acknowledged", "shelved", "unshelved"} <= set(kinds)
    ack = next(e for e in events["data"] if e["event"] == "acknowledged")
    assert (ack["actor"], ack["note"], ack["at"]) == ("user:ana", "checking the pump", "2024-05-01T12:00:00Z")  # kind:name


def test_alarm_action_bad_input(alarm_client):
    c = alarm_client
    ingest(c, [{"point": P0, "ts": T0_MS - 1000, "value": 85.0}])
    assert c.post(f"/api/alarms/{HI}/shelve", json={"user": "ana", "duration": "soon", "reason": "x"}).status_code == 400
    assert c.post(f"/api/alarms/{HI}/shelve", json={"user": "ana", "duration": 0, "reason": "x"}).status_code == 400
    # nobody acts under another's name: a body naming someone else (or no one) is refused
    for other in ("bo", "  ", "ana2"):
        r = c.post(f"/api/alarms/{HI}/ack", json={"user": other})
        assert r.status_code == 403 and "user:ana" in r.json()["detail"], r.text
    assert c.post(f"/api/alarms/{P0}:NOPE/ack", json={"user": "ana"}).status_code == 404
    assert c.get(f"/api/alarms/{P0}:NOPE/events").status_code == 404
    assert c.get(f"/api/alarms/{HI}").json()["state"] == "unacknowledged"
    r = c.post(f"/api/alarms/{HI}/ack", json={"note": "who am I"})  # without a name: the signed-in user
    assert r.status_code == 200 and r.json()["acked_by"] == "ana"


def test_alarms_disabled_is_503(client):
    r = client.get("/api/alarms")
    assert r.status_code == 503 and "disabled" in r.json()["detail"]
    assert client.post(f"/api/alarms/{HI}/ack", json={}).status_code == 503


# -- dead letters ------------------------------------------------------------------------------------------
def test_dead_letters_filters(client):
    ingest(client, [{"point": "ghost", "ts": T0_MS - i, "value": 1.0} for i in range(3)])
    r = client.get("/api/dead-letters")
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 3
    d = body["data"][0]
    assert (d["source"], d["point"], d["received_at"]) == ("http", "ghost", "2024-05-01T12:00:00Z")
    assert d["ts_ms"] in {T0_MS, T0_MS - 1, T0_MS - 2} and d["reason"].startswith("unknown point")
    assert client.get("/api/dead-letters", params={"limit": 2}).json()["count"] == 2
    assert client.get("/api/dead-letters", params={"source": "mqtt"}).json()["count"] == 0
    assert client.get("/api/dead-letters", params={"since": "now+1m"}).json()["count"] == 0
    assert client.get("/api/dead-letters", params={"since": "now-1m"}).json()["count"] == 3
    assert client.get("/api/dead-letters", params={"since": "last tuesday"}).status_code == 400


# -- health, metrics, errors, OpenAPI -------------------------------------------------------------------------
def test_health(client, platform):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["writer_alive"] is True and r.json()["points"] == 3
    platform.pipeline.stop()  # the writer is gone: load balancers must see it
    r = client.get("/api/health")
    assert r.status_code == 503 and r.json()["status"] == "degraded"


def test_metrics_are_prometheus_text(client):
    ingest(client, [{"point": P0, "ts": T0_MS - 1000, "value": 1.0}, {"point": "ghost", "ts": T0_MS, "value": 1.0},
                    {"point": P0, "ts": T0_MS - 1000, "value": 1.0}])
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("plantguard_ingest_accepted_total", ())] == 1
    assert samples[("plantguard_ingest_duplicates_total", ())] == 1
    assert samples[("plantguard_ingest_rejected_total", (("reason", "unknown_point"),))] == 1
    assert samples[("plantguard_ingest_queue_readings", ())] == 0
    assert samples[("plantguard_points", ())] == 3
    assert samples[("plantguard_writer_up", ())] == 1
    assert ("plantguard_ingest_lag_seconds", ()) in samples and ("plantguard_store_write_errors_total", ()) in samples


def test_metrics_count_active_alarms_by_priority(alarm_client):
    ingest(alarm_client, [{"point": P0, "ts": T0_MS - 1000, "value": 95.0}])
    fams = {f.name: f for f in text_string_to_metric_families(alarm_client.get("/metrics").text)}
    active = {s.labels["priority"]: s.value for s in fams["plantguard_alarms_active"].samples}
    assert active == {"low": 0, "medium": 2, "high": 0, "urgent": 0}  # HI and HIHI
    assert alarm_client.post(f"/api/alarms/{HI}/shelve", json={"user": "ana", "duration": 60, "reason": "x"}).status_code == 200
    fams = {f.name: f for f in text_string_to_metric_families(alarm_client.get("/metrics").text)}
    assert {s.labels["priority"]: s.value for s in fams["plantguard_alarms_active"].samples}["medium"] == 1
    assert fams["plantguard_alarms_shelved"].samples[0].value == 1


def test_store_failure_is_503(tmp_path):
    p = make_platform(tmp_path)
    app = create_app(p.services)
    headers = {**JSON_HEADERS, **auth_headers(p)}
    p.store.close()  # the token cannot even be looked up: 503 too, not 401
    with TestClient(app, base_url="http://127.0.0.1", headers=headers) as c:
        r = c.get("/api/dead-letters")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"


def test_unknown_route_is_404_with_detail(client):
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_openapi_lists_every_route_with_a_unique_operation_id(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    assert schema["info"]["title"] == "plantguard"
    ops = {}
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            ops[(method.upper(), path)] = op["operationId"]
    assert len(set(ops.values())) == len(ops)
    for route in client.app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for m in route.methods:
                assert (m, route.path_format) in ops, (m, route.path_format)
    assert ops[("POST", "/api/ingest")] == "ingest_readings"
    assert ops[("GET", "/metrics")] == "get_metrics"
    assert {"/api/model", "/api/model/devices/{parent_path}/points", "/api/model/points/{path}", "/api/alarms/{alarm_id}/ack",
            "/api/telemetry/downsample", "/api/dead-letters", "/api/health"} <= set(schema["paths"])
    # bodies read without pydantic are still documented
    comps = schema["components"]["schemas"]
    body = schema["paths"]["/api/model/devices/{parent_path}/points"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PointCreate"} and "PointCreate" in comps
    assert "application/yaml" in schema["paths"]["/api/model"]["put"]["requestBody"]["content"]
    assert "IngestPayload" in comps and "problems" in comps["HTTPValidationError"]["properties"]
    assert client.get("/docs").status_code == 200


def test_docs_cover_every_route_and_the_payload_format(client):
    docs = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    for path in client.get("/openapi.json").json()["paths"]:
        head, _, tail = path.partition("{")
        assert head in docs, f"{path} is not in docs/api.md"
        if "}" in tail and tail.rsplit("}", 1)[1]:
            assert tail.rsplit("}", 1)[1] in docs, f"{path} is not in docs/api.md"
    # the payload format is copied from the parser's docstring: keep them in step
    fmt = parse.__doc__.split("Accepted shapes", 1)[1].splitlines()[1:]
    for line in filter(str.strip, fmt):
        assert line in docs, f"docs/api.md lacks the payload format line {line!r}"


def test_root_leads_to_the_api_docs(client):
    # The root is the operator dashboard now (tests/test_web.py); it links to the API docs, which stay at /docs.
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 200 and 'data-page="overview"' in r.text and 'href="/docs"' in r.text
    assert client.get("/docs").status_code == 200


def test_points_list_includes_auto_registered_points(tmp_path):
    d = plant_dict(1, data_dir=str(tmp_path / "data"))
    d["ingest"] = {"unknown_points": "auto_register"}
    p = Platform(parse_config(d), alarms=False).start()
    try:
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers={**JSON_HEADERS, **auth_headers(p)}) as c:
            r = c.post("/api/ingest", json=[{"point": "lab/bench/new-sensor", "ts": p.clock() // 1000 - 1000, "value": 1}])
            assert r.json()["accepted"] == 1
            rows = c.get("/api/points").json()["data"]
            assert [x["tag"] for x in rows if x["auto"]] == ["lab/bench/new-sensor"]
            assert any(not x["auto"] for x in rows)
    finally:
        p.stop()


def test_metrics_show_each_device_link_of_a_connector(platform, client):
    class FakeLinks:  # a source reporting links the way connectors do (see connectors/base.LinkHealth)
        name = "plc"

        def start(self): ...

        def stop(self): ...

        def health(self):
            return {"ok": False, "links": {"s1/a1/l1/pump1/plc1": {"state": "backoff", "requests": 7, "errors": 2,
                                                                   "reconnects": 1, "readings": 40, "bad_readings": 3,
                                                                   "latency_ms": 4.0}}}

    platform.add_source(FakeLinks())
    fams = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    (up,) = fams["plantguard_link_up"].samples
    assert up.labels == {"source": "plc", "link": "s1/a1/l1/pump1/plc1"} and up.value == 0
    assert fams["plantguard_link_errors"].samples[0].value == 2
    assert fams["plantguard_link_latency_seconds"].samples[0].value == 0.004
