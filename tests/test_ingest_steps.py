"""The pipeline's pure steps on hand-made groups: each check names its reason, the first copy of a (point, ts)
wins, late readings are looked up, and only the newest reading of a point advances `latest`."""

import numpy as np
from hypothesis import given, settings, strategies as st

from plantguard.ingest.steps import Check, dedupe, validate, write_rows


class Snap:
    def __init__(self):
        self.active = np.array([True, True, False, True])
        self.low = np.array([0.0, np.nan, 0.0, 0.0])
        self.high = np.array([10.0, np.nan, 10.0, 1.0])
        self.dtype = np.array([0, 1, 0, 2], np.int8)  # float, int, float, bool
        self.states = {}


NOW = 1_000_000_000


def test_each_check_names_its_reason():
    pid = np.array([-1, 2, 0, 0, 0, 0, 0, 1, 3, 0, 0], np.int32)
    ts = np.array([NOW] * 11, np.int64)
    ts[3] = -5
    ts[4] = NOW + 10_000
    ts[10] = NOW - 10_000
    value = np.array([1, 1, np.nan, 1, 1, 1, 11, 1.5, 0.5, 1, 1], float)
    quality = np.array([0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0], np.uint8)
    r = validate(pid, ts, value, quality, Snap(), now=NOW, max_future_us=1000, raw_retention_us=5000)
    assert [Check(x) for x in r.tolist()] == [
        Check.unknown_point, Check.retired_point, Check.not_finite, Check.before_1970, Check.future, Check.bad_quality,
        Check.out_of_range, Check.not_integer, Check.not_boolean, Check.ok, Check.too_old]


def test_dedupe_first_copy_wins_and_late_readings_are_looked_up():
    pid = np.array([0, 0, 1, 1, 0], np.int32)
    ts = np.array([5, 5, 3, 9, 2], np.int64)
    ok = np.ones(5, bool)
    wm = np.array([4, 0], np.int64)  # point 0 has stored up to ts 4
    asked = []

    def existing(p, t):
        asked.append(list(zip(p.tolist(), t.tolist())))
        return np.array([True] * len(p))  # ts 2 of point 0 is already stored

    keep, dup = dedupe(pid, ts, ok, wm, existing)
    assert asked == [[(0, 2)]]
    assert sorted(keep.tolist()) == [0, 2, 3] and sorted(dup.tolist()) == [1, 4]
    batch, latest, rollups = write_rows(pid, ts, np.arange(5.0), np.zeros(5, np.uint8), np.zeros(5, np.int64), keep, wm)
    assert batch.pid.tolist() == [0, 1, 1] and latest.pid.tolist() == [0, 1] and latest.ts.tolist() == [5, 9]
    assert set(rollups) == {"1m", "1h"}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20)), max_size=60))
def test_dedupe_keeps_each_pair_exactly_once(rows):
    pid = np.array([p for p, _ in rows], np.int32)
    ts = np.array([t for _, t in rows], np.int64)
    keep, dup = dedupe(pid, ts, np.ones(len(rows), bool), np.full(4, -1, np.int64), lambda p, t: np.zeros(len(p), bool))
    kept = sorted(zip(pid[keep].tolist(), ts[keep].tolist()))
    assert kept == sorted(set(rows)) and len(keep) + len(dup) == len(rows)
