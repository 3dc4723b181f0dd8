"""The `plantguard` command, end to end against real stores (CliRunner), plus `serve` as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from plantguard.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
DEV = "lyon/packaging/bottling1/feed_pump/plc1"
FLOW = f"{DEV}/flow"  # range 0..60 in the example plant
PRESSURE = f"{DEV}/discharge_pressure"
T0 = "2025-01-01T00:00:00Z"
runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def config(tmp_path, data_dir):
    """The example plant from `plantguard init`, with its store in a temporary directory."""
    path = tmp_path / "plant.yaml"
    assert run("init", path).exit_code == 0
    doc = yaml.safe_load(path.read_text())
    doc["storage"]["data_dir"] = str(data_dir)
    doc["storage"]["retention_raw"] = "3650d"  # the tests import 2025 history, as a historian migration would
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def loaded(tmp_path, config):
    """Ten minutes of flow (one reading a minute, values 10..19) imported through the CLI."""
    rows = "".join(f"2025-01-01T00:{i:02d}:00Z,flow,{10 + i}\n" for i in range(10))
    path = tmp_path / "flow.csv"
    path.write_text("timestamp,point,value\n" + rows)
    res = run("import-csv", path, "--config", config, "--point-prefix", DEV)
    assert res.exit_code == 0, res.output
    return config


# -- init / check-config ----------------------------------------------------------------------------------------------
def test_init_writes_the_example_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "conf" / "plant.yaml"
    assert run("init", target).exit_code == 0
    assert "bottling" in target.read_text()
    res = run("init", target)
    assert res.exit_code == 1 and "already exists" in res.stderr
    target.write_text("changed")
    assert run("init", target, "--force").exit_code == 0
    assert target.read_text().startswith("# plantguard example configuration")


def test_check_config_ok_summary(config):
    res = run("check-config", config)
    assert res.exit_code == 0
    assert res.stdout.strip() == f"{config}: OK: 1 site, 4 devices, 10 points"


def test_check_config_lists_every_error_with_its_field_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sites": [{"id": "s1", "timezone": "Mars/Base", "areas": [{"id": "a", "lines": [{"id": "l", "assets": [
        {"id": "x", "devices": [{"id": "d", "points": [{"id": "p", "range": {"low": 10, "high": 0}},
                                                       {"id": "p", "alarms": {"limits": {"hi": 5, "hihi": 1}}}]}]}]}]}]}]}))
    res = run("check-config", bad)
    assert res.exit_code == 1
    pts = "sites[0].areas[0].lines[0].assets[0].devices[0].points"
    for expected in ("sites[0].timezone: unknown time zone", f"{pts}[0].range: low", f"{pts}[1].id: duplicate id",
                     f"{pts}[1].alarms.limits.hihi: hihi (1) must be above hi (5)"):
        assert expected in res.stderr, res.stderr
    assert "4 configuration error(s)" in res.stderr


def test_check_config_shape_errors_all_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites:\n  - id: 'bad id'\n    areaz: []\napi: {port: 70000}\nstorage: {backend: mysql}\n")
    res = run("check-config", bad)
    assert res.exit_code == 1
    for expected in ("sites[0].id:", "sites[0].areaz: unknown field", "api.port:", "storage.backend:"):
        assert expected in res.stderr
    res = run("check-config", tmp_path / "missing.yaml")
    assert res.exit_code == 1 and "cannot read file" in res.stderr


# -- import-csv ---------------------------------------------------------------------------------------------------------
def test_import_long_with_timezone_broken_rows_and_idempotent_reimport(tmp_path, config):
    path = tmp_path / "hist.csv"
    path.write_text("timestamp,point,value,quality\n"
                    "2025-03-30 01:00:00,flow,20,good\n"       # Paris winter time: 00:00Z
                    "2025-03-30 02:30:00,flow,21,good\n"       # does not exist in Paris
                    "2025-03-30 03:00:00,flow,22,uncertain\n"  # summer time: 01:00Z
                    "2025-03-30T01:30:00Z,flow,oops,good\n"
                    "2025-03-30T01:31:00Z,flow,99,good\n"      # outside the engineering range
                    "2025-03-30T01:32:00Z,nope,1,good\n"       # unknown point
                    "2025-03-30T01:33:00Z,flow\n")
    args = ("import-csv", path, "--config", config, "--point-prefix", DEV, "--tz", "Europe/Paris")
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert "accepted   2" in res.stdout and "rejected   5" in res.stdout and "duplicates 0" in res.stdout
    for line, reason in ((3, "nonexistent local time"), (5, "value 'oops' is not a number"), (6, "value 99 outside the engineering range"),
                         (7, "unknown point"), (8, "expected 4 fields, found 2")):
        assert f"line {line}: {reason}" in res.stdout, res.stdout
    again = run(*args)
    assert again.exit_code == 0
    assert "accepted   0" in again.stdout and "duplicates 2" in again.stdout
    q = run("query", FLOW, "--start", "2025-03-29T00:00:00Z", "--end", "2025-03-31T00:00:00Z", "--config", config, "--format", "json")
    doc = json.loads(q.stdout)
    assert [(d["ts"], d["value"], d["quality"]) for d in doc["data"]] == [
        ("2025-03-30T00:00:00Z", 20.0, "good"), ("2025-03-30T01:00:00Z", 22.0, "uncertain")]


def test_import_wide_uses_the_site_time_zone(tmp_path, config):
    path = tmp_path / "wide.csv"
    path.write_text("Timestamp,flow,discharge_pressure\n2025-07-01 02:00:00,30,\n2025-07-01 02:01:00,31,4.5\n")
    res = run("import-csv", path, "--config", config, "--point-prefix", DEV, "--format", "wide")
    assert res.exit_code == 0, res.output
    assert "accepted   3" in res.stdout
    q = run("query", PRESSURE, "--start", "2025-07-01T00:00:00Z", "--end", "2025-07-01T01:00:00Z", "--config", config, "--format", "csv")
    assert q.stdout.splitlines() == ["timestamp,value,quality", "2025-07-01T00:01:00Z,4.5,good"]


def test_import_refuses_bad_options_and_files(tmp_path, config):
    path = tmp_path / "x.csv"
    path.write_text("time,point,value\n")
    res = run("import-csv", path, "--config", config)
    assert res.exit_code == 1 and "no timestamp column 'timestamp'" in res.stderr
    res = run("import-csv", path, "--config", config, "--tz", "Mars/Base")
    assert res.exit_code == 2 and "unknown time zone" in res.stderr


# -- query ----------------------------------------------------------------------------------------------------------------
def test_query_table_csv_json(loaded, data_dir):
    window = ("--start", T0, "--end", "2025-01-01T00:10:00Z")
    table = run("query", FLOW, *window, "--config", loaded)
    assert table.exit_code == 0, table.output
    assert "2025-01-01T00:09:00Z" in table.stdout and "19" in table.stdout and "good" in table.stdout
    csv_out = run("query", FLOW, *window, "--data-dir", data_dir, "--format", "csv")
    lines = csv_out.stdout.splitlines()
    assert lines[0] == "timestamp,value,quality" and lines[1] == "2025-01-01T00:00:00Z,10.0,good" and len(lines) == 11
    js = json.loads(run("query", FLOW, *window, "--data-dir", data_dir, "--format", "json", "--buckets", "2", "--agg", "max").stdout)
    assert js["agg"] == "max" and js["count"] == 2
    assert [(d["ts"], d["value"], d["count"]) for d in js["data"]] == [("2025-01-01T00:00:00Z", 14.0, 5), ("2025-01-01T00:05:00Z", 19.0, 5)]
    epoch = run("query", FLOW, "--start", "1735689600000", "--end", "1735689720000", "--data-dir", data_dir, "--format", "csv")
    assert len(epoch.stdout.splitlines()) == 3
    relative = run("query", FLOW, "--start", "now-1h", "--data-dir", data_dir, "--format", "json")
    assert relative.exit_code == 0 and json.loads(relative.stdout)["count"] == 0


def test_query_errors_are_clear(loaded, tmp_path):
    res = run("query", f"{DEV}/nope", "--config", loaded)
    assert res.exit_code == 1 and "unknown point" in res.stderr
    res = run("query", FLOW, "--start", "yesterday", "--config", loaded)
    assert res.exit_code == 1 and "--start" in res.stderr
    res = run("query", FLOW, "--start", "now", "--end", "now-1h", "--config", loaded)
    assert res.exit_code == 2 and "after" in res.stderr
    res = run("query", FLOW)
    assert res.exit_code == 2 and "--config" in res.stderr
    res = run("query", FLOW, "--data-dir", tmp_path / "empty")
    assert res.exit_code == 1 and "no plantguard store" in res.stderr


def test_query_says_when_a_server_holds_the_store(loaded, data_dir):
    from plantguard.store.embedded import EmbeddedStore

    # DuckDB shares a file within one process, so the holder and the query run in different processes
    script = ("import sys\nfrom typer.testing import CliRunner\nfrom plantguard.cli.main import app\n"
              "r = CliRunner().invoke(app, sys.argv[1:])\nsys.stderr.write(r.stderr)\nsys.exit(r.exit_code)\n")
    holder = EmbeddedStore(data_dir)  # what a running server does
    try:
        proc = subprocess.run([sys.executable, "-c", script, "query", FLOW, "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert proc.returncode == 1
    assert "HTTP API" in proc.stderr


# -- export ---------------------------------------------------------------------------------------------------------------
def test_export_csv_round_trips_through_import(loaded, data_dir, tmp_path):
    out = tmp_path / "out" / "flow.csv"
    res = run("export", FLOW, "--start", T0, "--end", "2025-01-02T00:00:00Z", "--data-dir", data_dir, "--out", out)
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0] == "timestamp,point,value,quality"
    assert lines[1] == f"2025-01-01T00:00:00Z,{FLOW},10,0" and len(lines) == 11
    again = run("import-csv", out, "--config", loaded)
    assert "duplicates 10" in again.stdout and "accepted   0" in again.stdout


def test_export_parquet_raw_and_downsampled(loaded, data_dir, tmp_path):
    raw = tmp_path / "flow.parquet"
    res = run("export", FLOW, PRESSURE, "--start", T0, "--end", "2025-01-02T00:00:00Z", "--data-dir", data_dir, "--out", raw)
    assert res.exit_code == 0, res.output
    t = pq.read_table(raw)
    assert t.column_names == ["timestamp", "point", "value", "quality"]
    assert str(t.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert t.column("value").to_pylist() == [float(10 + i) for i in range(10)]
    assert set(t.column("point").to_pylist()) == {FLOW}
    down = tmp_path / "down.pq"
    res = run("export", FLOW, "--start", T0, "--end", "2025-01-01T00:10:00Z", "--buckets", "2", "--agg", "avg",
              "--format", "parquet", "--config", loaded, "--out", down)
    assert res.exit_code == 0, res.output
    d = pq.read_table(down).to_pylist()
    assert [(r["value"], r["count"]) for r in d] == [(12.0, 5), (17.0, 5)]


def test_export_unknown_point_writes_nothing(loaded, tmp_path):
    out = tmp_path / "x.csv"
    res = run("export", FLOW, f"{DEV}/nope", "--config", loaded, "--out", out)
    assert res.exit_code == 1 and "unknown point" in res.stderr
    assert not out.exists() and not list(tmp_path.glob("x.csv*"))


# -- demo -----------------------------------------------------------------------------------------------------------------
def test_demo_is_wired_or_says_it_is_missing(tmp_path):
    res = run("demo", "--help")
    assert res.exit_code == 0 and "--history" in res.stdout
    if not (ROOT / "src/plantguard/sim/demo.py").exists():
        res = run("demo", "--duration", "0")
        assert res.exit_code == 1 and "not available" in res.stderr
        return
    res = run("demo", "--duration", "1", "--history", "0.01", "--port", _free_port(), "--data-dir", tmp_path / "demo")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "demo" / "plantguard.duckdb").exists()


# -- serve ----------------------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not (ROOT / "src/plantguard/api/app.py").exists(), reason="the HTTP API is not in this tree yet")
def test_serve_runs_until_sigterm_and_stops_cleanly(config, data_dir):
    port = _free_port()
    password = "a strong password of this test"
    proc = subprocess.Popen([sys.executable, "-m", "plantguard.cli.main", "serve", "--config", str(config), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "PLANTGUARD_ADMIN_PASSWORD": password})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "server did not answer"
        assert health.status_code == 200 and health.json()["writer_alive"] is True
        assert "sources" not in health.json()  # an anonymous probe learns the status, not the details
        ts_ms = (int(time.time()) - 60) * 1000  # recent: older readings fall to the server's retention
        assert httpx.post(f"{base}/api/ingest", json={"readings": []}, timeout=10).status_code == 401
        with httpx.Client(base_url=base, timeout=10) as c:
            r = c.post("/api/auth/login", json={"user": "admin", "password": password})
            assert r.status_code == 200, r.text
            c.headers["X-CSRF-Token"] = r.json()["csrf"]
            r = c.post("/api/ingest", json={"readings": [{"point": FLOW, "ts": ts_ms, "value": 42}]})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err
    # the store was closed: a new process can open it and finds the reading
    res = run("query", FLOW, "--start", ts_ms, "--end", ts_ms + 1, "--data-dir", data_dir, "--format", "json")
    assert [(d["ts_ms"], d["value"]) for d in json.loads(res.stdout)["data"]] == [(ts_ms, 42.0)]


def test_serve_refuses_to_listen_beyond_loopback_without_tls(config):
    res = run("serve", "--config", config, "--host", "0.0.0.0", "--port", str(_free_port()))
    assert res.exit_code != 0 and "without TLS" in res.stderr and "api.tls_cert" in res.stderr


def test_serve_refuses_a_weak_admin_password_from_the_environment(config, monkeypatch):
    monkeypatch.setenv("PLANTGUARD_ADMIN_PASSWORD", "changeme")
    res = run("serve", "--config", config, "--port", str(_free_port()))
    assert res.exit_code != 0 and "admin password" in res.stderr and "12 characters" in res.stderr


def test_serve_refuses_an_invalid_configuration(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites: [{id: 'a b'}]\napi: {port: 0}\n")
    res = run("serve", "--config", bad)
    assert res.exit_code == 2
    assert "sites[0].id" in res.stderr and "api.port" in res.stderr


# -- analytics commands -------------------------------------------------------------------------------------------------
def test_evaluate_skab_on_files_in_its_format(tmp_path):
    from plantguard.analytics.evaluation.tests.test_skab import write_file

    data = tmp_path / "skab"
    write_file(data / "anomaly-free" / "anomaly-free.csv", 3000, labelled=False, seed=1)
    for i in range(3):
        write_file(data / "valve1" / f"{i}.csv", 900, fault=(550, 750), seed=10 + i)
    r = run("evaluate", "skab", "--data", data, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["files"] == 3 and 0 <= doc["f1"] <= 1 and set(doc["nab"]) == {"Standard", "LowFP", "LowFN"}
    r = run("evaluate", "skab", "--data", tmp_path / "missing")
    assert r.exit_code == 2 and "no SKAB data" in r.output


def test_evaluate_cmapss_on_files_in_its_format(tmp_path):
    from plantguard.analytics.rul.synthetic import run_to_failure, truncate, write_cmapss

    train = run_to_failure(16, seed=1)
    test, truth = truncate(run_to_failure(6, seed=2), seed=3)
    write_cmapss(tmp_path, "FD009", train, test, truth)
    r = run("evaluate", "cmapss", "--data", tmp_path, "--subset", "FD009", "--window", 10, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["subset"] == "FD009" and doc["rmse"] > 0 and 0 <= doc["coverage"] <= 1
    r = run("evaluate", "cmapss", "--data", tmp_path, "--subset", "FD404")
    assert r.exit_code == 1 and "FD404" in r.output


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    """Two simulated hours of the demo line in an embedded store."""
    import math

    from plantguard.config import parse_config
    from plantguard.runtime import Platform
    from plantguard.sim.plant import demo_config
    from plantguard.sim.runner import Simulator

    data = tmp_path_factory.mktemp("simstore") / "data"
    cfg = parse_config(demo_config(str(data)))
    t0 = 1_767_247_200_000_000  # 2026-01-01T06:00Z, the start of the morning shift
    clock = [t0]
    p = Platform(cfg, clock=lambda: clock[0], alarms=False, analytics=False)
    sim = Simulator(cfg, seed=5, start_us=t0, speed=math.inf)
    for _ in range(24):
        b = sim.generate(300)
        clock[0] = int(b.ts.max())
        p.pipeline.process_now(b)
    p.stop()
    return data


def test_oee_by_shift_and_kpi_from_a_store(sim_store):
    from plantguard.sim.plant import LINE_PATH

    r = run("oee", LINE_PATH, "--start", "2026-01-01T06:00:00Z", "--end", "2026-01-01T08:00:00Z", "--by", "hour",
            "--format", "json", "--data-dir", sim_store)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert [p["label"][11:16] for p in doc["periods"]] == ["06:00", "07:00"]
    for p in doc["periods"]:
        assert p["status"] == "ok" and 0 < p["oee"] <= 1
    r = run("oee", LINE_PATH, "--start", "2026-01-01T06:00:00Z", "--end", "2026-01-01T08:00:00Z", "--data-dir", sim_store)
    assert r.exit_code == 0 and "morning" in r.output and "OEE" in r.output
    r = run("kpi", f"{LINE_PATH}/filler", "--start", "2026-01-01T06:00:00Z", "--end", "2026-01-01T08:00:00Z",
            "--data-dir", sim_store)
    assert r.exit_code == 0 and "MTBF" in r.output and "no failure yet" in r.output, r.output
    r = run("oee", "nope/no/line", "--data-dir", sim_store)
    assert r.exit_code == 1 and "no line" in r.output
