"""Behavioural detection on a real platform: each rule fires on its fault with the readings as evidence, once per
window; nothing fires on normal traffic (noisy, quantised, flat, slow, bursty) or while a device learns."""

from __future__ import annotations

import numpy as np
import pytest

from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.runtime import Platform
from plantguard.security.events import list_events
from plantguard.testing.factories import plant_dict

S = 1_000_000
T0 = 1_800_000_000 * S
DEV = "s1/a1/l1/pump1/plc1"


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def plat(tmp_path):
    clock = Clock()
    d = plant_dict(4, data_dir=str(tmp_path), alarms=False)
    d["security"] = {"behaviour": {"learning_readings": 300, "learning_minutes": 10, "dedupe_s": 3600}}
    p = Platform(parse_config(d), clock=clock)
    p.clock_ = clock
    yield p
    p.stop()


def signals(n: int, seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return {0: 50 + rng.normal(0, 1, n),                        # noise
            1: np.round(20 + 5 * np.sin(t / 300) + rng.normal(0, 0.3, n)),  # quantised, slow
            2: np.where((t // 500) % 2 == 0, 0.0, 100.0),         # a valve: long flat stretches, big but legal steps
            3: np.full(n, 7.0)}                                   # a constant (never moved: never "frozen")


def feed(p, start_s: int, values: dict[int, np.ndarray], per_batch: int = 10) -> None:
    n = len(next(iter(values.values())))
    for lo in range(0, n, per_batch):
        hi = min(n, lo + per_batch)
        tags, ts, vs = [], [], []
        for i, arr in values.items():
            for k in range(lo, hi):
                tags.append(f"{DEV}/p{i}")
                ts.append(T0 + (start_s + k) * S)
                vs.append(float(arr[k]))
        p.clock_.t = T0 + (start_s + hi) * S
        p.pipeline.process_now(RawBatch.build(tags, ts, vs))


def rules(p) -> list[str]:
    return sorted(e.rule for e in list_events(p.store))


def test_normal_traffic_raises_nothing(plat):
    sig = signals(4 * 3600, 1)
    feed(plat, 0, sig, per_batch=60)
    assert rules(plat) == [], [e.message for e in list_events(plat.store)]
    assert plat.services.behaviour.errors == 0


def test_each_fault_fires_once_with_its_evidence(plat):
    feed(plat, 0, signals(1800, 2))
    assert rules(plat) == []
    base = 1800
    # a stuck sensor: p0 (always moving) holds one value
    stuck = signals(300, 3)
    stuck[0] = np.full(300, 50.25)
    feed(plat, base, stuck)
    # a forged value: p1 jumps by far more than half its range (-1000..1000) in one period
    jump = signals(10, 4)
    jump[1][5] = 1500.0 if jump[1][5] < 0 else -990.0
    feed(plat, base + 300, jump)
    # a flood: ten times the usual readings in one minute
    p = plat
    t = T0 + (base + 320) * S
    many = RawBatch.build([f"{DEV}/p0"] * 3000, [t + i * 1000 for i in range(3000)], list(np.random.default_rng(5).normal(50, 1, 3000)))
    p.clock_.t = t + 10 * S
    p.pipeline.process_now(many)
    p.clock_.t = t + 120 * S  # the minute closes
    p.pipeline.process_now(RawBatch.build([f"{DEV}/p3"], [t + 119 * S], [7.0]))
    # a replay: readings 30 days behind the points' own
    p.clock_.t = t + 130 * S
    p.pipeline.process_now(RawBatch.build([f"{DEV}/p1"], [t - 30 * 86400 * S], [20.0]))
    got = {e.rule: e for e in list_events(p.store)}
    # (3000 readings a millisecond apart are also a change of p0's rhythm: the timing rule says so once)
    assert set(got) == {"behaviour.frozen", "behaviour.implausible_jump", "behaviour.flood", "behaviour.far_timestamp",
                        "behaviour.timing"}, [e.message for e in got.values()]
    assert got["behaviour.frozen"].evidence["point"] == f"{DEV}/p0" and got["behaviour.frozen"].evidence["value"] == 50.25
    assert got["behaviour.implausible_jump"].evidence["point"] == f"{DEV}/p1"
    assert got["behaviour.flood"].evidence["readings"] >= 3000
    # the same fault again within the window: no second event
    feed(plat, base + 500, stuck)
    assert len(list_events(p.store, rule="behaviour.frozen")) == 1


def test_nothing_fires_while_learning_and_muted_rules_stay_quiet(plat):
    sig = signals(100, 6)
    sig[1][50] = 999.0  # a jump during learning: not judged
    feed(plat, 0, sig)
    assert rules(plat) == []
    from plantguard.domain.actor import Actor

    plat.services.posture.decide("behaviour.frozen", DEV, "mute", "a test rig", Actor.system("tests"))
    feed(plat, 100, signals(1800, 7))
    stuck = signals(400, 8)
    stuck[0] = np.full(400, 1.5)
    feed(plat, 1900, stuck)
    assert "behaviour.frozen" not in rules(plat)


def test_a_bad_batch_never_stops_ingest(plat, monkeypatch):
    proc = plat.services.behaviour
    monkeypatch.setattr(proc, "_run_batch", lambda b, now: 1 / 0)
    feed(plat, 0, signals(20, 9))
    assert proc.errors >= 1 and plat.pipeline.stats.accepted == 80


def feed_times(p, point: int, times_s: np.ndarray, seed: int) -> None:
    """One point's readings at the given times (seconds from T0), in batches of 20, the clock following."""
    rng = np.random.default_rng(seed)
    for lo in range(0, len(times_s), 20):
        t = times_s[lo:lo + 20]
        p.clock_.t = T0 + int((t[-1] + 1) * S)
        p.pipeline.process_now(RawBatch.build([f"{DEV}/p{point}"] * len(t), [T0 + int(x * S) for x in t],
                                              list(50 + rng.normal(0, 1, len(t)))))


def test_a_change_of_rhythm_fires_once_and_jitter_gaps_and_irregular_points_do_not(plat):
    rng = np.random.default_rng(11)
    # p0: 1 s with 5 % jitter, one 20-minute outage; p1: report by exception (irregular, 0.1 s to 60 s)
    t0 = np.cumsum(rng.normal(1.0, 0.05, 4000))
    t0[2000:] += 1200
    t1 = np.cumsum(rng.exponential(5.0, 2000))
    feed_times(plat, 0, t0, 1)
    feed_times(plat, 1, t1, 2)
    assert "behaviour.timing" not in rules(plat), [e.message for e in list_events(plat.store)]
    # p0 now reports ten times as often, sustained: one event, then the new rhythm is the baseline
    last = t0[-1]
    fast = last + np.cumsum(rng.normal(0.1, 0.005, 3000))
    feed_times(plat, 0, fast, 3)
    ev = list_events(plat.store, rule="behaviour.timing")
    assert len(ev) == 1 and ev[0].evidence["point"] == f"{DEV}/p0", [e.message for e in ev]
    assert 0.05 < ev[0].evidence["interval_s"] < 0.2 and 0.9 < ev[0].evidence["learned_interval_s"] < 1.1
    plat.services.posture.decide  # (mute/accept per device and rule is the same triage as the other rules)
    plat.clock_.t += 2 * 3600 * S  # past the dedupe window: the new rhythm raises nothing further
    feed_times(plat, 0, fast[-1] + 7200 + np.cumsum(rng.normal(0.1, 0.005, 2000)), 4)
    assert len(list_events(plat.store, rule="behaviour.timing")) == 1


def test_unknown_points_and_out_of_range_values_from_a_learned_device(plat):
    # before the device has learned (10 rate minutes), a commissioning device's stray points raise nothing
    p = plat
    p.clock_.t = T0 + 5 * S
    p.pipeline.process_now(RawBatch.build([f"{DEV}/p9"], [T0], [1.0]))
    assert rules(p) == []
    feed(p, 0, signals(900, 12), per_batch=60)
    t = T0 + 901 * S
    p.clock_.t = t + S
    p.pipeline.process_now(RawBatch.build([f"{DEV}/p0", f"{DEV}/backdoor", f"{DEV}/p2"], [t, t, t], [50.0, 1.0, 5000.0]))
    got = {e.rule: e for e in list_events(p.store)}
    assert set(got) == {"behaviour.new_point", "behaviour.out_of_range"}, [e.message for e in got.values()]
    assert got["behaviour.new_point"].evidence["points"] == [f"{DEV}/backdoor"]
    assert got["behaviour.out_of_range"].evidence["readings"][0] == {"point": f"{DEV}/p2", "ts": t, "value": 5000.0}
    # a point of no device in the model is the ingest's dead letter, not a device's event
    p.pipeline.process_now(RawBatch.build(["s9/x/y/z/w/p0"], [t], [1.0]))
    assert len(list_events(p.store)) == 2


def test_access_events_from_a_device_token_and_from_login_failures(tmp_path):
    from fastapi.testclient import TestClient

    from plantguard.api.app import create_app
    from plantguard.testing.auth import auth_headers

    d = plant_dict(2, data_dir=str(tmp_path), alarms=False)
    d["security"] = {"login_max_failures": 3, "login_max_failures_per_address": 4}
    p = Platform(parse_config(d)).start()
    try:
        other = "s1/a1/l1/pump1/plc2"
        h = auth_headers(p, "engineer", scopes=["ingest"], device=DEV)
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=h) as c:
            r = c.post("/api/ingest", json={"readings": [{"point": f"{other}/p0", "ts": p.clock() // 1000, "value": 1.0}]})
            assert r.status_code == 403
        with TestClient(create_app(p.services), base_url="http://127.0.0.1") as c:
            for _ in range(5):
                c.post("/api/auth/login", json={"user": "mallory", "password": "guess number n, long enough"})
        from plantguard.testing.wait import wait_for

        def got():
            return {(e.rule, e.device) for e in list_events(p.store)}

        wait_for(lambda: ("access.scope_violation", DEV) in got(), "the scope violation event")
        wait_for(lambda: ("access.auth_failures", "user:mallory") in got(), "the lockout event")
        ev = list_events(p.store, rule="access.scope_violation")[0]
        assert ev.evidence["point"] == f"{other}/p0"
    finally:
        p.stop()


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 1.0, 2.0])), min_size=1, max_size=60),
       st.lists(st.tuples(st.sampled_from([0.0, 1.0, 2.0, np.nan]), st.integers(0, 50)), min_size=4, max_size=4))
def test_run_lengths_match_a_reading_by_reading_count(rows, state):
    """The vectorised run lengths (carried across batches) equal counting reading by reading."""
    from plantguard.security.behaviour import _runs

    rows = sorted(rows, key=lambda r: r[0])  # a batch is sorted by point (stable: time order kept)
    pid = np.array([r[0] for r in rows])
    value = np.array([r[1] for r in rows])
    last_v = {p: state[p][0] for p in range(4)}
    run = {p: state[p][1] for p in range(4)}
    expect = []
    for p, v in zip(pid.tolist(), value.tolist()):
        run[p] = run[p] + 1 if v == last_v[p] else 1
        last_v[p] = v
        expect.append(run[p])
    first = np.empty(len(pid), bool)
    first[0] = True
    first[1:] = pid[1:] != pid[:-1]
    starts = np.flatnonzero(first)
    prev = np.empty(len(pid))
    prev[1:] = value[:-1]
    prev[starts] = [state[p][0] for p in pid[starts]]
    got = _runs(value == prev, first, starts, np.array([state[p][1] for p in pid[starts]], np.int64))
    assert got.tolist() == expect


def test_a_replayed_request_stores_nothing_twice(tmp_path):
    """An attacker who captured a device's request and sends it again: every reading is a duplicate."""
    from fastapi.testclient import TestClient

    from plantguard.api.app import create_app
    from plantguard.testing.auth import auth_headers

    p = Platform(parse_config(plant_dict(2, data_dir=str(tmp_path), alarms=False))).start()
    try:
        h = auth_headers(p, "engineer", scopes=["ingest"], device=DEV)
        now_ms = p.clock() // 1000
        body = {"readings": [{"point": f"{DEV}/p0", "ts": now_ms - 1000 * i, "value": float(i)} for i in range(50)]}
        with TestClient(create_app(p.services), base_url="http://127.0.0.1", headers=h) as c:
            first = c.post("/api/ingest", json=body).json()
            again = c.post("/api/ingest", json=body).json()
        assert first["accepted"] == 50 and again["accepted"] == 0 and again["duplicates"] == 50, (first, again)
        assert p.store.counts()["raw"] == 50
    finally:
        p.stop()


def test_a_backlog_forwarded_at_once_is_not_a_flood(plat):
    """A gateway's buffer or the store outage's disk buffer replayed in one go: ten minutes of readings arrive
    within a minute. They are late, not many: no flood (before the fix, every device of a drill raised one)."""
    feed(plat, 0, signals(1800, 2))
    sig = signals(600, 6)
    tags, ts, vs = [], [], []
    for i, arr in sig.items():
        for k in range(600):
            tags.append(f"{DEV}/p{i}")
            ts.append(T0 + (1800 + k) * S)
            vs.append(float(arr[k]))
    plat.clock_.t = T0 + (1800 + 600 + 5) * S          # arriving now, up to ten minutes late
    plat.pipeline.process_now(RawBatch.build(tags, ts, vs))
    plat.clock_.t += 120 * S
    plat.pipeline.process_now(RawBatch.build([f"{DEV}/p3"], [plat.clock_.t - S], [7.0]))
    assert "behaviour.flood" not in rules(plat), [e.message for e in list_events(plat.store)]
