"""Regression tests of the hardening issue: no single input may stop the platform or brick its data directory,
health tells the truth, large bad requests cannot starve good ones, and metric labels stay bounded.

Each test here failed on the code before its fix."""

from __future__ import annotations

import json
import threading

import numpy as np
import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from plantguard.testing.auth import auth_headers
from plantguard.api.app import create_app
from plantguard.cli.main import app as cli
from plantguard.config import parse_config
from plantguard.domain.readings import REJECT_CODES, RawBatch
from plantguard.errors import ConfigError, StoreUnavailable
from plantguard.ingest.registry import PointRegistry
from plantguard.model_source import ModelFile
from plantguard.runtime import Platform
from plantguard.store.base import PointRow
from plantguard.testing.factories import plant_dict, tag
from plantguard.testing.wait import wait_for
from plantguard.timeutil import to_us

T0 = to_us("2024-05-01T12:00:00Z")
T0_MS = T0 // 1000
DEVICE = "s1/a1/l1/pump1/plc1"
JSON = {"content-type": "application/json"}


class Clock:
    def __init__(self, t: int = T0) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def platform(tmp_path):
    p = Platform(parse_config(plant_dict(3, data_dir=str(tmp_path / "data"))), clock=Clock()).start()
    yield p
    p.stop()


@pytest.fixture
def client(platform):
    with TestClient(create_app(platform.services), base_url="http://127.0.0.1", headers={**JSON, **auth_headers(platform)}) as c:
        yield c


def post_readings(client, readings) -> dict:
    r = client.post("/api/ingest", content=orjson.dumps({"readings": readings}))
    assert r.status_code == 200, r.text
    return r.json()


# -- defect 1: absurd numbers in the model ------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [("period", 1e300), ("period", "1e300s"), ("period", "99999999999d")])
def test_absurd_period_is_refused_with_its_field_path_and_nothing_breaks(client, platform, field, value):
    r = client.post(f"/api/model/devices/{DEVICE}/points", json={"id": "bad", field: value})
    assert r.status_code == 422, r.text
    paths = [p["path"] for p in r.json()["problems"]]
    assert any(p.endswith(f"points[3].{field}") for p in paths), paths
    # every later edit and ingest still works
    r = client.post(f"/api/model/devices/{DEVICE}/points", json={"id": "good", "period": "2s"})
    assert r.status_code == 201, r.text
    assert post_readings(client, [{"point": f"{DEVICE}/good", "ts": T0_MS, "value": 1.0}])["accepted"] == 1


