"""Replay through a real Platform (embedded store in tmp_path). Time is injected: the connector's sleep advances
the same clock the pipeline checks timestamps against, so pacing is tested without waiting in real time."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pytest

from plantguard.connectors.registry import validate
from plantguard.connectors.replay import ReplayConfig, ReplayConnector
from plantguard.config import parse_config
from plantguard.runtime import Platform

FIXTURE = Path(__file__).parent / "data" / "pump_skab_like.csv"  # synthetic, in SKAB's layout; 300 rows at 1 Hz
DEVICE = "s1/a1/l1/pump1/rig1"
MAPPING = {
    "Accelerometer1RMS": "accel1", "Accelerometer2RMS": "accel2", "Current": "current", "Pressure": "pressure",
    "Temperature": "temperature", "Thermocouple": "thermocouple", "Voltage": "voltage", "Volume Flow RateRMS": "flow",
}
FIRST_RECORDED = int(datetime(2020, 3, 9, 10, 14, 33, tzinfo=timezone.utc).timestamp()) * 1_000_000
START = int(datetime(2025, 6, 2, 8, 0, tzinfo=timezone.utc).timestamp()) * 1_000_000


class FakeTime:
    """A clock in epoch microseconds and an async sleep that advances it."""

    def __init__(self, t: int = START) -> None:
        self.t = t
        self.slept = 0

    def now(self) -> int:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += max(1, int(seconds * 1e6))
        self.slept += 1
        await asyncio.sleep(0)


def plant(data_dir: Path, points=tuple(MAPPING.values())) -> dict:
    pts = [{"id": p, "range": {"low": -1000, "high": 1000}, "period": "1s"} for p in points]
    return {
        "sites": [{"id": "s1", "areas": [{"id": "a1", "lines": [{"id": "l1", "assets": [
            {"id": "pump1", "devices": [{"id": "rig1", "protocol": "replay", "points": pts}]}]}]}]}],
        "storage": {"backend": "embedded", "data_dir": str(data_dir), "retention_raw": "36500d"},
    }


def replay_cfg(file=FIXTURE, **kw) -> ReplayConfig:
    item = {"type": "replay", "name": "pump-rec", "file": str(file), "device": DEVICE, "points": MAPPING,
            "delimiter": ";", "timestamp_column": "datetime", "reconnect_min": 0.05, "reconnect_max": 0.2, **kw}
    ((_, cfg),) = validate([item])
    return cfg


def play(tmp_path: Path, cfg: ReplayConfig, clock: FakeTime, *, until=None, timeout: float = 30.0) -> ReplayConnector:
    """Plays through a Platform over an embedded store in tmp_path; returns the stopped connector."""
    platform = Platform(parse_config(plant(tmp_path)), clock=clock.now, alarms=False)
    platform.pipeline.start()
    conn = ReplayConnector(cfg, platform.pipeline, clock=clock.now, sleep=clock.sleep)
    try:
        platform.add_source(conn)
        deadline = time.monotonic() + timeout
        done = until or conn.finished.is_set
        while not done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done(), conn.health()
    finally:
        platform.stop()
    return conn


def stored(tmp_path: Path) -> dict[str, np.ndarray]:
    with duckdb.connect(str(tmp_path / "plantguard.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT p.tag, r.ts, r.src_ts, r.value FROM raw r JOIN points p USING (pid) ORDER BY p.tag, r.ts").fetchall()
    out: dict[str, list] = {}
    for tag, ts, src, v in rows:
        out.setdefault(tag, []).append((ts, src, v))
    return {t: np.array(v, dtype=np.float64) for t, v in out.items()}


def dead_letters(tmp_path: Path) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "plantguard.duckdb"), read_only=True) as con:
        return con.execute("SELECT source, point, reason, payload FROM dead_letters ORDER BY id").fetchall()


def test_recorded_pace_stores_every_row_once_shifted_to_now(tmp_path):
    clock = FakeTime()
    conn = play(tmp_path, replay_cfg(), clock)
    data = stored(tmp_path)
    assert sorted(t.rsplit("/", 1)[1] for t in data) == sorted(MAPPING.values())  # anomaly, changepoint ignored
    for tag, a in data.items():
        ts, src = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
        assert len(ts) == 300 and len(np.unique(ts)) == 300, tag
        assert ts[0] == START  # the first recorded row plays at "now"
        assert src[0] == FIRST_RECORDED and np.all(np.diff(src) == 1_000_000)  # recorded time kept
        assert np.array_equal(ts - START, src - FIRST_RECORDED)  # speed 1: recorded spacing
        assert ts.max() <= clock.t  # never in the future
    assert clock.t - START == 299_000_000  # paced by the injected sleep, one recorded second per row
    h = conn.health()
    assert h["ok"] and h["replay"]["rows_played"] == 300 and h["replay"]["finished"]
    assert h["replay"]["position"] == 1.0 and h["replay"]["lag_ms"] == 0
    assert h["links"][DEVICE]["readings"] == 2400 and h["replay"]["recorded_time"].startswith("2020-03-09T10:19:32")
    first_flow = data[f"{DEVICE}/flow"][0, 2]
    assert first_flow == 32.0


def test_ten_times_faster_compresses_the_timeline(tmp_path):
    clock = FakeTime()
    play(tmp_path, replay_cfg(speed=10), clock)
    a = stored(tmp_path)[f"{DEVICE}/current"]
    ts, src = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
    assert len(ts) == 300 and np.all(np.diff(ts) == 100_000)
    assert src[-1] - src[0] == 299_000_000
    assert clock.t - START == 29_900_000


def test_speed_zero_plays_as_fast_as_possible_with_increasing_past_timestamps(tmp_path):
    clock = FakeTime()
    play(tmp_path, replay_cfg(speed=0, batch_rows=64), clock)
    assert clock.t - START < 1_000  # waited microseconds at most, not the recorded five minutes
    for tag, a in stored(tmp_path).items():
        ts = a[:, 0].astype(np.int64)
        assert len(ts) == 300 and np.all(np.diff(ts) > 0) and ts.max() <= clock.t, tag


def test_malformed_rows_are_dead_lettered_once_and_good_rows_stored(tmp_path):
    f = tmp_path / "broken.csv"
    f.write_text(
        "datetime;Current;Pressure;anomaly\n"
        "2020-03-09 10:00:00;1.5;0.4;0.0\n"
        "2020-03-09 10:00:01;1.6;0.5\n"  # missing a field
        "yesterday;1.7;0.6;0.0\n"  # unreadable timestamp
        "2020-03-09 10:00:03;oops;0.7;0.0\n"  # bad value in a mapped column
        "2020-03-09 10:00:04;1.9;0.8;n/a\n"  # bad value in an ignored column: not this device's problem
        "2020-03-09 10:00:05;2.0;0.9;0.0\n"
    )
    clock = FakeTime()
    conn = play(tmp_path, replay_cfg(f, points={"Current": "current", "Pressure": "pressure"}), clock)
    data = stored(tmp_path)
    assert list(data[f"{DEVICE}/current"][:, 2]) == [1.5, 1.9, 2.0]
    assert list(data[f"{DEVICE}/pressure"][:, 2]) == [0.4, 0.7, 0.8, 0.9]
    dead = dead_letters(tmp_path)
    assert len(dead) == 3 and conn.health()["replay"]["dead_letters"] == 3
    assert all(d[0] == "replay:pump-rec:broken.csv" for d in dead)
    text = "\n".join(f"{d[2]} | {d[3]}" for d in dead)
    assert "expected 4 fields, found 3" in text and "line 3:" in text
    assert "line 4:" in text and "line 5:" in text and "'oops' is not a number" in text
    assert [d[1] for d in dead if d[1]] == [f"{DEVICE}/current"]


def test_loop_continues_the_timeline_and_reports_refusals_once(tmp_path):
    f = tmp_path / "short.csv"
    f.write_text("datetime;Current\n2020-03-09 10:00:00;1\n2020-03-09 10:00:02;2\nbad;3\n2020-03-09 10:00:04;4\n")
    clock = FakeTime()
    platform = Platform(parse_config(plant(tmp_path)), clock=clock.now, alarms=False)
    platform.pipeline.start()
    conn = ReplayConnector(replay_cfg(f, points={"Current": "current"}, loop=True, speed=2), platform.pipeline,
                           clock=clock.now, sleep=clock.sleep)
    try:
        platform.add_source(conn)
        deadline = time.monotonic() + 20
        while conn.rows_played < 9 and time.monotonic() < deadline:
            time.sleep(0.01)
        h = conn.health()
    finally:
        platform.stop()
    assert h["replay"]["pass"] >= 2 and not h["replay"]["finished"]
    a = stored(tmp_path)[f"{DEVICE}/current"]
    ts, src = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
    assert len(ts) >= 9
    # recorded spacing 2 s at speed 2 is 1 s; the next pass starts one recorded period (2 s -> 1 s) after the last row
    assert list(np.diff(ts[:7])) == [1_000_000] * 6
    assert list(a[:7, 2]) == [1, 2, 4, 1, 2, 4, 1]
    assert src[3] == src[0]
    assert len(dead_letters(tmp_path)) == 1


def test_missing_file_backs_off_then_plays_when_it_appears(tmp_path):
    f = tmp_path / "later.csv"
    clock = FakeTime()
    platform = Platform(parse_config(plant(tmp_path)), clock=clock.now, alarms=False)
    platform.pipeline.start()
    conn = ReplayConnector(replay_cfg(f, points={"Current": "current"}, speed=0), platform.pipeline,
                           clock=clock.now, sleep=clock.sleep)
    try:
        platform.add_source(conn)
        deadline = time.monotonic() + 10
        while conn.links.get(DEVICE) is None or conn.links[DEVICE].errors == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        h = conn.health()
        assert not h["ok"] and h["links"][DEVICE]["state"] == "backoff"
        assert "FileNotFoundError" in h["links"][DEVICE]["last_error"]
        f.write_text("datetime;Current\n2020-03-09 10:00:00;1\n2020-03-09 10:00:01;2\n")
        assert conn.finished.wait(10)
    finally:
        platform.stop()
    assert len(stored(tmp_path)[f"{DEVICE}/current"]) == 2


# -- probe (used by plantguard assess) -----------------------------------------------------------------------------
def test_probe_of_the_fixture():
    (res,) = asyncio.run(ReplayConnector.probe(replay_cfg(speed=10)))
    assert res.reachable and res.link == DEVICE and res.endpoint == str(FIXTURE) and res.connect_ms is not None
    assert all(i.ok for i in res.items) and len(res.items) == len(MAPPING) + 1
    assert res.items[-1].detail.startswith("300 rows from 2020-03-09T10:14:33")
    assert res.planned_rps == pytest.approx(300 / 299 * 10, rel=1e-3)
    assert res.safe_poll_rps > res.planned_rps
    assert not res.risks
    assert any("not mapped, ignored: anomaly, changepoint" in n for n in res.notes)


def test_probe_reports_missing_file_missing_column_and_bad_rows(tmp_path):
    (res,) = asyncio.run(ReplayConnector.probe(replay_cfg(tmp_path / "nope.csv")))
    assert not res.reachable and "not found" in res.risks[0]
    f = tmp_path / "partial.csv"
    f.write_text("datetime;Current\n2020-03-09 10:00:00;1\n2020-03-09 10:00:01;x\n")
    (res,) = asyncio.run(ReplayConnector.probe(replay_cfg(f, points={"Current": "current", "Pressure": "pressure"})))
    assert res.reachable
    by = {i.target.split(" ")[0]: i for i in res.items}
    assert by["Current"].ok and not by["Pressure"].ok
    assert any("1 problem(s)" in r and "line 3" in r for r in res.risks)
    (res,) = asyncio.run(ReplayConnector.probe(replay_cfg(f, timestamp_column="time")))
    assert res.reachable and not res.items[0].ok and "no timestamp column 'time'" in res.items[0].detail


def test_platform_starts_replay_from_the_configuration(tmp_path):
    doc = plant(tmp_path)
    doc["connectors"] = [{"type": "replay", "name": "pump-rec", "file": str(FIXTURE), "device": DEVICE, "points": MAPPING,
                          "delimiter": ";", "timestamp_column": "datetime", "speed": 0}]
    with Platform(parse_config(doc), alarms=False) as platform:
        (conn,) = [s for s in platform.sources if isinstance(s, ReplayConnector)]
        assert conn.finished.wait(20)
        assert platform.services.status.health()["sources"]["pump-rec"]["replay"]["rows_played"] == 300
    assert all(len(a) == 300 for a in stored(tmp_path).values())
