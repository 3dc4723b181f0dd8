"""State per partition: a worker takes a partition over by loading that partition's learned state only, and
continues exactly where the previous owner stopped. Analytics checkpoints are written one per partition; alarm
states and dedupe watermarks are read from the store by partition."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, strategies as st

from plantguard import checkpoints
from plantguard.config import parse_config
from plantguard.domain.partition import LEVELS, in_partition, partition_key
from plantguard.domain.readings import RawBatch
from plantguard.plant_analytics.processor import CHECKPOINT_NAME
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict

NOW = 1_795_251_600_000_000
S = 1_000_000
L1, L2 = "s1/a1/l1", "s1/a1/l2"


class Clock:
    def __init__(self) -> None:
        self.t = NOW

    def __call__(self) -> int:
        return self.t


def two_lines(data_dir) -> dict:
    d = plant_dict(4, data_dir=str(data_dir), alarms=False)
    line = d["sites"][0]["areas"][0]["lines"][0]
    pts = line["assets"][0]["devices"][0]["points"]
    pts[0]["analytics"] = {"spc": {"baseline": 50}}
    pts[1]["analytics"] = {"anomaly": {"detector": "default"}}
    pts[2]["analytics"] = {"anomaly": {"detector": "robust_z", "threshold": 0.9}}
    line["assets"][0]["analytics"] = {"anomaly": {"detector": "mahalanobis", "points": ["plc1/p2", "plc1/p3"],
                                                  "threshold": 0.99, "params": {"warmup": 100}}}
    other = copy.deepcopy(line)
    other["id"] = "l2"
    d["sites"][0]["areas"][0]["lines"].append(other)
    return d


def t(line: str, i: int) -> str:
    return f"{line}/pump1/plc1/p{i}"


def feed(p: Platform, clock: Clock, lines: list[str], start_s: int, n: int, seed: int, shift_at: int | None = None) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(50, 1, (n, 4))
    if shift_at is not None:
        x[shift_at - start_s:] += 7.0
    for lo in range(0, n, 10):
        tags, ts, vals = [], [], []
        for line in lines:
            for k in range(lo, min(n, lo + 10)):
                for i in range(4):
                    tags.append(t(line, i))
                    ts.append(NOW + (start_s + k) * S)
                    vals.append(float(x[k, i]))
        clock.t = NOW + (start_s + min(n, lo + 10)) * S
        p.pipeline.process_now(RawBatch.build(tags, ts, vals))


def live_of(p: Platform, line: str) -> dict:
    live = p.services.analytics.processor.live()
    return {kind: {k: v for k, v in items.items() if in_partition(k, line)} for kind, items in live.items()
            if isinstance(items, dict)}


@given(st.lists(st.text("abc", min_size=1, max_size=3), min_size=1, max_size=7), st.sampled_from(sorted(LEVELS)))
def test_partition_key_is_a_prefix_of_the_path_and_idempotent(levels, by):
    path = "/".join(levels)
    key = partition_key(path, by)
    assert in_partition(path, key) and partition_key(key, by) == key
    assert key.count("/") == min(LEVELS[by], len(levels)) - 1


def test_a_partition_taken_over_continues_exactly_where_it_was(tmp_path):
    ca, cb = Clock(), Clock()
    cfg = parse_config(two_lines(tmp_path / "a"))
    a = Platform(cfg, clock=ca)
    feed(a, ca, [L1, L2], 0, 300, seed=1)
    blob = a.services.analytics.processor.partition_state(L2)

    db = two_lines(tmp_path / "b")
    db["storage"]["key_dir"] = str(tmp_path / "a" / "keys")  # workers share the state key that seals what they hand over
    b = Platform(parse_config(db), clock=cb)
    b.services.analytics.processor.adopt(blob, b.cfg)
    assert live_of(b, L2) == live_of(a, L2)
    # only the partition moved: the other line starts from nothing on the new worker
    assert live_of(b, L1)["spc"][t(L1, 0)]["status"] == "insufficient_data"

    feed(a, ca, [L2], 300, 200, seed=2, shift_at=400)
    feed(b, cb, [L2], 300, 200, seed=2, shift_at=400)
    assert live_of(b, L2) == live_of(a, L2)
    after = NOW + 300 * S
    ev_a = sorted((e.key, e.ts, e.rule) for e in a.store.analytics_events(since=after) if L2 in e.key)
    ev_b = sorted((e.key, e.ts, e.rule) for e in b.store.analytics_events(since=after))
    assert ev_a and ev_a == ev_b
    a.stop()
    b.stop()


def test_checkpoints_are_written_per_partition_and_a_bad_one_costs_only_its_own(tmp_path):
    clock = Clock()
    cfg = parse_config(two_lines(tmp_path))
    p = Platform(cfg, clock=clock)
    feed(p, clock, [L1, L2], 0, 120, seed=3)
    p.stop()
    from plantguard.store import open_store

    store = open_store(cfg.storage)
    assert store.load_checkpoint(f"{CHECKPOINT_NAME}@{L1}") and store.load_checkpoint(f"{CHECKPOINT_NAME}@{L2}")
    store.save_checkpoint(f"{CHECKPOINT_NAME}@{L1}", b"PGCKPT 2 analytics\nnot a pickle", NOW)
    store.close()
    p = Platform(cfg, clock=clock)
    assert live_of(p, L1)["spc"][t(L1, 0)]["status"] == "insufficient_data"  # relearning, alone
    assert live_of(p, L2)["spc"][t(L2, 0)]["limits"] is not None               # kept
    p.stop()


def test_a_checkpoint_from_before_partitions_is_still_restored(tmp_path):
    clock = Clock()
    cfg = parse_config(two_lines(tmp_path))
    p = Platform(cfg, clock=clock)
    feed(p, clock, [L1, L2], 0, 120, seed=4)
    whole = checkpoints.dumps(p.services.analytics.processor._st, CHECKPOINT_NAME, p.services.analytics.processor._keys)  # noqa: SLF001 - the former single blob
    limits = live_of(p, L1)["spc"][t(L1, 0)]["limits"]
    p.pipeline.processors.remove(p.services.analytics.processor)  # keep stop() from writing partition checkpoints
    p.stop()
    from plantguard.store import open_store

    store = open_store(cfg.storage)
    store.save_checkpoint(CHECKPOINT_NAME, whole, NOW)
    store.close()
    p = Platform(cfg, clock=clock)
    assert live_of(p, L1)["spc"][t(L1, 0)]["limits"] == limits
    p.stop()


def test_a_partition_snapshot_is_read_from_the_store_alone(tmp_path):
    clock = Clock()
    d = two_lines(tmp_path)
    for line in d["sites"][0]["areas"][0]["lines"]:
        line["assets"][0]["devices"][0]["points"][3]["alarms"] = {"limits": {"hi": 60}}
    cfg = parse_config(d)
    p = Platform(cfg, clock=clock)
    feed(p, clock, [L1, L2], 0, 60, seed=5)
    clock.t = NOW + 61 * S
    p.pipeline.process_now(RawBatch.build([t(L2, 3)], [NOW + 61 * S], [99.0]))  # HI on line 2 only
    assert p.services.partitions.keys() == [L1, L2]
    p.stop()  # the checkpoints and alarm records are in the store; nothing is read from memory below

    reader = Platform(cfg, clock=clock)  # another process on the same store
    snap = reader.services.partitions.snapshot(L2)
    assert snap.key == L2 and set(snap.watermarks) == {t(L2, i) for i in range(4)}
    assert snap.watermarks[t(L2, 3)] == NOW + 61 * S and snap.watermarks[t(L2, 0)] == NOW + 59 * S
    assert [(a.tag, a.condition, a.active) for a in snap.alarms if a.active] == [(t(L2, 3), "HI", True)]
    assert snap.analytics is not None and checkpoints.loads(snap.analytics, CHECKPOINT_NAME).spc_keys.keys() == {t(L2, 0)}
    assert reader.services.partitions.snapshot(L1).alarms == () or not any(a.active for a in reader.services.partitions.snapshot(L1).alarms)
    reader.stop()