def test_absurd_delays_counts_and_detector_params_are_refused():
    base = plant_dict(1)
    p = base["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]
    p["alarms"] = {"limits": {"hi": 80, "on_delay": 1e300}, "stale": {"periods": 1e300}}
    p["analytics"] = {"anomaly": {"detector": "robust_z", "params": {"alpha": "x", "sigmas": 1e300}}}
    base["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["offline_after_periods"] = float("inf")
    with pytest.raises(ConfigError) as e:
        parse_config(base)
    paths = {pr.path for pr in e.value.problems}
    pp = "sites[0].areas[0].lines[0].assets[0].devices[0].points[0]"
    assert {f"{pp}.alarms.limits.on_delay", f"{pp}.alarms.stale.periods", f"{pp}.analytics.anomaly.params.sigmas",
            "sites[0].areas[0].lines[0].assets[0].devices[0].offline_after_periods"} <= paths, paths


def test_unknown_detector_parameter_is_refused_at_load():
    base = plant_dict(1)
    p = base["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]
    p["analytics"] = {"anomaly": {"detector": "robust_z", "params": {"no_such_knob": 3}}}
    with pytest.raises(ConfigError) as e:
        parse_config(base)
    assert any(pr.path.endswith("analytics.anomaly.params") and "no_such_knob" in pr.message for pr in e.value.problems)


def test_put_model_with_infinity_is_a_4xx_not_a_500(client):
    doc = client.get("/api/model").json()
    doc["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]["period"] = 1e308 * 10
    r = client.put("/api/model", content=json.dumps(doc))  # Python's json writes Infinity; orjson refuses it
    assert 400 <= r.status_code < 500, r.text
    doc["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]["period"] = 1e300
    r = client.put("/api/model", content=json.dumps(doc))
    assert r.status_code == 422, r.text


def test_check_config_reports_the_absurd_period(tmp_path):
    d = plant_dict(1, data_dir=str(tmp_path / "d"))
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]["period"] = 1e300
    f = tmp_path / "plant.yaml"
    f.write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(cli, ["check-config", str(f)])
    assert res.exit_code != 0 and "points[0].period" in res.output, res.output


def test_registry_tolerates_stored_metadata_that_an_older_version_let_through():
    reg = PointRegistry()
    reg.load([PointRow(0, "s/a/l/x/d/p", {"period_us": 1e306, "low": None, "high": None, "data_type": "float"}),
              PointRow(1, "s/a/l/x/d/q", {"period_us": 1_000_000, "low": 0, "high": 1, "data_type": "float"})])
    assert reg.snap.period_us.tolist() == [0, 1_000_000]


def test_a_failing_apply_is_rolled_back_and_nothing_is_stored(client, platform, monkeypatch):
    before = client.get("/api/model").json()
    real = platform.services.analytics.processor.reload
    calls = []

    def explode(cfg):
        calls.append(cfg)
        if len(calls) == 1:
            raise RuntimeError("boom")
        real(cfg)

    monkeypatch.setattr(platform.services.analytics.processor, "reload", explode)
    r = client.post(f"/api/model/devices/{DEVICE}/points", json={"id": "p9"})
    assert r.status_code == 422 and "nothing was changed" in r.text
    monkeypatch.setattr(platform.services.analytics.processor, "reload", real)
    assert client.get("/api/model").json() == before
    assert post_readings(client, [{"point": tag(0), "ts": T0_MS, "value": 50.0}])["accepted"] == 1


def test_a_stored_model_that_cannot_be_loaded_names_the_field_and_the_way_out(tmp_path):
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    f = tmp_path / "plant.yaml"
    f.write_text(yaml.safe_dump(d))
    mf = ModelFile.of(f)
    Platform(parse_config(d), model_file=mf, alarms=False, analytics=False).stop()
    # an older version stored a model that is out of range today
    from plantguard.store.embedded import EmbeddedStore

    store = EmbeddedStore(tmp_path / "data")
    store.migrate()
    good = store.load_model()
    bad = json.loads(good[1])
    bad["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][0]["period"] = 1e300
    store.save_model(json.dumps(bad), T0, origin="api")
    store.close()
    with pytest.raises(ConfigError) as e:
        Platform(parse_config(d), model_file=mf, alarms=False, analytics=False)
    text = str(e.value)
    assert "points[0].period" in text and "--model-version" in text and "--force-config" in text
    # the documented ways out both open the data directory
    p = Platform(parse_config(d), model_file=ModelFile.of(f, version=good[0]), alarms=False, analytics=False)
    assert p.model_version() == good[0] + 2 and p.store.model_versions(1)[0]["origin"] == "rollback"
    p.stop()
    Platform(parse_config(d), model_file=ModelFile.of(f, force=True), alarms=False, analytics=False).stop()


# -- defect 5: one source of truth for the plant model ------------------------------------------------------------
def test_api_edits_survive_a_restart_and_a_changed_file_never_silently_discards_them(tmp_path):
    d = plant_dict(2, data_dir=str(tmp_path / "data"))
    f = tmp_path / "plant.yaml"
    f.write_text(yaml.safe_dump(d))

    def open_(**kw):
        return Platform(parse_config(yaml.safe_load(f.read_text())), model_file=ModelFile.of(f, **kw), alarms=False, analytics=False)

    p = open_()
    assert "initialised" in p.model_messages[0]
    doc = {"sites": [s.model_dump(mode="json", exclude_none=True) for s in p.cfg.sites]}
    del doc["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"][1]
    p.replace_model(doc, actor="jane")
    p.stop()
    # same file: the API edit stays
    p = open_()
    assert [t for t, *_ in p.cfg.iter_points()] == [tag(0)] and "1 edit(s)" in p.model_messages[0]
    p.stop()
    # the file changed as well: refused, naming the edit
    d["sites"][0]["name"] = "Lyon"
    f.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError) as e:
        open_()
    assert "edit(s) made through the API" in str(e.value) and "jane" in str(e.value) and "--force-config" in str(e.value)
    p = open_(force=True)
    assert len(list(p.cfg.iter_points())) == 2 and "--force-config" in p.model_messages[0]
    p.stop()
    # the forced file is now the last applied one: a further file change applies by itself, with a summary
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"].append({"id": "p7"})
    f.write_text(yaml.safe_dump(d))
    p = open_()
    assert "1 point(s) added" in p.model_messages[0]
    p.stop()


# -- defect 3 and 4: large reject requests, bounded turns, bounded labels -----------------------------------------
def test_two_hundred_thousand_rejects_are_one_columnar_write(platform):
    n = 200_000
    batch = RawBatch.build([f"nowhere/{i}" for i in range(n)], np.full(n, T0), np.ones(n), source="http")
    res = platform.pipeline.ingest(batch, timeout=120)
    assert res.rejected == n and res.accepted == 0 and len(res.errors) == 20
    assert res.errors[0].code == "unknown_point"
    counts = {(c["source"], c["code"]): c["count"] for c in platform.store.dead_letter_counts()}
    assert counts[("http", "unknown_point")] == n
    assert platform.pipeline.stats.rejected_by_reason == {"unknown_point": n}


def test_a_large_submission_cannot_starve_a_small_one(tmp_path):
    p = Platform(parse_config(plant_dict(2, data_dir=str(tmp_path / "data"))), clock=Clock(), alarms=False, analytics=False)
    try:
        order: list[str] = []
        n = p.pipeline.chunk_readings * 4
        big = RawBatch.build([f"nowhere/{i}" for i in range(n)], np.full(n, T0), np.ones(n))
        small = RawBatch.build([tag(0)], [T0], [1.0])
        fb = p.pipeline.submit(big)
        fs = p.pipeline.submit(small)
        fb.add_done_callback(lambda f: order.append("big"))
        fs.add_done_callback(lambda f: order.append("small"))
        p.pipeline.start()
        assert fb.result(120).rejected == n and fs.result(120).accepted == 1
        assert order == ["small", "big"]  # the small one went between the big one's chunks
    finally:
        p.stop()


def _rejected_series(client) -> set:
    text = client.get("/metrics").text
    return {tuple(sorted(s.labels.items())) for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == "plantguard_ingest_rejected_total"}


readings = st.lists(st.one_of(
    st.integers(), st.text(max_size=20), st.none(),
    st.fixed_dictionaries({"point": st.text(max_size=30), "ts": st.one_of(st.integers(-10**20, 10**20), st.text(max_size=10)),
                           "value": st.one_of(st.floats(allow_nan=False), st.text(max_size=5), st.booleans())}),
    st.dictionaries(st.sampled_from(["p", "t", "v", "q", "st", "x"]), st.one_of(st.integers(), st.text(max_size=8)), max_size=5),
), max_size=30)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(readings)
def test_fuzzed_ingest_never_fails_and_cannot_grow_the_metric_labels(client, rows):
    r = client.post("/api/ingest", content=json.dumps({"readings": rows}))  # json: big ints and NaN too
    assert r.status_code in (200, 400), r.text
    assert post_readings(client, [{"point": tag(1), "ts": T0_MS - 1, "value": 1.0}])["rejected"] == 0
    labels = _rejected_series(client)
    assert all(dict(lab)["reason"] in REJECT_CODES for lab in labels)
    assert client.get("/api/health").json()["writer_alive"]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["application/json", "application/vnd.plantguard.gateway-batches"]))
def test_fuzzed_gateway_endpoint_answers_4xx_and_keeps_ingesting(client, body, ctype):
    r = client.post("/api/gateway/gw1/batches", content=body, headers={"content-type": ctype})
    assert r.status_code < 500, r.text
    assert post_readings(client, [{"point": tag(2), "ts": T0_MS - 2, "value": 1.0}])["rejected"] == 0


# -- defect 3: health degrades while ingest lags --------------------------------------------------------------------
def test_health_degrades_while_the_writer_is_stuck(tmp_path):
    d = plant_dict(1, data_dir=str(tmp_path / "data"))
    d["ingest"] = {"lag_degraded": "0.2s"}
    p = Platform(parse_config(d), clock=Clock(), alarms=False, analytics=False).start()
    gate = threading.Event()
    real = p.store.write

    def slow_write(ws):
        gate.wait(60)
        real(ws)

    p.store.write = slow_write
    try:
        fut = p.pipeline.submit(RawBatch.build([tag(0)], [T0], [1.0]))
        wait_for(lambda: p.services.status.health()["pipeline"]["lagging"], "health to report the lag")
        h = p.services.status.health()
        assert h["status"] == "degraded" and any("ingest lags" in x for x in h["problems"])
        gate.set()
        assert fut.result(60).accepted == 1
        wait_for(lambda: p.services.status.health()["status"] == "ok", "health to recover")
    finally:
        gate.set()
        p.stop()


# -- defect 6: content types and the Host allow-list ----------------------------------------------------------------
@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None])
def test_state_changing_requests_need_their_json_content_type(platform, ctype):
    with TestClient(create_app(platform.services), base_url="http://127.0.0.1", headers=auth_headers(platform)) as c:
        body = orjson.dumps([{"point": tag(0), "ts": T0_MS, "value": 1.0}])
        headers = {"content-type": ctype} if ctype else {}
        r = c.post("/api/ingest", content=body, headers=headers)
        assert r.status_code == 415, r.text
        r = c.post(f"/api/model/devices/{DEVICE}/points", content=b'{"id": "x"}', headers=headers)
        assert r.status_code == 415
        assert c.post("/api/ingest", content=body, headers=JSON).status_code == 200


