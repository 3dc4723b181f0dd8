"""Behavioural detection: each device learned from its own traffic, a pipeline processor that works on the
stored batch's columns (one numpy pass per batch, no per-reading Python), raising security events with evidence.

Rules (each can be muted or accepted per device, like the posture findings):

    behaviour.flood            readings per minute of a device above max(4 x its learned mean, mean + 8 sd)
    behaviour.frozen           a point that moved at least every other reading holds one exact value for
                               max(60, 20 x its longest run while learning)
    behaviour.implausible_jump a reading that moved more than half the point's engineering range, and more than
                               twice the largest step it ever made, within two periods (a sensor cannot; a forged
                               value can)
    behaviour.far_timestamp    a reading more than `max_age` behind the point's own previous one (captured traffic
                               replayed into a live point)

Nothing fires while a device is learning (`learning_readings` readings of each point, and `learning_minutes` of
rate); an event of the same device and rule is raised at most once per `dedupe` window, and carries the readings
that triggered it. Events are stored (`security_events`) and published on the event bus (SecurityEventRaised),
where a quarantine policy can act on them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)
US = 1_000_000
MINUTE = 60 * US
RULES = ("behaviour.flood", "behaviour.frozen", "behaviour.implausible_jump", "behaviour.far_timestamp")


class BehaviourSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    enabled: bool = True
    learning_readings: int = Field(300, ge=10, le=10_000_000, description="readings of a point before its rules fire")
    learning_minutes: int = Field(60, ge=5, le=100_000, description="minutes of a device's rate learned before floods are judged")
    flood_factor: float = Field(4.0, gt=1, le=1000)
    frozen_min: int = Field(60, ge=5, le=10_000_000, description="equal readings in a row before a moving point counts as frozen")
    max_age_s: float = Field(7 * 86400, gt=0, description="a reading this far behind its point's previous one is a replay suspect")
    dedupe_s: float = Field(3600, ge=0, le=30 * 86400, description="one event per device and rule per this window")


@dataclass
class SecurityEvent:
    device: str
    rule: str
    at: int
    message: str
    evidence: dict = field(default_factory=dict)


class BehaviourProcessor:
    name = "behaviour"

    def __init__(self, registry, cfg, settings: BehaviourSettings, *, clock, sink, publish=None, muted=None) -> None:
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.sink = sink  # list[SecurityEvent] -> None (the store)
        self.publish = publish or (lambda ev: None)
        self.muted = muted or (lambda: set())
        self._lock = threading.Lock()
        self.events = 0
        self.errors = 0
        self._last_raised: dict[tuple[str, str], int] = {}
        self._grow(0)
        self.reload(cfg)

    # -- state per point (arrays indexed by pid) and per device ---------------------------------------------------
    def _grow(self, n: int) -> None:
        old = len(getattr(self, "_n", []))
        if n <= old and old:
            return
        k = max(n, 2 * old, 64) - old

        def ext(name, fill, dtype):
            cur = getattr(self, name, np.zeros(0, dtype))
            setattr(self, name, np.concatenate([cur, np.full(k, fill, dtype)]))

        ext("_n", 0, np.int64)            # readings seen
        ext("_last_v", np.nan, np.float64)
        ext("_last_t", np.iinfo(np.int64).min, np.int64)
        ext("_run", 0, np.int64)          # equal readings in a row now
        ext("_max_run", 0, np.int64)      # longest such run while learning
        ext("_changes", 0, np.int64)      # value changes seen
        ext("_span", np.nan, np.float64)  # engineering range width
        ext("_period", 0, np.int64)
        ext("_dev", -1, np.int64)         # device index
        ext("_max_step", 0.0, np.float64)  # the largest step seen without an event (a valve's full stroke is legal)
        ext("_judged", False, np.bool_)   # a continuous quantity (float): states, counters and flags move in steps

    def reload(self, cfg) -> None:
        from plantguard.domain.index import PlantIndex
        from plantguard.domain.model import us_of

        with self._lock:
            idx = PlantIndex(cfg)
            self._devices: list[str] = []
            dev_of: dict[str, int] = {}
            n = max(self.registry.tags, default=-1) + 1
            self._grow(n)
            for ref in idx.points():
                pid = self.registry.pid(ref.tag)
                if pid is None:
                    continue
                dpath = ref.tag.rsplit("/", 1)[0]
                if dpath not in dev_of:
                    dev_of[dpath] = len(self._devices)
                    self._devices.append(dpath)
                self._dev[pid] = dev_of[dpath]
                r = ref.point.range
                self._span[pid] = (r.high - r.low) if r is not None else np.nan
                self._period[pid] = us_of(ref.point.period) if ref.point.period is not None else 0
                self._judged[pid] = getattr(ref.point, "data_type", "float") == "float"
            nd = len(self._devices)
            self._rate_mean = np.zeros(nd)
            self._rate_var = np.zeros(nd)
            self._rate_minutes = np.zeros(nd, np.int64)
            self._cur_count = np.zeros(nd, np.int64)
            self._cur_minute = -1

    # -- the processor ---------------------------------------------------------------------------------------------
    def on_batch(self, batch, now: int) -> None:
        if not self.settings.enabled or not len(batch):
            return
        try:
            with self._lock:
                self._run_batch(batch, now)
        except Exception:  # noqa: BLE001 - detection must never stop ingest
            self.errors += 1
            log.exception("behavioural detection failed on a batch")

    def _run_batch(self, b, now: int) -> None:
        s = self.settings
        pid = b.pid.astype(np.int64)
        if pid.max() >= len(self._n):
            self._grow(int(pid.max()) + 1)
        dev = self._dev[pid]
        known = dev >= 0
        out: list[SecurityEvent] = []
        # rate: readings per device per arrival minute
        minute = now // MINUTE
        if minute != self._cur_minute:
            self._close_minute(out, now)
            self._cur_minute = minute
        if known.any():
            self._cur_count += np.bincount(dev[known], minlength=len(self._cur_count))[:len(self._cur_count)]
        # per point, in (pid, ts) order: previous value and time, from the state for the first of each group
        first = np.empty(len(pid), bool)
        first[0] = True
        np.not_equal(pid[1:], pid[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        upid = pid[starts]
        # the previous reading of each: the one before it in the batch, or the point's last one for a group's first
        prev_v = np.empty(len(pid))
        prev_v[1:] = b.value[:-1]
        prev_v[starts] = self._last_v[upid]
        prev_t = np.empty(len(pid), np.int64)
        prev_t[1:] = b.ts[:-1]
        prev_t[starts] = self._last_t[upid]
        seen = self._n[pid] + _rank_in_group(first)
        learned = seen >= s.learning_readings
        same = b.value == prev_v
        # implausible jumps
        span = self._span[pid]
        period = self._period[pid]
        dt = b.ts - prev_t
        step = np.abs(b.value - prev_v)
        judged = self._judged[pid] & known
        jump = learned & judged & np.isfinite(span) & (span > 0) & np.isfinite(prev_v) & \
            (step > np.maximum(0.5 * span, 2 * self._max_step[pid])) & (dt > 0) & ((period == 0) | (dt <= 2 * np.maximum(period, 1)))
        for i in np.flatnonzero(jump)[:5]:
            out.append(self._event(int(dev[i]), "behaviour.implausible_jump", now,
                                   f"{self.registry.tag(int(pid[i]))} moved {abs(b.value[i] - prev_v[i]):g} in {dt[i] / US:g} s "
                                   f"(its range spans {span[i]:g})",
                                   {"point": self.registry.tag(int(pid[i])), "previous": float(prev_v[i]), "value": float(b.value[i]),
                                    "ts": int(b.ts[i]), "previous_ts": int(prev_t[i])}))
        # far timestamps (replays)
        # judged against the point's own previous reading, so importing a historian's archive into a new point is not
        # a replay; a live point that suddenly receives readings far behind its own is
        old = known & (prev_t > 0) & (prev_t - b.ts > int(s.max_age_s * US))
        for i in np.flatnonzero(old)[:1]:
            out.append(self._event(int(dev[i]), "behaviour.far_timestamp", now,
                                   f"{int(old.sum())} reading(s) more than {s.max_age_s / 86400:g} days behind the point's previous one",
                                   {"point": self.registry.tag(int(pid[i])), "ts": int(b.ts[i]), "count": int(old.sum())}))
        # frozen values: run lengths carried across batches
        carried = np.zeros(len(pid), np.int64)
        carried[starts] = self._run[upid]
        runs = _runs(same, first, carried)
        # a point that moves: it changed value at least every other reading so far (a setpoint that is changed once in a
        # while, a level that rests, a quantised signal are not judged)
        moving = self._changes[pid] >= 0.5 * np.maximum(self._n[pid], 1)
        limit = np.maximum(s.frozen_min, 20 * self._max_run[pid])
        frozen = learned & judged & moving & (runs >= limit) & (runs - 1 < limit)  # the reading that crosses the limit
        for i in np.flatnonzero(frozen)[:5]:
            out.append(self._event(int(dev[i]), "behaviour.frozen", now,
                                   f"{self.registry.tag(int(pid[i]))} has held {b.value[i]:g} for {int(runs[i])} readings "
                                   f"(its longest run while learning: {int(self._max_run[pid[i]])})",
                                   {"point": self.registry.tag(int(pid[i])), "value": float(b.value[i]), "run": int(runs[i]),
                                    "since_ts": int(b.ts[i])}))
        # state update, per point of the batch (groups are contiguous: the batch is sorted by pid)
        last = np.empty(len(starts), np.int64)
        last[:-1] = starts[1:] - 1
        last[-1] = len(pid) - 1
        self._last_v[upid] = b.value[last]
        self._last_t[upid] = b.ts[last]
        self._run[upid] = runs[last]
        changed = (~same & np.isfinite(prev_v)).astype(np.int64)
        ok_step = np.where(np.isfinite(step) & ~jump, step, 0.0)
        self._max_step[upid] = np.maximum(self._max_step[upid], np.maximum.reduceat(ok_step, starts))
        learning = self._n[upid] < s.learning_readings
        if learning.any():
            runmax = np.maximum.reduceat(np.where(learned, 0, runs), starts)
            self._max_run[upid] = np.where(learning, np.maximum(self._max_run[upid], runmax), self._max_run[upid])
        self._n[upid] += np.diff(starts, append=len(pid))
        self._changes[upid] += np.add.reduceat(changed, starts)
        self._emit(out)

    def _close_minute(self, out: list, now: int) -> None:
        s = self.settings
        if self._cur_minute < 0:
            return
        c = self._cur_count.astype(float)
        learned = self._rate_minutes >= s.learning_minutes
        sd = np.sqrt(self._rate_var)
        flood = learned & (c > np.maximum(s.flood_factor * self._rate_mean, self._rate_mean + 8 * sd)) & (c > 10)
        for d in np.flatnonzero(flood)[:10]:
            out.append(self._event(int(d), "behaviour.flood", now,
                                   f"{int(c[d])} readings in a minute, its usual {self._rate_mean[d]:.0f} (sd {sd[d]:.0f})",
                                   {"readings": int(c[d]), "mean": float(self._rate_mean[d]), "sd": float(sd[d])}))
        # learn from the minutes that were not floods (a flood must not become the new normal)
        upd = ~flood
        alpha = np.where(self._rate_minutes < s.learning_minutes, 1.0 / np.maximum(1, self._rate_minutes + 1), 0.02)
        delta = c - self._rate_mean
        self._rate_mean = np.where(upd, self._rate_mean + alpha * delta, self._rate_mean)
        self._rate_var = np.where(upd, (1 - alpha) * (self._rate_var + alpha * delta * delta), self._rate_var)
        self._rate_minutes += upd & ((c > 0) | (self._rate_minutes > 0))
        self._cur_count[:] = 0

    def _event(self, d: int, rule: str, now: int, message: str, evidence: dict) -> SecurityEvent | None:
        return SecurityEvent(self._devices[d], rule, now, message, evidence)

    def _emit(self, events: list) -> None:
        if not events:
            return
        muted = self.muted()
        window = int(self.settings.dedupe_s * US)
        keep = []
        for e in events:
            key = (e.device, e.rule)
            if (e.rule, e.device) in muted or e.at - self._last_raised.get(key, -(2**62)) < window:
                continue
            self._last_raised[key] = e.at
            keep.append(e)
        if not keep:
            return
        self.events += len(keep)
        try:
            self.sink(keep)
        except Exception:  # noqa: BLE001 - the events are logged; ingest goes on
            self.errors += 1
            log.exception("storing %d security event(s) failed", len(keep))
        for e in keep:
            log.warning("security event %s on %s: %s", e.rule, e.device, e.message)
            self.publish(e)

    def on_tick(self, now: int) -> None:
        with self._lock:
            if self.settings.enabled and now // MINUTE != self._cur_minute and self._cur_minute >= 0:
                out: list = []
                self._close_minute(out, now)
                self._cur_minute = now // MINUTE
                self._emit(out)

    def close(self) -> None:
        pass


def _rank_in_group(first: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each run of a group (groups start where `first` is True)."""
    idx = np.arange(len(first))
    start = np.maximum.accumulate(np.where(first, idx, 0))
    return idx - start + 1


def _runs(same: np.ndarray, first: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """The length of the run of equal values ending at each reading (a reading alone is a run of 1), continuing the
    carried run of its point for the readings that repeat the previous batch's last value."""
    n = len(same)
    idx = np.arange(n)
    breaks = ~same | first
    start = np.maximum.accumulate(np.where(breaks, idx, 0))
    length = idx - start + 1
    # a group whose first reading repeats the carried value continues that run
    cont = first & same
    carry = np.where(cont, carried, 0)
    carry_at_start = carry[start]
    return length + np.where(same[start] & first[start], carry_at_start, 0)
