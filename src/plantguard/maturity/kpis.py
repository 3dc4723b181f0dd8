"""KPI samples over a scope of devices and a period: what a rollout gate and an improvement action's verification
compare. One sample per scope member and bucket, so the tests see the spread between devices and over time.

    alarm_rate     alarms raised per device and bucket (lower is better)
    completeness   received / expected readings per point and whole bucket (higher is better)
    value:<id>     the mean of the point <id> of each device per bucket (its better direction is set by the check)
    oee, availability, defect_rate, downtime
                   per line of the scope and hour, from the line's OEE (downtime: unplanned stop seconds)
    mttr           hours from start to resolution of each incident under the scope (continuity)

A KPI that cannot be measured returns an error text instead of samples (the check is inconclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from plantguard.domain.alarms import HISTORY_EVENTS

US = 1_000_000
HOUR = 3600 * US
BETTER = {"alarm_rate": "lower", "completeness": "higher", "oee": "higher", "availability": "higher",
          "defect_rate": "lower", "downtime": "lower", "mttr": "lower"}
MAX_BUCKETS = 200_000


@dataclass
class KpiSources:
    store: Any               # AlarmStore, RollupStore, ReadingsStore
    index: Callable[[], Any]
    points: Any
    performance: Any = None
    continuity: Any = None


def samples(src: KpiSources, kpi: str, devices: list[str], start: int, end: int, bucket_us: int) -> tuple[np.ndarray | None, str | None]:
    if end <= start:  # nothing measured yet: no data (inconclusive), not an error
        return np.zeros(0), None
    if not devices:
        return None, "the scope has no device"
    if (end - start) // max(bucket_us, 1) > MAX_BUCKETS:
        return None, f"more than {MAX_BUCKETS} buckets: choose a wider bucket"
    try:
        if kpi == "alarm_rate":
            idx = src.index()
            shadow = [d for d in devices if idx.device(d) is not None and idx.device(d).device.mode == "shadow"]
            if shadow:  # a shadow device raises no alarms: its rate would read as a perfect zero
                return None, f"{shadow[0]} runs in shadow mode: its alarms are not raised, so their rate cannot be judged"
            return _alarm_rate(src, devices, start, end, bucket_us), None
        if kpi == "completeness":
            return _completeness(src, devices, start, end, bucket_us)
        if kpi.startswith("value:"):
            return _values(src, kpi[6:], devices, start, end, bucket_us)
        if kpi in ("oee", "availability", "defect_rate", "downtime"):
            return _oee(src, kpi, devices, start, end)
        if kpi == "mttr":
            return _mttr(src, devices, start, end)
    except Exception as e:  # noqa: BLE001 - an errored measurement makes the check inconclusive, never passed
        return None, f"{type(e).__name__}: {e}"
    return None, f"unknown KPI {kpi!r}"


def _alarm_rate(src: KpiSources, devices: list[str], start: int, end: int, bucket_us: int) -> np.ndarray:
    h = src.store.alarm_history(start, end)
    nb = max(1, -(-(end - start) // bucket_us))
    dev_idx = {d: i for i, d in enumerate(devices)}
    of_name = np.array([dev_idx.get(n.rsplit(":", 1)[0].rsplit("/", 1)[0], -1) for n in h.names], np.int64)
    grid = np.zeros((len(devices), nb), np.float64)
    if len(h):
        raised = (h.event == HISTORY_EVENTS.index("raised")) & ~h.while_shelved
        d = of_name[h.alarm[raised]] if len(h.names) else np.zeros(0, np.int64)
        b = ((h.at[raised] - start) // bucket_us).astype(np.int64)
        ok = d >= 0
        np.add.at(grid, (d[ok], b[ok]), 1.0)
    return grid.ravel()


def _device_points(src: KpiSources, devices: list[str]) -> list:
    idx = src.index()
    out = []
    for d in devices:
        ref = idx.device(d)
        if ref is not None:
            out += [idx.point(f"{d}/{p.id}") for p in ref.device.points]
    return [r for r in out if r is not None]


def _completeness(src: KpiSources, devices: list[str], start: int, end: int, bucket_us: int):
    from plantguard.domain.fields import us_of

    refs = _device_points(src, devices)
    pid_of = {}
    for r in refs:
        pid = src.points.pid(r.tag)
        if pid is not None:
            pid_of[int(pid)] = us_of(r.point.period)
    lo = -(-start // bucket_us) * bucket_us
    hi = end - end % bucket_us
    if not pid_of:
        return None, "the scope's points are not registered"
    if hi <= lo:
        return None, "the period holds no whole bucket"
    p, b, n = src.store.reading_counts(lo, hi, bucket_us, pids=sorted(pid_of))
    order = sorted(pid_of)
    row = {pid: i for i, pid in enumerate(order)}
    nb = (hi - lo) // bucket_us
    grid = np.zeros((len(order), nb), np.float64)
    keep = (b >= lo) & (b < hi)
    grid[[row[int(x)] for x in p[keep]], (b[keep] - lo) // bucket_us] = n[keep]
    expected = np.array([bucket_us / max(pid_of[pid], 1) for pid in order])[:, None]
    return np.minimum(grid / expected, 1.0).ravel(), None


def _values(src: KpiSources, point_id: str, devices: list[str], start: int, end: int, bucket_us: int):
    idx = src.index()
    out = []
    tier = "1h" if bucket_us % HOUR == 0 else "1m" if bucket_us % (60 * US) == 0 else "raw"
    found = False
    for d in devices:
        ref = idx.point(f"{d}/{point_id}")
        if ref is None:
            continue
        pid = src.points.pid(ref.tag)
        if pid is None:
            continue
        found = True
        s = src.store.downsample(pid, start, end, bucket_us, "avg", tier)
        out.append(np.asarray(s.value, np.float64))
    if not found:
        return None, f"no device of the scope has a point {point_id!r}"
    return (np.concatenate(out) if out else np.zeros(0)), None


def _lines(devices: list[str]) -> list[str]:
    return sorted({d.rsplit("/", 2)[0] for d in devices})


def _oee(src: KpiSources, kpi: str, devices: list[str], start: int, end: int):
    if src.performance is None:
        return None, "no performance service"
    out = []
    errors = []
    for ln in _lines(devices):
        try:
            r = src.performance.oee(ln, start, end, "hour")
        except Exception as e:  # noqa: BLE001 - a line without OEE configured: said below
            errors.append(f"{ln}: {e}")
            continue
        for p in r["periods"]:
            if p.get("status") != "ok":
                continue
            if kpi == "downtime":
                out.append(float(p["losses"]["breakdowns_s"]))
            elif kpi == "defect_rate":
                q = p.get("quality")
                if q is not None:
                    out.append(1.0 - float(q))
            else:
                v = p.get(kpi)
                if v is not None:
                    out.append(float(v))
    if not out and errors:
        return None, "; ".join(errors[:3])
    return np.array(out, np.float64), None


def _mttr(src: KpiSources, devices: list[str], start: int, end: int):
    if src.continuity is None:
        return None, "the continuity capability is off"
    devs = set(devices)

    def under(path: str) -> bool:
        return any(path == d or path.startswith(d + "/") for d in devs)
    vals = [(i.resolved_at - i.started_at) / HOUR for i in src.continuity.incidents(limit=100_000)
            if i.resolved_at is not None and start <= i.resolved_at < end and i.merged_into is None
            and (under(i.root) or any(under(k.rsplit(":", 1)[0]) for k in i.signals))]
    return np.array(vals, np.float64), None