def test_requests_naming_a_foreign_host_are_refused(platform):
    with TestClient(create_app(platform.services), base_url="http://attacker.example") as c:
        assert c.get("/api/health").status_code == 421
    with TestClient(create_app(platform.services), base_url="http://localhost:8000") as c:
        assert c.get("/api/health").status_code == 200


def test_serving_beyond_loopback_without_tls_is_refused(tmp_path, monkeypatch):
    """Once a warning; now that there are credentials to steal, a refusal (docs/security.md#tls)."""
    import plantguard.cli.main as m

    f = tmp_path / "plant.yaml"
    f.write_text(yaml.safe_dump(plant_dict(1, data_dir=str(tmp_path / "data"))))
    monkeypatch.setattr("uvicorn.Server.run", lambda self: None)
    res = CliRunner().invoke(m.app, ["serve", "--config", str(f), "--host", "0.0.0.0", "--port", "1"])
    assert res.exit_code != 0 and "without TLS" in res.output, res.output
    assert not (tmp_path / "data" / "plantguard.duckdb").exists()  # refused before anything was opened


# -- defect 13: one process per data directory -----------------------------------------------------------------------
def test_a_gateway_data_directory_is_locked(tmp_path):
    from plantguard.connectors.gateway.queue import GatewayQueue

    q = GatewayQueue(tmp_path / "gw")
    with pytest.raises(StoreUnavailable, match="in use by another plantguard gateway"):
        GatewayQueue(tmp_path / "gw")
    q.close()
    GatewayQueue(tmp_path / "gw").close()


