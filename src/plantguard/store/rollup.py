"""Rollup partials computed in numpy per written batch. Both backends append them; queries combine partials
of the same (pid, bucket) with min/max/sum/sum/arg_max, so correctness never depends on compaction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plantguard.domain.readings import PointBatch

TIERS = {"1m": 60_000_000, "1h": 3_600_000_000}
ROLLUP_COLUMNS = ("pid", "bucket", "vmin", "vmax", "vsum", "n", "last_ts", "vlast")
AGGREGATES = ("avg", "min", "max", "sum", "count", "last")


@dataclass
class Rollup:
    pid: np.ndarray
    bucket: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    vsum: np.ndarray
    n: np.ndarray
    last_ts: np.ndarray
    vlast: np.ndarray

    def __len__(self) -> int:
        return len(self.pid)

    def columns(self) -> dict[str, np.ndarray]:
        return {c: getattr(self, c) for c in ROLLUP_COLUMNS}


def rollup(batch: PointBatch, width_us: int) -> Rollup:
    """Partials per (pid, bucket). The batch must be sorted by (pid, ts): then buckets are contiguous runs.
    Bad-quality readings are kept out of rollups (they are still stored raw)."""
    keep = batch.quality != 2
    pid, ts, v = (batch.pid, batch.ts, batch.value) if keep.all() else (batch.pid[keep], batch.ts[keep], batch.value[keep])
    if len(pid) == 0:
        z = np.empty(0)
        return Rollup(np.empty(0, np.int32), np.empty(0, np.int64), z, z, z, np.empty(0, np.int64), np.empty(0, np.int64), z)
    bucket = ts - np.mod(ts, width_us)
    change = np.empty(len(pid), bool)
    change[0] = True
    np.not_equal(pid[1:], pid[:-1], out=change[1:])
    change[1:] |= bucket[1:] != bucket[:-1]
    starts = np.flatnonzero(change)
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:] - 1
    ends[-1] = len(pid) - 1
    return Rollup(
        pid=pid[starts],
        bucket=bucket[starts],
        vmin=np.minimum.reduceat(v, starts),
        vmax=np.maximum.reduceat(v, starts),
        vsum=np.add.reduceat(v, starts),
        n=(ends - starts + 1).astype(np.int64),
        last_ts=ts[ends],
        vlast=v[ends],
    )


def choose_tier(width_us: int, start_us: int, now_us: int, retention_us: dict[str, int]) -> tuple[str, int]:
    """(tier, effective width): the coarsest tier that resolves the bucket width and still holds data back to
    start. A width served from a tier is a whole multiple of the tier's width: it is used as is when it already
    is one, else rounded to the nearest multiple once it spans at least 10 tier buckets (edge error <= 5%)."""
    for tier in ("1h", "1m"):
        tw = TIERS[tier]
        if start_us < now_us - retention_us.get(tier, 1 << 62):
            continue
        if width_us >= tw and width_us % tw == 0:
            return tier, width_us
        if width_us >= 10 * tw:
            return tier, int(round(width_us / tw)) * tw
    return "raw", width_us
