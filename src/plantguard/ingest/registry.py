"""Point registry: tag <-> pid, plus per-pid arrays the validator indexes in one vectorised step.

pids are stable: they are stored in the `points` table and never reused. Updates replace the arrays as a
whole (copy on write) so the writer thread always sees a consistent snapshot without taking a lock.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass

import numpy as np

from plantguard.domain.fields import DataType, us_of
from plantguard.domain.model import PlantConfig
from plantguard.store.base import PointRow, Store


log = logging.getLogger(__name__)


def _MINUS_ONE(n: int):
    return itertools.repeat(-1, n)


DTYPE_CODE = {DataType.float.value: 0, DataType.int.value: 1, DataType.bool.value: 2, DataType.state.value: 3}


def point_meta(tag, site, area, line, asset, device, point) -> dict:
    return {
        "unit": point.unit,
        "name": point.name,
        "data_type": point.data_type.value,
        "low": point.range.low if point.range else None,
        "high": point.range.high if point.range else None,
        "period_us": us_of(point.period),
        "criticality": point.criticality.value,
        "states": {str(k): v for k, v in (point.states or {}).items()} or None,
        "device": "/".join(tag.split("/")[:5]),
        "asset": "/".join(tag.split("/")[:4]),
        "auto": False,
        "active": True,
        "shadow": device.mode == "shadow",
    }


AUTO_META = {"unit": "", "name": None, "data_type": "float", "low": None, "high": None, "period_us": 0, "criticality": "low",
             "states": None, "auto": True, "active": True}


@dataclass(frozen=True)
class Snapshot:
    low: np.ndarray  # float64, NaN = no limit
    high: np.ndarray
    dtype: np.ndarray  # int8 DTYPE_CODE
    period_us: np.ndarray  # int64
    active: np.ndarray  # bool
    states: dict  # pid -> np.ndarray of allowed codes (state points only)


class PointRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.index: dict[str, int] = {}
        self.tags: dict[int, str] = {}
        self.meta: dict[int, dict] = {}
        self._by_prefix: dict[str, dict[str, int]] = {}  # device path -> {point id: pid}, only for known devices
        self.snap = Snapshot(np.empty(0), np.empty(0), np.empty(0, np.int8), np.empty(0, np.int64), np.empty(0, bool), {})

    # -- building ---------------------------------------------------------------------------------------
    def load(self, rows: list[PointRow]) -> None:
        with self._lock:
            for r in rows:
                self.index[r.tag] = r.pid
                self.tags[r.pid] = r.tag
                self.meta[r.pid] = r.meta
            self._by_prefix = {}
            self._rebuild()

    def sync_config(self, cfg: PlantConfig, store: Store) -> list[PointRow]:
        """Gives every configured point a pid (new ones allocated by the store, so processes sharing it agree),
        stores changed metadata, and marks stored non-auto points that left the configuration inactive (their
        history stays queryable)."""
        changed: list[PointRow] = []
        entries = [(tag, point_meta(tag, *parts)) for tag, *parts in cfg.iter_points()]
        ids = store.allocate_points([t for t, _ in entries if t not in self.index])
        with self._lock:
            seen = set()
            for tag, meta in entries:
                pid = self.index.get(tag)
                if pid is None:
                    pid = ids[tag]
                seen.add(pid)
                if self.meta.get(pid) != meta:
                    changed.append(PointRow(pid, tag, meta))
            for pid, meta in self.meta.items():
                if pid not in seen and not meta.get("auto") and meta.get("active"):
                    changed.append(PointRow(pid, self.tags[pid], {**meta, "active": False}))
        store.upsert_points(changed)
        self.load(changed)
        return changed

    def register_auto(self, tags: list[str], store: Store) -> dict[str, int]:
        new = [t for t in dict.fromkeys(tags) if t not in self.index]
        ids = store.allocate_points(new)
        rows = [PointRow(ids[t], t, dict(AUTO_META)) for t in new]
        store.upsert_points(rows)
        self.load(rows)
        return {r.tag: r.pid for r in rows}

    def _rebuild(self) -> None:
        n = max(self.tags, default=-1) + 1
        low = np.full(n, np.nan)
        high = np.full(n, np.nan)
        dtype = np.zeros(n, np.int8)
        period = np.zeros(n, np.int64)
        active = np.zeros(n, bool)
        states = {}
        for pid, m in self.meta.items():
            try:
                low[pid] = np.nan if m.get("low") is None else m["low"]
                high[pid] = np.nan if m.get("high") is None else m["high"]
                dtype[pid] = DTYPE_CODE.get(m.get("data_type", "float"), 0)
                period[pid] = m.get("period_us") or 0
                active[pid] = bool(m.get("active", True))
                if m.get("states"):
                    states[pid] = np.array(sorted(int(k) for k in m["states"]), dtype=np.float64)
            except (TypeError, ValueError, OverflowError) as e:
                # Stored metadata that a former version let through must not stop start-up: the point keeps no
                # limits and no period until the plant model sets them again (sync_config does at start).
                log.warning("point %s: stored metadata cannot be used (%s); its limits and period are ignored", self.tags.get(pid), e)
                low[pid] = high[pid] = np.nan
                period[pid] = 0
        self.snap = Snapshot(low, high, dtype, period, active, states)

    # -- lookups ----------------------------------------------------------------------------------------
    def resolve(self, names: list[str], prefix: str | None = None) -> np.ndarray:
        """pids of the tags (-1 = unknown); with a prefix, names are relative to that device path."""
        if prefix:
            table = self._by_prefix.get(prefix)
            if table is None:
                table = self._prefix_table(prefix)
            if table:
                get = table.get
                out = np.fromiter(map(get, names, _MINUS_ONE(len(names))), dtype=np.int32, count=len(names))
                if not (out < 0).any():
                    return out
            # unknown names (or an unknown device): fall back to full tags, which also finds odd auto tags
            get = self.index.get
            return np.fromiter((get(f"{prefix}/{n}", -1) for n in names), dtype=np.int32, count=len(names))
        get = self.index.get
        return np.fromiter(map(get, names, _MINUS_ONE(len(names))), dtype=np.int32, count=len(names))

    def _prefix_table(self, prefix: str) -> dict[str, int]:
        # Cached only for device paths that hold points, so arbitrary topics cannot grow the cache.
        p = prefix + "/"
        table = {t[len(p):]: pid for t, pid in self.index.items() if t.startswith(p)}
        if table:
            by_prefix = dict(self._by_prefix)  # copy on write: readers on other threads see a whole dict
            by_prefix[prefix] = table
            self._by_prefix = by_prefix
        return table

    def __len__(self) -> int:
        return len(self.tags)

    def rows(self, prefix: str | None = None, *, auto_only: bool = False) -> list[tuple[int, str, dict]]:
        """(pid, tag, meta) of the registered points, safe to call from any thread."""
        with self._lock:
            items = [(pid, self.tags[pid], dict(m)) for pid, m in self.meta.items()
                     if (not prefix or self.tags[pid].startswith(prefix)) and (not auto_only or m.get("auto"))]
        return sorted(items)

    def pid(self, tag: str) -> int | None:
        return self.index.get(tag)

    def tag(self, pid: int) -> str:
        return self.tags[pid]