# -- the model parser never fails on any document: only ConfigError, with field paths ---------------------------
def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _rich_doc() -> dict:
    d = plant_dict(2)
    pts = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]
    pts[0]["alarms"] = {"limits": {"hi": 80, "on_delay": "2s"}, "stale": {"periods": 3}, "rate_of_change": {"max_per_second": 5}}
    pts[1]["analytics"] = {"spc": {"baseline": 50}, "anomaly": {"params": {"alpha": 0.02}}, "only_when": ["running"]}
    pts.append({"id": "state", "data_type": "state", "states": {0: "off", 1: "on"}})
    line = d["sites"][0]["areas"][0]["lines"][0]
    line["oee"] = {"ideal_rate_per_h": 100, "state_categories": {0: "planned_stop", 1: "running"}}
    line["assets"][0]["analytics"] = {"anomaly": {"points": ["plc1/p0", "plc1/p1"]}, "rul": {"point": "plc1/p0", "failure_threshold": 9}}
    d["sites"][0]["shifts"] = [{"name": "a", "start": "06:00", "end": "14:00"}]
    return d


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(), st.text(max_size=6)),
                           lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=6), kids, max_size=3)),
                           max_leaves=6)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_mutation_of_a_valid_model_is_accepted_or_refused_with_field_paths(data):
    doc = _rich_doc()
    paths = list(_paths(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        holder = doc
        try:
            for k in path[:-1]:
                holder = holder[k]
            holder[path[-1]] = data.draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        cfg = parse_config(doc)
    except ConfigError as e:
        assert e.problems and all(isinstance(p.path, str) for p in e.problems)
        return
    # what is accepted can be loaded by the runtime
    reg = PointRegistry()
    rows = [PointRow(i, t, __import__("plantguard.ingest.registry", fromlist=["point_meta"]).point_meta(t, *parts))
            for i, (t, *parts) in enumerate(cfg.iter_points())]
    reg.load(rows)


# -- defect 12: the small ones ------------------------------------------------------------------------------------------
def test_asking_for_72_buckets_returns_at_most_72(client, platform):
    rows = [{"point": tag(0), "ts": T0_MS - 6 * 3_600_000 + i * 60_000 + 17, "value": float(i % 7)} for i in range(360)]
    post_readings(client, rows)
    # a range whose start is not on a bucket boundary touches one bucket more than span / width
    for start, buckets in ((T0_MS - 6 * 3_600_000 + 30_000, 72), (T0_MS - 6 * 3_600_000 + 1, 7), (T0_MS - 3_600_000 - 7, 13),
                           (T0_MS - 6 * 3_600_000 + 30_000, 1)):
        r = client.get("/api/telemetry/downsample", params={"point": tag(0), "start": str(start), "end": str(T0_MS - 1),
                                                            "buckets": buckets, "agg": "max"})
        assert r.status_code == 200, r.text
        assert 1 <= len(r.json()["data"]) <= buckets, (start, buckets, len(r.json()["data"]))


def test_a_boolean_is_the_number_one_or_zero_for_numeric_points(client):
    res = post_readings(client, [{"point": tag(0), "ts": T0_MS - 5, "value": True}, {"point": tag(1), "ts": T0_MS - 5, "value": False}])
    assert res["accepted"] == 2
    r = client.get("/api/telemetry/latest", params={"points": f"{tag(0)},{tag(1)}"}).json()
    values = {d["point"]: d["value"] for d in r["data"]} if "data" in r else {k: v["value"] for k, v in r.items()}
    assert values[tag(0)] == 1.0 and values[tag(1)] == 0.0


def test_a_collection_under_an_unknown_parent_is_404_not_405(client):
    for path in ("/api/model/areas/nosuch/lines", "/api/model/sites/a/b/areas", "/api/model/nolevel/x"):
        r = client.post(path, json={"id": "x"})
        assert r.status_code == 404, (path, r.status_code, r.text)


def test_the_ingest_rate_is_a_number_from_the_first_second(client, platform):
    post_readings(client, [{"point": tag(2), "ts": T0_MS - 9, "value": 1.0}])
    html = client.get("/").text
    assert "measuring" not in html
    assert platform.pipeline.readings_per_s() >= 0.0
