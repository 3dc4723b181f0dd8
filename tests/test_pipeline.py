"""The ingest pipeline: validation reasons, dedupe (in batch, across batches, after restart), late data,
backpressure, processors, write failures."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.config import parse_config
from plantguard.domain.readings import DeadLetter, RawBatch
from plantguard.errors import Overloaded, StoreError
from plantguard.ingest.pipeline import Pipeline
from plantguard.ingest.registry import PointRegistry
from plantguard.store.embedded import EmbeddedStore
from plantguard.testing.factories import plant_dict, tag

NOW = 1_795_251_600_000_000  # 2026-11-21T09:00Z in us
S = 1_000_000


class FixedClock:
    def __init__(self, t=NOW):
        self.t = t

    def __call__(self):
        return self.t


def make(data_dir, n_points=3, cfg_dict=None, processors=None, **kw):
    cfg = parse_config(cfg_dict or plant_dict(n_points, alarms=False))
    store = EmbeddedStore(data_dir)
    store.migrate()
    reg = PointRegistry()
    reg.load(store.load_points())
    reg.sync_config(cfg, store)
    kw.setdefault("clock", FixedClock())
    return Pipeline(store, reg, processors, **kw), store


def batch(rows, source="test"):
    pts, ts, vals = zip(*rows) if rows else ((), (), ())
    return RawBatch.build(list(pts), list(ts), list(vals), source=source)


def test_accepts_and_stores(data_dir):
    pl, store = make(data_dir)
    r = pl.process_now(batch([(tag(0), NOW - 2 * S, 1.0), (tag(1), NOW - S, 2.0)]))
    assert (r.accepted, r.rejected, r.duplicates) == (2, 0, 0)
    s = store.raw(0, 0, NOW + S)
    assert s.ts.tolist() == [NOW - 2 * S] and s.value.tolist() == [1.0]
    assert pl.stats.accepted == 2


def test_each_validation_reason(data_dir):
    d = plant_dict(4, alarms=False)
    pts = d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]
    pts[1]["data_type"] = "int"
    pts[2]["data_type"] = "bool"
    pts[3]["data_type"] = "state"
    pts[3]["states"] = {0: "stopped", 1: "running"}
    pl, store = make(data_dir, cfg_dict=d)
    rows = [
        ("nope/x", NOW, 1.0),
        (tag(0), NOW, float("nan")),
        (tag(0), NOW - S, float("inf")),
        (tag(0), -5 * S, 1.0),
        (tag(0), NOW + 3600 * S, 1.0),
        (tag(0), NOW - 2 * S, 5000.0),
        (tag(1), NOW, 1.5),
        (tag(2), NOW, 0.5),
        (tag(3), NOW, 7.0),
        (tag(1), NOW - S, 3.0),  # the only good one
    ]
    r = pl.process_now(batch(rows))
    assert (r.accepted, r.rejected) == (1, 9)
    reasons = [e.reason for e in r.errors]
    for needle in ["unknown point", "NaN or infinite", "NaN or infinite", "before 1970", "in the future",
                   "outside the engineering range [-1000, 1000]", "not an integer", "not 0/1", "state codes"]:
        assert any(needle in x for x in reasons), needle
    dl = store.dead_letters(limit=50)
    assert len(dl) == 9 and all(d["source"] == "test" for d in dl)
    assert store.raw(1, 0, NOW + S).value.tolist() == [3.0]


def test_bad_quality_is_stored_but_flagged(data_dir):
    pl, store = make(data_dir)
    b = RawBatch.build([tag(0), tag(0)], [NOW - S, NOW], [1.0, 2.0], quality=[2, 0])
    assert pl.process_now(b).accepted == 2
    assert store.raw(0, 0, NOW + 1).quality.tolist() == [2, 0]


def test_quality_out_of_range_rejected(data_dir):
    pl, _ = make(data_dir)
    r = pl.process_now(RawBatch.build([tag(0)], [NOW], [1.0], quality=[7]))
    assert r.rejected == 1 and "quality" in r.errors[0].reason


def test_duplicates_in_batch_across_batches_and_late_data(data_dir):
    pl, store = make(data_dir)
    r = pl.process_now(batch([(tag(0), NOW - 10 * S, 1.0), (tag(0), NOW - 10 * S, 9.0), (tag(0), NOW - 5 * S, 2.0)]))
    assert (r.accepted, r.duplicates) == (2, 1)
    # the first copy wins
    assert store.raw(0, 0, NOW).value.tolist() == [1.0, 2.0]
    # resend + late (behind the watermark, never stored) + new
    r = pl.process_now(batch([(tag(0), NOW - 10 * S, 1.0), (tag(0), NOW - 7 * S, 3.0), (tag(0), NOW - S, 4.0)]))
    assert (r.accepted, r.duplicates) == (2, 1)
    assert store.raw(0, 0, NOW).ts.tolist() == [NOW - 10 * S, NOW - 7 * S, NOW - 5 * S, NOW - S]
    # late data must not move the latest value backwards
    assert pl.latest.ts[0] == NOW - S and pl.latest.value[0] == 4.0


def test_dedupe_survives_restart(data_dir):
    pl, store = make(data_dir)
    rows = [(tag(i % 3), NOW - (100 - i) * S, float(i)) for i in range(100)]
    assert pl.process_now(batch(rows)).accepted == 100
    store.close()
    pl2, store2 = make(data_dir)
    r = pl2.process_now(batch(rows + [(tag(0), NOW, 1.0)]))
    assert (r.accepted, r.duplicates) == (1, 100)
    assert store2.counts()["raw"] == 101


def test_unknown_points_auto_register_policy(data_dir):
    d = plant_dict(1, alarms=False)
    d["ingest"] = {"unknown_points": "auto_register"}
    pl, store = make(data_dir, cfg_dict=d, unknown_points="auto_register")
    r = pl.process_now(batch([("lab/new/sensor", NOW, 1.0), ("lab/new/sensor", NOW - S, 2.0)]))
    assert r.accepted == 2
    pid = pl.registry.pid("lab/new/sensor")
    assert pid is not None and pl.registry.meta[pid]["auto"] is True
    assert any(p.tag == "lab/new/sensor" for p in store.load_points())


def test_retired_point_rejected(data_dir):
    pl, store = make(data_dir, n_points=2)
    pl.registry.sync_config(parse_config(plant_dict(1, alarms=False)), store)
    r = pl.process_now(batch([(tag(1), NOW, 1.0)]))
    assert r.rejected == 1 and "retired" in r.errors[0].reason


def test_parse_dead_letters_travel_with_the_batch(data_dir):
    pl, store = make(data_dir)
    r = pl.process_now(batch([(tag(0), NOW, 1.0)]), [DeadLetter("mqtt", "malformed JSON: x", payload="{")])
    assert (r.accepted, r.rejected) == (1, 1)
    assert store.dead_letters()[0]["reason"] == "malformed JSON: x"


class Recorder:
    name = "recorder"

    def __init__(self, fail=False):
        self.batches, self.ticks, self.fail = [], 0, fail

    def on_batch(self, b, now):
        if self.fail:
            raise RuntimeError("boom")
        self.batches.append(b)

    def on_tick(self, now):
        self.ticks += 1

    def close(self):
        pass


def test_processors_see_accepted_sorted_and_errors_are_contained(data_dir):
    rec, bad = Recorder(), Recorder(fail=True)
    pl, _ = make(data_dir, processors=[bad, rec])
    pl.process_now(batch([(tag(1), NOW - S, 1.0), (tag(0), NOW, 2.0), (tag(0), NOW - 2 * S, 3.0), ("zz", NOW, 1.0)]))
    (b,) = rec.batches
    assert b.pid.tolist() == [0, 0, 1] and b.ts.tolist() == [NOW - 2 * S, NOW, NOW - S]
    assert pl.stats.processor_errors == 1


def test_threaded_submit_group_commit_and_ack_order(data_dir):
    pl, store = make(data_dir, clock=lambda: NOW)
    pl.start()
    order = []
    futs = [pl.submit(batch([(tag(i % 3), NOW - (1000 - i) * S, float(i))]), on_done=lambda f, i=i: order.append(i)) for i in range(200)]
    assert sum(f.result(10).accepted for f in futs) == 200
    pl.stop()
    assert order == list(range(200))  # acknowledgements go out in arrival order
    assert store.counts()["raw"] == 200


def test_backpressure_bounds_the_queue(data_dir):
    pl, _ = make(data_dir, max_queue_readings=1000)
    # writer not started: the queue fills, and the next producer is refused after its timeout
    pl.submit(batch([(tag(0), NOW - i * S, 1.0) for i in range(900)]))
    with pytest.raises(Overloaded):
        pl.submit(batch([(tag(1), NOW - i * S, 1.0) for i in range(200)]), timeout=0.05)
    assert pl.stats.queued_readings == 900
    # once the writer drains, a waiting producer goes through
    t = threading.Timer(0.1, pl.start)
    t.start()
    f = pl.submit(batch([(tag(1), NOW - i * S, 1.0) for i in range(200)]), timeout=10)
    assert f.result(10).accepted == 200
    pl.stop()


class FailingStore(EmbeddedStore):
    """Injects a fault a real disk rarely produces on demand."""

    fail = True

    def write(self, ws):
        if self.fail:
            raise StoreError("disk full")
        return super().write(ws)


def test_write_failure_fails_the_futures_and_changes_nothing(data_dir):
    cfg = parse_config(plant_dict(1, alarms=False))
    store = FailingStore(data_dir)
    store.migrate()
    reg = PointRegistry()
    reg.sync_config(cfg, store)
    pl = Pipeline(store, reg, clock=FixedClock()).start()
    f = pl.submit(batch([(tag(0), NOW, 1.0)]))
    with pytest.raises(StoreError, match="disk full"):
        f.result(10)
    assert pl.stats.accepted == 0 and pl.stats.write_errors == 1
    store.fail = False
    # the same readings can be sent again and are not mistaken for duplicates
    assert pl.submit(batch([(tag(0), NOW, 1.0)])).result(10).accepted == 1
    pl.stop()


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 50), st.floats(-500, 500)), max_size=60),
       st.lists(st.integers(1, 60), max_size=4))
@settings(max_examples=40, deadline=None)
def test_property_every_pair_stored_exactly_once(tmp_path_factory, rows, cuts):
    """Whatever the batching and however often readings repeat, each (point, ts) is stored once, first value wins."""
    d = tmp_path_factory.mktemp("prop")
    pl, store = make(d)
    rows = rows + rows[: len(rows) // 2]
    bounds = sorted(set([0, len(rows)] + [c for c in cuts if c < len(rows)]))
    for a, b in zip(bounds, bounds[1:]):
        pl.process_now(batch([(tag(p), NOW - t * S, v) for p, t, v in rows[a:b]]))
    expected = {}
    for p, t, v in rows:
        expected.setdefault((p, NOW - t * S), v)
    got = {}
    for p in range(3):
        s = store.raw(p, 0, NOW + 1)
        for t, v in zip(s.ts.tolist(), s.value.tolist()):
            assert (p, t) not in got
            got[(p, t)] = v
    assert got == expected
    store.close()


def test_readings_older_than_raw_retention_are_rejected_not_silently_deleted(data_dir):
    pl, store = make(data_dir, retention={"raw": 30 * 86400 * S})
    r = pl.process_now(batch([(tag(0), NOW - 31 * 86400 * S, 1.0), (tag(0), NOW - 29 * 86400 * S, 2.0)]))
    assert (r.accepted, r.rejected) == (1, 1)
    assert "retention" in r.errors[0].reason


def test_device_relative_names_resolve_and_reject_with_full_tags(data_dir):
    pl, store = make(data_dir)
    dev = "s1/a1/l1/pump1/plc1"
    b = RawBatch.build(["p0", "p1", "nope"], [NOW - 2 * S, NOW - S, NOW], [1.0, 2.0, 3.0], prefix=dev)
    other = RawBatch.build([tag(2)], [NOW], [4.0])  # a full-tag batch in the same group commit
    pl.start()
    f1, f2 = pl.submit(b), pl.submit(other)
    r1, r2 = f1.result(10), f2.result(10)
    pl.stop()
    assert (r1.accepted, r1.rejected, r2.accepted) == (2, 1, 1)
    assert r1.errors[0].point == f"{dev}/nope"
    assert store.raw(1, 0, NOW + 1).value.tolist() == [2.0]


def test_auto_register_with_device_relative_names(data_dir):
    d = plant_dict(1, alarms=False)
    pl, store = make(data_dir, cfg_dict=d, unknown_points="auto_register")
    r = pl.process_now(RawBatch.build(["p0", "extra"], [NOW, NOW], [1.0, 2.0], prefix="s1/a1/l1/pump1/plc1"))
    assert r.accepted == 2 and pl.registry.pid("s1/a1/l1/pump1/plc1/extra") is not None
    # the device table is rebuilt after registration, so the next batch resolves through it
    r = pl.process_now(RawBatch.build(["extra"], [NOW + 1], [3.0], prefix="s1/a1/l1/pump1/plc1"))
    assert r.accepted == 1


def test_a_cancelled_submitter_does_not_stop_the_writer(data_dir):
    pl, store = make(data_dir, clock=lambda: NOW)
    f1 = pl.submit(batch([(tag(0), NOW - 2 * S, 1.0)]))
    f1.cancel()  # e.g. a connector stopped while it waited for the durable write
    pl.start()
    f2 = pl.submit(batch([(tag(0), NOW - S, 2.0)]))
    assert f2.result(10).accepted == 1
    assert pl.alive
    pl.stop()
    assert store.raw(0, 0, NOW).value.tolist() == [1.0, 2.0]  # the cancelled batch was still written


def test_latest_values_read_from_the_store_equal_the_ones_in_memory(tmp_path):
    """Latest values live in memory for speed and in the store (written in the same transaction as the raw
    rows), so a process that did not write them reads the same answer."""
    from plantguard.config import parse_config
    from plantguard.domain.readings import RawBatch
    from plantguard.runtime import Platform
    from plantguard.testing.factories import plant_dict, tag

    p = Platform(parse_config(plant_dict(3, data_dir=str(tmp_path), alarms=False)))
    now = p.clock()
    p.pipeline.process_now(RawBatch.build([tag(0), tag(0), tag(1)], [now - 3_000_000, now - 1_000_000, now - 2_000_000],
                                          [1.0, 2.0, 3.0]))
    tags = [tag(0), tag(1), tag(2), "no/such/point"]
    mem = p.services.telemetry.latest(tags)
    assert p.services.telemetry.latest_stored(tags) == mem
    assert mem[tag(0)]["value"] == 2.0 and mem[tag(2)] is None and mem["no/such/point"] is None
    p.stop()
