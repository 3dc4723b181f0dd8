"""The alarm engine (limits, deadband, delays, rate of change, stale, device offline, ISA-18.2 states, operator
actions, persistence, reload) and webhook delivery against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.alarms.engine import AlarmEngine
from plantguard.alarms.notify import WebhookNotifier
from plantguard.domain.alarms import AlarmEvent, AlarmRecord
from plantguard.domain.settings import Webhook
from plantguard.config import parse_config
from plantguard.domain.readings import PointBatch, RawBatch
from plantguard.errors import Conflict, InvalidInput, NotFound
from plantguard.ingest.registry import PointRegistry
from plantguard.runtime import Platform
from plantguard.store.embedded import EmbeddedStore
from plantguard.testing.factories import plant_dict, tag

NOW = 1_795_251_600_000_000  # 2026-11-21T09:00Z in us
S = 1_000_000
P0 = tag(0)
DEVICE = "s1/a1/l1/pump1/plc1"


class Clock:
    def __init__(self, t: int = NOW) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def points_of(d: dict) -> list[dict]:
    return d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]


def cfg_with(alarms: dict | None, n_points: int = 2, **device) -> dict:
    """plant_dict with `alarms` on p0 and extra device settings."""
    d = plant_dict(n_points, alarms=False)
    if alarms is not None:
        points_of(d)[0]["alarms"] = alarms
    d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0].update(device)
    return d


class Rig:
    """An engine on a real embedded store, fed readings of p0 by timestamp (seconds after NOW)."""

    def __init__(self, data_dir, cfg_dict: dict, clock: Clock | None = None, notifier=None) -> None:
        self.data_dir = data_dir
        self.cfg = parse_config(cfg_dict)
        self.store = EmbeddedStore(data_dir)
        self.store.migrate()
        self.registry = PointRegistry()
        self.registry.load(self.store.load_points())
        self.registry.sync_config(self.cfg, self.store)
        self.clock = clock or Clock()
        self.engine = AlarmEngine(self.cfg, self.registry, self.store, clock=self.clock, notifier=notifier)

    def feed(self, readings, point: str = P0, quality=None) -> None:
        """readings: [(seconds after NOW, value)]; the clock moves to the newest reading."""
        pid = self.registry.pid(point)
        ts = np.array([NOW + round(s * S) for s, _ in readings], np.int64)
        n = len(readings)
        q = np.zeros(n, np.uint8) if quality is None else np.asarray(quality, np.uint8)
        batch = PointBatch(np.full(n, pid, np.int32), ts, np.array([v for _, v in readings], float), q, np.zeros(n, np.int64))
        self.clock.t = max(self.clock.t, int(ts.max()))
        self.engine.on_batch(batch, self.clock.t)

    def tick(self, seconds_after_now: float) -> None:
        self.clock.t = NOW + int(seconds_after_now * S)
        self.engine.on_tick(self.clock.t)

    def state(self, condition: str, point: str = P0) -> tuple[str, bool]:
        r = self.engine.get(f"{point}:{condition}")
        return r.state, r.active

    def events(self, alarm_id: str) -> list[str]:
        return [e.event for e in reversed(self.store.alarm_events(alarm_id))]


@pytest.fixture
def rig(data_dir):
    r = Rig(data_dir, plant_dict(2))  # p0: hihi 90, hi 80, lo 20, lolo 10, deadband 2
    yield r
    r.store.close()


# -- limits ---------------------------------------------------------------------------------------------
def test_limit_raises_and_clears_only_past_the_deadband(rig):
    rig.feed([(1, 50), (2, 85)])
    assert rig.state("HI") == ("unacknowledged", True)
    rec = rig.engine.get(f"{P0}:HI")
    assert rec.raised_at == NOW + 2 * S and rec.value == 85 and rec.limit == 80 and "above" in rec.message
    rig.feed([(3, 79)])  # back under 80 but inside the deadband (78..80): still active
    assert rig.state("HI") == ("unacknowledged", True)
    rig.feed([(4, 78)])
    assert rig.state("HI") == ("returned_to_normal", False)
    assert rig.engine.get(f"{P0}:HI").returned_at == NOW + 4 * S
    assert rig.events(f"{P0}:HI") == ["raised", "returned"]
    assert rig.state("HIHI") == ("normal", False)


def test_several_transitions_in_one_batch_are_all_recorded(rig):
    rig.feed([(1, 85), (2, 70), (3, 86), (4, 81)])
    assert rig.state("HI") == ("unacknowledged", True)
    assert rig.events(f"{P0}:HI") == ["raised", "returned", "raised"]


def test_hihi_keeps_hi_active_too(rig):
    rig.feed([(1, 95)])
    assert rig.state("HIHI") == ("unacknowledged", True)
    assert rig.state("HI") == ("unacknowledged", True)
    rig.feed([(2, 85)])
    assert rig.state("HIHI") == ("returned_to_normal", False)
    assert rig.state("HI") == ("unacknowledged", True)


def test_low_limits(rig):
    rig.feed([(1, 15)])
    assert rig.state("LO")[1] and not rig.state("LOLO")[1]
    rig.feed([(2, 5)])
    assert rig.state("LOLO") == ("unacknowledged", True)
    rig.feed([(3, 21)])  # 21 < lo + deadband: LO holds
    assert rig.state("LO")[1] and not rig.state("LOLO")[1]
    rig.feed([(4, 22)])
    assert not rig.state("LO")[1]


def test_on_delay_needs_the_condition_to_hold_in_reading_time(data_dir):
    r = Rig(data_dir, cfg_with({"limits": {"hi": 80, "on_delay": "5s", "off_delay": "3s"}}))
    r.feed([(0, 85), (1, 85), (2, 70), (3, 85), (4, 85)])  # interrupted: the run restarts at 3 s
    assert r.state("HI") == ("normal", False)
    r.feed([(7, 85)])  # 4 s into the run, across a batch boundary
    assert r.state("HI") == ("normal", False)
    r.feed([(8, 85)])  # 5 s
    rec = r.engine.get(f"{P0}:HI")
    assert (rec.state, rec.active, rec.raised_at) == ("unacknowledged", True, NOW + 8 * S)
    r.feed([(9, 50), (10, 50), (11, 85), (12, 50), (13, 50)])  # the off delay restarts too
    assert r.state("HI")[1]
    r.feed([(14, 50), (15, 50)])
    rec = r.engine.get(f"{P0}:HI")
    assert (rec.active, rec.returned_at) == (False, NOW + 15 * S)


def test_bad_quality_is_not_judged(rig):
    rig.feed([(1, 95), (2, 5)], quality=[2, 2])
    assert all(r.state == "normal" for r in rig.engine.list(tag_prefix=P0))
    rig.feed([(3, 85), (4, 50)], quality=[2, 1])  # uncertain quality is judged
    assert rig.state("HI") == ("normal", False)
    rig.feed([(5, 85)], quality=[1])
    assert rig.state("HI") == ("unacknowledged", True)


def test_late_readings_do_not_rewrite_the_present(rig):
    rig.feed([(10, 50)])
    rig.feed([(5, 95)])  # older than what was already judged
    assert rig.state("HI") == ("normal", False)


# -- rate of change -------------------------------------------------------------------------------------
def test_rate_of_change_across_batch_boundaries(data_dir):
    r = Rig(data_dir, cfg_with({"rate_of_change": {"max_per_second": 10, "priority": "high"}}))
    r.feed([(0, 50)])
    r.feed([(2, 60)])  # 5/s
    assert r.state("ROC") == ("normal", False)
    r.feed([(3, 75)])  # 15/s against the previous batch's reading
    rec = r.engine.get(f"{P0}:ROC")
    assert (rec.state, rec.active, rec.value, rec.priority) == ("unacknowledged", True, 15.0, "high")
    r.feed([(4, 76), (5, 60)])  # 1/s clears, then -16/s raises again
    assert r.events(f"{P0}:ROC") == ["raised", "returned", "raised"]
    r.feed([(6, 60)], quality=[2])
    r.feed([(8, 70)])  # 10/s from the last good reading: not above the limit
    assert r.state("ROC") == ("returned_to_normal", False)


# -- stale and offline ----------------------------------------------------------------------------------
def test_stale_point(data_dir):
    r = Rig(data_dir, cfg_with({"stale": {"periods": 3}}))
    r.tick(2)
    assert r.state("STALE") == ("normal", False)
    r.feed([(2, 50)])  # arrives on time (a reading that arrived late is forgiven its lateness: see the next test)
    r.tick(5)  # 3 s since the reading: not more than 3 periods yet
    assert r.state("STALE") == ("normal", False)
    r.tick(6)
    rec = r.engine.get(f"{P0}:STALE")
    assert (rec.state, rec.active, rec.raised_at, rec.priority) == ("unacknowledged", True, NOW + 6 * S, "low")
    assert "no data for 4 s" in rec.message
    r.feed([(7, 50)])  # fresh data clears at once, without waiting for a tick
    assert r.state("STALE") == ("returned_to_normal", False)


def test_a_platform_that_falls_behind_raises_no_offline_alarm_but_a_silent_device_still_does(data_dir):
    """The writer is behind (its queue's oldest reading waited 30 s) and the readings that do get through arrive
    late: healthy devices are not declared offline. A device that really stopped is, once caught up."""
    d = cfg_with({"stale": {"periods": 3}}, offline_after_periods=5)
    r = Rig(data_dir, d)
    lag = {"us": 0}
    r.engine.lag_us = lambda: lag["us"]
    r.feed([(1, 50)])
    # 30 s later by the clock, the platform is 30 s behind: what it wrote is 30 s old
    lag["us"] = 29 * S
    r.tick(31)
    assert r.state("STALE") == ("normal", False) and r.state("OFFLINE", DEVICE) == ("normal", False)
    # a late reading arrives (25 s late): its lateness is forgiven too
    lag["us"] = 0
    r.clock.t = NOW + 32 * S
    batch_t = 7
    r.engine.on_batch(__import__("plantguard.domain.readings", fromlist=["PointBatch"]).PointBatch(
        np.array([r.registry.pid(P0)], np.int32), np.array([NOW + batch_t * S]), np.array([50.0]), np.zeros(1, np.uint8),
        np.full(1, np.iinfo(np.int64).min)), r.clock.t)
    r.tick(33)
    assert r.state("STALE") == ("normal", False)
    # caught up, and the device says nothing more: alarmed
    r.tick(32 + 6)
    assert r.state("STALE")[1] is True and r.state("OFFLINE", DEVICE)[1] is True


def test_device_offline_and_recovery(data_dir):
    d = cfg_with(None, offline_after_periods=5)
    points_of(d)[1]["period"] = "500ms"  # the smallest period sets the window: 2.5 s
    asset = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]
    asset["devices"].append({"id": "empty", "points": []})
    r = Rig(data_dir, d)
    r.tick(2)
    assert r.state("OFFLINE", DEVICE) == ("normal", False)
    r.tick(3)  # nothing since start
    rec = r.engine.get(f"{DEVICE}:OFFLINE")
    assert (rec.state, rec.active, rec.tag, rec.condition) == ("unacknowledged", True, DEVICE, "OFFLINE")
    r.feed([(3.5, 1.0)], point=tag(1))  # any point of the device brings it back
    assert r.state("OFFLINE", DEVICE) == ("returned_to_normal", False)
    r.tick(5)
    assert not r.state("OFFLINE", DEVICE)[1]
    r.tick(6.1)
    assert r.state("OFFLINE", DEVICE) == ("unacknowledged", True)
    with pytest.raises(NotFound):
        r.engine.get("s1/a1/l1/pump1/empty:OFFLINE")  # a device without points has no offline alarm


# -- operator actions -----------------------------------------------------------------------------------
def test_acknowledge_active_then_return(rig):
    hi = f"{P0}:HI"
    rig.feed([(1, 85)])
    rig.clock.t = NOW + 10 * S
    rec = rig.engine.acknowledge(hi, "alice", "checking the pump")
    assert (rec.state, rec.acked_by, rec.acked_at) == ("acknowledged", "alice", NOW + 10 * S)
    with pytest.raises(Conflict, match="already acknowledged"):
        rig.engine.acknowledge(hi, "bob")
    rig.feed([(11, 50)])
    assert rig.state("HI") == ("normal", False)
    with pytest.raises(Conflict, match="normal"):
        rig.engine.acknowledge(hi, "bob")
    assert rig.events(hi) == ["raised", "acknowledged", "returned"]
    ev = rig.store.alarm_events(hi)[1]
    assert (ev.actor, ev.note) == ("user:alice", "checking the pump")  # who, with the kind of identity


def test_acknowledge_after_return_to_normal(rig):
    rig.feed([(1, 85), (2, 50)])
    assert rig.state("HI") == ("returned_to_normal", False)
    rec = rig.engine.acknowledge(f"{P0}:HI", "alice")
    assert (rec.state, rec.active, rec.acked_by) == ("normal", False, "alice")
    rig.feed([(3, 85)])  # a new occurrence needs a new acknowledgement
    rec = rig.engine.get(f"{P0}:HI")
    assert (rec.state, rec.acked_by) == ("unacknowledged", None)
    assert rig.engine.active_count() == 1


def test_shelve_tracks_the_condition_and_expires(rig):
    hi = f"{P0}:HI"
    rig.feed([(1, 85)])
    rig.clock.t = NOW + 2 * S
    rec = rig.engine.shelve(hi, "alice", 60 * S, "sensor being replaced")
    assert (rec.state, rec.shelved_by, rec.shelved_at, rec.shelved_until, rec.shelve_reason) == (
        "shelved", "alice", NOW + 2 * S, NOW + 62 * S, "sensor being replaced")
    assert rig.engine.active_count() == 0 and rig.engine.list(active=True)[0].id == hi
    with pytest.raises(Conflict, match="shelved"):
        rig.engine.acknowledge(hi, "bob")
    with pytest.raises(Conflict, match="already shelved"):
        rig.engine.shelve(hi, "bob", S, "again")
    rig.feed([(3, 50)])  # returns while shelved: still shelved, condition tracked
    assert rig.state("HI") == ("shelved", False)
    rig.tick(61)
    assert rig.state("HI") == ("shelved", False)
    rig.tick(62)
    rec = rig.engine.get(hi)
    assert (rec.state, rec.shelved_by, rec.shelved_until) == ("normal", None, None)
    assert rig.events(hi) == ["raised", "shelved", "returned", "unshelved"]
    assert rig.store.alarm_events(hi)[1].note == "while shelved"


def test_unshelve_restores_an_active_alarm_as_unacknowledged(rig):
    hi = f"{P0}:HI"
    rig.engine.shelve(hi, "alice", 3600 * S, "commissioning")  # shelving a normal alarm is allowed
    rig.feed([(1, 85)])
    assert rig.state("HI") == ("shelved", True)
    rec = rig.engine.unshelve(hi, "alice")
    assert (rec.state, rec.active, rec.raised_at) == ("unacknowledged", True, NOW + 1 * S)
    with pytest.raises(Conflict, match="not shelved"):
        rig.engine.unshelve(hi, "alice")


def test_invalid_actions(rig):
    with pytest.raises(NotFound):
        rig.engine.acknowledge("nope:HI", "alice")
    with pytest.raises(NotFound):
        rig.engine.get("nope:HI")
    with pytest.raises(InvalidInput, match="positive duration"):
        rig.engine.shelve(f"{P0}:HI", "alice", 0, "x")
    with pytest.raises(InvalidInput, match="user"):
        rig.engine.shelve(f"{P0}:HI", "", S, "x")
    with pytest.raises(InvalidInput):
        rig.engine.list(state="loud")


def test_list_filters(rig):
    rig.feed([(1, 95)])
    active = rig.engine.list(active=True)
    assert [r.condition for r in active] == ["HI", "HIHI"]  # same priority and time: by id
    assert {r.condition for r in rig.engine.list(state="normal", tag_prefix=P0)} == {"LO", "LOLO"}
    assert rig.engine.list(priority="urgent") == []
    assert {r.condition for r in rig.engine.list(tag_prefix=DEVICE)} == {"HIHI", "HI", "LO", "LOLO", "OFFLINE"}


# -- persistence and reload -----------------------------------------------------------------------------
def test_states_survive_a_restart(data_dir):
    r = Rig(data_dir, plant_dict(2))
    r.feed([(1, 95)])
    r.engine.acknowledge(f"{P0}:HI", "alice")
    r.engine.shelve(f"{P0}:HIHI", "bob", 600 * S, "known")
    r.engine.close()
    r.store.close()
    r2 = Rig(data_dir, plant_dict(2), clock=Clock(NOW + 2 * S))
    hi = r2.engine.get(f"{P0}:HI")
    assert (hi.state, hi.active, hi.acked_by) == ("acknowledged", True, "alice")
    assert r2.state("HIHI") == ("shelved", True)
    r2.feed([(3, 50)])  # the restored condition state lets the alarm return
    assert r2.state("HI") == ("normal", False)
    r2.tick(601)
    assert r2.state("HIHI") == ("normal", False)
    assert r2.events(f"{P0}:HI") == ["raised", "acknowledged", "returned"]
    r2.store.close()


def test_reload_changes_and_removes_rules(rig):
    rig.feed([(1, 85)])
    assert rig.state("HI")[1]
    d = plant_dict(2)
    points_of(d)[0]["alarms"] = {"limits": {"hihi": 95, "lo": 20, "priority": "high"}}
    cfg = parse_config(d)
    rig.registry.sync_config(cfg, rig.store)
    rig.engine.reload(cfg)
    with pytest.raises(NotFound):
        rig.engine.get(f"{P0}:HI")
    assert rig.events(f"{P0}:HI") == ["raised", "cleared"]
    assert rig.engine.get(f"{P0}:HIHI").limit == 95 and rig.engine.get(f"{P0}:LO").priority == "high"
    rig.feed([(2, 92)])  # above the old hihi, below the new one
    assert rig.state("HIHI") == ("normal", False)
    rig.feed([(3, 96)])
    assert rig.state("HIHI") == ("unacknowledged", True)


def test_hi_is_active_exactly_when_the_last_value_is_above_hi(data_dir):
    r = Rig(data_dir, cfg_with({"limits": {"hi": 80, "hihi": 150}}))  # no deadband, no delays
    clock = [0]  # one engine for all examples: each starts later, from an in-range value

    @settings(max_examples=150, deadline=None)
    @given(batches=st.lists(st.lists(st.floats(-100, 200, allow_nan=False), min_size=1, max_size=8), min_size=1, max_size=6))
    def prop(batches):
        r.feed([(clock[0], 50.0)])
        clock[0] += 1
        for values in batches:
            r.feed([(clock[0] + i, v) for i, v in enumerate(values)])
            clock[0] += len(values)
            assert r.state("HI")[1] == (values[-1] > 80)
            assert r.state("HIHI")[1] == (values[-1] > 150)

    try:
        prop()
    finally:
        r.store.close()


class _ReferenceHi:
    """HI with deadband and delays, judged one reading at a time: the plain reading of the rules."""

    def __init__(self, hi, deadband, on_us, off_us):
        self.hi, self.deadband, self.on, self.off = hi, deadband, on_us, off_us
        self.active, self.exceed_since, self.clear_since = False, None, None
        self.events: list[tuple[str, int]] = []

    def feed(self, t, v):
        exceed, clear = v > self.hi, v <= self.hi - self.deadband
        self.exceed_since = (t if self.exceed_since is None else self.exceed_since) if exceed else None
        self.clear_since = (t if self.clear_since is None else self.clear_since) if clear else None
        if not self.active and exceed and t - self.exceed_since >= self.on:
            self.active = True
            self.events.append(("raised", t))
        elif self.active and clear and t - self.clear_since >= self.off:
            self.active = False
            self.events.append(("returned", t))


def test_vectorised_limits_match_a_reading_by_reading_model(data_dir):
    r = Rig(data_dir, cfg_with({"limits": {"hi": 80, "deadband": 3, "on_delay": "2s", "off_delay": "3s"}}))
    ref = _ReferenceHi(80, 3, 2 * S, 3 * S)
    seen = [0]
    now = [NOW]  # one stream through all examples, so runs also span examples

    gap = st.sampled_from([S // 2, S, 3 * S // 2, 2 * S, 3 * S]) | st.integers(1, 3 * S)
    reading = st.tuples(gap, st.sampled_from([70.0, 76.0, 77.0, 79.0, 80.0, 80.5, 85.0]), st.sampled_from([0, 0, 0, 2]))

    @settings(max_examples=150, deadline=None)
    @given(batches=st.lists(st.lists(reading, min_size=1, max_size=10), min_size=1, max_size=4))
    def prop(batches):
        for b in batches:
            ts, vs, qs = [], [], []
            for gap, v, q in b:
                now[0] += gap
                ts.append(now[0])
                vs.append(v)
                qs.append(q)
                if q != 2:
                    ref.feed(now[0], v)
            r.feed([((t - NOW) / S, v) for t, v in zip(ts, vs)], quality=qs)
            assert r.state("HI")[1] == ref.active
        got = [(e.event, e.at) for e in reversed(r.store.alarm_events(f"{P0}:HI", limit=100_000))]
        assert got == ref.events
        seen[0] = max(seen[0], len(got))

    try:
        prop()
        assert seen[0] > 10  # the stream did raise and clear many times
    finally:
        r.store.close()


# -- the platform ---------------------------------------------------------------------------------------
def test_platform_runs_the_engine_on_the_pipeline(data_dir):
    d = plant_dict(2, data_dir=str(data_dir))
    d["alarms"] = {"webhooks": [{"url": "http://127.0.0.1:9/none", "retries": 0}], "webhook_allowed_networks": ["127.0.0.1/32"]}
    clock = Clock()
    p = Platform(parse_config(d), clock=clock)
    try:
        assert p.services.alarms.engine.name == "alarms" and isinstance(p.services.alarms.engine.notifier, WebhookNotifier)
        p.pipeline.process_now(RawBatch.build([P0, tag(1), P0], [NOW - 2 * S, NOW - S, NOW - S], [50, 99, 95]))
        assert p.services.alarms.engine.get(f"{P0}:HIHI").state == "unacknowledged"
        assert p.services.alarms.engine.active_count() == 2
    finally:
        p.stop()


LOCAL = ["127.0.0.0/8"]  # the test receivers listen on loopback, which webhooks may not reach by default

# -- webhooks -------------------------------------------------------------------------------------------
class _Server:
    """A loopback HTTP server answering each POST with the next status of a script (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[tuple[dict, dict]] = []
        self.got = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with outer.got:
                    outer.requests.append((dict(self.headers), body))
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    outer.got.notify_all()
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _wait(cond, predicate, timeout=10.0) -> bool:
    with cond:
        return cond.wait_for(predicate, timeout)


def _alarm(priority="high") -> tuple[AlarmRecord, AlarmEvent]:
    rec = AlarmRecord(f"{P0}:HI", P0, "HI", priority, state="unacknowledged", active=True, value=85.0, limit=80.0, raised_at=NOW)
    return rec, AlarmEvent(rec.id, NOW, "raised", value=85.0)


def test_webhook_retries_5xx_until_delivered():
    srv = _Server([503, 503])
    n = WebhookNotifier([Webhook(url=srv.url, retries=3, timeout=2)], backoff_base=0.01, allowed_networks=LOCAL).start()
    try:
        n.notify(*_alarm())
        assert _wait(srv.got, lambda: len(srv.requests) == 3)
        n.stop()  # drains: the delivery in flight completes
        headers, body = srv.requests[-1]
        assert body["alarm"]["id"] == f"{P0}:HI" and body["alarm"]["state"] == "unacknowledged"
        assert body["event"] == {"alarm_id": f"{P0}:HI", "at": NOW, "event": "raised", "actor": None, "note": None, "value": 85.0}
        assert len({h["x-plantguard-delivery"] for h, _ in srv.requests}) == 1  # one delivery id across retries
        assert n.stats() | {"queued": 0} == {"sent": 1, "failed": 0, "dropped": 0, "retries": 2, "queued": 0}
    finally:
        n.stop()
        srv.close()


def test_webhook_4xx_is_not_retried_and_priority_filters():
    srv = _Server([400])
    low_only = Webhook(url=srv.url, retries=5, timeout=2)
    urgent_only = Webhook(url=srv.url + "?urgent", min_priority="urgent", retries=5, timeout=2)
    n = WebhookNotifier([low_only, urgent_only], backoff_base=0.01, allowed_networks=LOCAL).start()
    try:
        n.notify(*_alarm("high"))
        n.notify(*_alarm("urgent"))
        assert _wait(srv.got, lambda: len(srv.requests) == 3)
        n.stop()
        assert n.stats() == {"sent": 2, "failed": 1, "dropped": 0, "retries": 0, "queued": 0}
        assert [b["alarm"]["priority"] for _, b in srv.requests] == ["high", "urgent", "urgent"]
    finally:
        n.stop()
        srv.close()


def test_notify_never_blocks_and_drops_the_oldest():
    n = WebhookNotifier([Webhook(url="http://127.0.0.1:9/none")], queue_size=2, allowed_networks=LOCAL)  # not started: nothing drains
    for i in range(5):
        rec, ev = _alarm()
        ev.at = i
        n.notify(rec, ev)
    assert n.stats()["dropped"] == 3 and n.stats()["queued"] == 2
    assert [b["event"]["at"] for _, b in n._q] == [3, 4]


def test_engine_notifies_transitions_but_not_while_shelved(data_dir):
    srv = _Server([])
    n = WebhookNotifier([Webhook(url=srv.url, min_priority="medium", timeout=2)], backoff_base=0.01, allowed_networks=LOCAL).start()
    r = Rig(data_dir, plant_dict(2), notifier=n)
    try:
        r.feed([(1, 85)])
        r.engine.shelve(f"{P0}:HI", "alice", 60 * S, "noisy")
        r.feed([(2, 50)])
        r.engine.unshelve(f"{P0}:HI", "alice")
        assert _wait(srv.got, lambda: len(srv.requests) == 3)
        n.stop()
        assert [b["event"]["event"] for _, b in srv.requests] == ["raised", "shelved", "unshelved"]
        assert srv.requests[0][1]["alarm"]["state"] == "unacknowledged"  # the state at the time, not the latest
    finally:
        n.stop()
        r.store.close()
        srv.close()


def test_shadow_device_is_stored_but_raises_no_alarm(data_dir):
    d = plant_dict(2, data_dir=str(data_dir))
    dev = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]
    dev["mode"] = "shadow"
    dev["points"][0]["alarms"]["stale"] = {"periods": 2}
    clock = Clock()
    p = Platform(parse_config(d), clock=clock)
    try:
        p.pipeline.process_now(RawBatch.build([P0, P0], [NOW - 2 * S, NOW - S], [99.0, 99.5]))
        clock.t = NOW + 3600 * S
        p.services.alarms.engine.on_tick(clock.t)  # no stale or offline alarm either
        assert p.services.alarms.engine.active_count() == 0 and p.services.alarms.engine.list(active=True) == []
        assert p.store.raw(p.services.telemetry.pid_of(P0), 0, NOW).value.tolist() == [99.0, 99.5]
        assert p.registry.meta[p.services.telemetry.pid_of(P0)]["shadow"] is True
    finally:
        p.stop()
