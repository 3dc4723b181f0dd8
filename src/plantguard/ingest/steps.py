"""The pure steps of one writer turn, separately testable: validate a group of readings, remove duplicates, build
what is written. The pipeline (pipeline.py) runs them in order between resolving tags and the durable write.

    reason = validate(pid, ts, value, quality, snap, now=now, max_future_us=..., raw_retention_us=...)
    keep, dup = dedupe(pid, ts, reason == Check.ok, watermark, existing)
    batch, latest, rollups = write_rows(pid, ts, value, quality, src_ts, keep, watermark)
"""

from __future__ import annotations

from enum import IntEnum
from typing import Callable

import numpy as np

from plantguard.domain.readings import PointBatch
from plantguard.store.rollup import TIERS, rollup


class Check(IntEnum):
    """Why a reading is refused; the first failing check names the reason (0: accepted)."""
    ok = 0
    unknown_point = 1
    retired_point = 2
    not_finite = 3
    before_1970 = 4
    future = 5
    bad_quality = 6
    out_of_range = 7
    not_integer = 8
    not_boolean = 9
    not_state = 10
    too_old = 11


#: the reject code (domain/readings.REJECT_CODES) and the default text of each check
CHECK_TEXT: dict[Check, str] = {
    Check.ok: "",
    Check.unknown_point: "unknown point (not in the plant model; set ingest.unknown_points: auto_register to accept it)",
    Check.retired_point: "point is retired (no longer in the plant model)",
    Check.not_finite: "value is NaN or infinite",
    Check.before_1970: "timestamp before 1970-01-01",
    Check.future: "timestamp too far in the future",
    Check.bad_quality: "quality must be 0 (good), 1 (uncertain) or 2 (bad)",
    Check.out_of_range: "value outside the engineering range",
    Check.not_integer: "value is not an integer (point data_type int)",
    Check.not_boolean: "value is not 0/1 or a boolean (point data_type bool)",
    Check.not_state: "value is not one of the point's state codes",
    Check.too_old: "timestamp older than the raw retention period (storage.retention_raw); it would be deleted",
}


def validate(pid: np.ndarray, ts: np.ndarray, value: np.ndarray, quality: np.ndarray, snap, *, now: int,
             max_future_us: int | None, raw_retention_us: int | None) -> np.ndarray:
    """The Check of every reading (int8), vectorised. `pid` < 0 is an unknown point; `snap` is the registry's
    snapshot (active flags, engineering ranges, data types, state codes per point)."""
    n = len(ts)
    reason = np.zeros(n, np.int8)
    unknown = pid < 0
    reason[unknown] = Check.unknown_point
    safe = np.where(unknown, 0, pid)
    if len(snap.active):
        reason[(reason == 0) & ~snap.active[safe]] = Check.retired_point
    ok = reason == 0
    reason[ok & ~np.isfinite(value)] = Check.not_finite
    reason[(reason == 0) & (ts < 0)] = Check.before_1970
    if max_future_us is not None:
        reason[(reason == 0) & (ts > now + max_future_us)] = Check.future
    if raw_retention_us is not None:
        reason[(reason == 0) & (ts < now - raw_retention_us)] = Check.too_old
    reason[(reason == 0) & (quality > 2)] = Check.bad_quality
    ok = reason == 0
    if ok.any() and len(snap.low):
        lo, hi = snap.low[safe], snap.high[safe]
        with np.errstate(invalid="ignore"):
            out = (value < lo) | (value > hi)  # NaN limits compare False: no limit
        reason[ok & out] = Check.out_of_range
        dt = snap.dtype[safe]
        ok = reason == 0
        if (dt[ok] != 0).any():
            reason[ok & (dt == 1) & (value != np.rint(value))] = Check.not_integer
            reason[ok & (dt == 2) & (value != 0) & (value != 1)] = Check.not_boolean
            for spid, codes in snap.states.items():
                m = ok & (pid == spid)
                if m.any():
                    reason[m & ~np.isin(value, codes)] = Check.not_state
    return reason


def dedupe(pid: np.ndarray, ts: np.ndarray, ok: np.ndarray, watermark: np.ndarray,
           existing: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rows to keep sorted by (pid, ts), duplicate rows) among the `ok` rows: the first submitted copy of a
    (pid, ts) in the group wins; a reading at or below its point's watermark (the newest stored ts) is looked up
    with `existing(pids, tss) -> bool[]` (the store), since late data is rare and the check is exact."""
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((ts[idx], pid[idx]))]  # stable: first submitted copy of a (pid, ts) wins
    p_s, t_s = pid[order], ts[order]
    dup = np.zeros(len(order), bool)
    if len(order) > 1:
        dup[1:] = (p_s[1:] == p_s[:-1]) & (t_s[1:] == t_s[:-1])
    late = (t_s <= watermark[p_s]) & ~dup
    if late.any():
        li = np.flatnonzero(late)
        dup[li[existing(p_s[li], t_s[li])]] = True
    return order[~dup], order[dup]


def write_rows(pid, ts, value, quality, src_ts, keep: np.ndarray, watermark: np.ndarray
               ) -> tuple[PointBatch, PointBatch, dict]:
    """The rows to store (sorted by pid, ts), the ones that advance `latest` (the newest per point, if it beats
    the watermark), and the rollup partials per tier."""
    batch = PointBatch(pid[keep], ts[keep], value[keep], quality[keep], src_ts[keep])
    if len(batch):
        last = np.flatnonzero(np.r_[batch.pid[1:] != batch.pid[:-1], True])
        adv = batch.ts[last] > watermark[batch.pid[last]]
        latest = batch.take(last[adv])
    else:
        latest = PointBatch.empty()
    rollups = {tier: rollup(batch, w) for tier, w in TIERS.items()} if len(batch) else {}
    return batch, latest, rollups
