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
    behaviour.timing           a point that reported at a regular interval now reports `timing_factor` times faster
                               or slower, sustained (a smoothed interval, so one outage gap is not a change); the
                               new interval becomes the baseline after the event, so a planned change costs one event
    behaviour.new_point        a learned device sends readings for points (topics, metrics) the model never had
    behaviour.out_of_range     a learned device sends values outside its points' engineering range (they are
                               refused by ingest; a sensor cannot produce them, a forged payload can)
    access.scope_violation     a device's own token or gateway tried to send readings for another device's points
    access.auth_failures       a client address was locked out after repeated failed logins or bad tokens
                               (the event's "device" is `address:<ip>`)
    access.broker_auth_failures, access.acl_denied   from the broker's log (plantguard.security.broker_log)

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
LATE_US = 2 * 60 * 1_000_000  # the least age on arrival (or two periods, if longer) at which a reading is backlog
RULES = ("behaviour.flood", "behaviour.frozen", "behaviour.implausible_jump", "behaviour.far_timestamp", "behaviour.timing",
         "behaviour.new_point", "behaviour.out_of_range", "access.scope_violation", "access.auth_failures",
         "access.broker_auth_failures", "access.acl_denied", "access.write_outside_window", "behaviour.sequence_reset")
LOG_CLIP = 3.0  # a single interval counts at most e^3 = 20 times the usual one (an outage's gap is not a new rhythm)
CLIP_LO, CLIP_HI = float(np.exp(-LOG_CLIP)), float(np.exp(LOG_CLIP))
TIMING_ALPHA = 0.05


class BehaviourSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    enabled: bool = True
    learning_readings: int = Field(300, ge=10, le=10_000_000, description="readings of a point before its rules fire")
    learning_minutes: int = Field(60, ge=5, le=100_000, description="minutes of a device's rate learned before floods are judged")
    flood_factor: float = Field(4.0, gt=1, le=1000)
    frozen_min: int = Field(60, ge=5, le=10_000_000, description="equal readings in a row before a moving point counts as frozen")
    max_age_s: float = Field(7 * 86400, gt=0, description="a reading this far behind its point's previous one is a replay suspect")
    dedupe_s: float = Field(3600, ge=0, le=30 * 86400, description="one event per device and rule per this window")
    timing_factor: float = Field(3.0, ge=1.5, le=1000, description="a point's smoothed interval this many times shorter or longer than learned is a timing change")


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
        ext("_ldt_n", 0, np.int64)        # intervals seen while learning the rhythm
        ext("_ldt_mean", 0.0, np.float64)  # their mean log interval (the learned rhythm) ...
        ext("_ldt_m2", 0.0, np.float64)   # ... and its sum of squared deviations (is the point regular?)
        ext("_ldt_ewma", np.nan, np.float64)  # the smoothed log interval now

    def reload(self, cfg) -> None:
        from plantguard.domain.index import PlantIndex
        from plantguard.domain.fields import us_of

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
        if self.settings.enabled and len(batch):
            self._guarded(self._run_batch, batch, now, "a batch")

    def _guarded(self, run, what, now: int, label: str) -> None:
        try:
            with self._lock:
                run(what, now)
        except Exception:  # noqa: BLE001 - detection must never stop ingest
            self.errors += 1
            log.exception("behavioural detection failed on %s", label)

    def _run_batch(self, b, now: int) -> None:
        # Long on purpose: one pass over the batch on the writer's hot path (bench/pipeline_ingest.py --behaviour-ab).
        # Work per group (a point's readings in the batch) where it can be, and per reading only for the readings a
        # cheap test leaves as candidates: most readings of most batches cannot fire any rule.
        s = self.settings
        pid = b.pid.astype(np.int64)
        if pid.max() >= len(self._n):
            self._grow(int(pid.max()) + 1)
        first = np.empty(len(pid), bool)
        first[0] = True
        np.not_equal(pid[1:], pid[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        upid = pid[starts]
        lens = np.diff(starts, append=len(pid))
        gdev = self._dev[upid]
        gknown = gdev >= 0
        out: list[SecurityEvent] = []
        # rate: readings per device per arrival minute
        minute = now // MINUTE
        if minute != self._cur_minute:
            self._close_minute(out, now)
            self._cur_minute = minute
        # Late readings (a gateway's or the store outage's backlog replayed) are not arrivals of this minute: a
        # backlog forwarded at once is not a flood. A reading counts towards the rate when it is at most
        # max(LATE_US, two of its point's periods) old: a slow point's reading is late later.
        fresh = b.ts >= now - np.maximum(LATE_US, 2 * self._period[pid])
        if gknown.any() and fresh.all():
            self._cur_count += np.bincount(gdev[gknown], weights=lens[gknown], minlength=len(self._cur_count)
                                           )[:len(self._cur_count)].astype(np.int64)
        elif gknown.any() and fresh.any():
            dev = np.repeat(gdev, lens)[fresh]
            dev = dev[dev >= 0]
            self._cur_count += np.bincount(dev, minlength=len(self._cur_count))[:len(self._cur_count)].astype(np.int64)
        known = np.bool_(True) if gknown.all() else np.repeat(gknown, lens)
        # the previous reading of each: the one before it in the batch, or the point's last one for a group's first
        prev_v = np.empty(len(pid))
        prev_v[1:] = b.value[:-1]
        prev_v[starts] = self._last_v[upid]
        prev_t = np.empty(len(pid), np.int64)
        prev_t[1:] = b.ts[:-1]
        prev_t[starts] = self._last_t[upid]
        # learned: per group when the whole group is on one side of the learning period (the usual case)
        n0 = self._n[upid]
        if (n0 >= s.learning_readings).all():
            learned = np.bool_(True)
        elif (n0 + lens <= s.learning_readings).all():
            learned = np.bool_(False)
        else:
            learned = self._n[pid] + _rank_in_group(first) >= s.learning_readings
        same = b.value == prev_v
        dt = b.ts - prev_t
        step = np.abs(b.value - prev_v)
        # implausible jumps: candidates move more than half the range (a NaN range: never)
        jump = np.zeros(len(pid), bool)
        with np.errstate(invalid="ignore"):
            cand = np.flatnonzero(step > 0.5 * self._span[pid])
        if len(cand):
            cp = pid[cand]
            period = self._period[cp]
            ok = ((learned if learned.ndim == 0 else learned[cand]) & self._judged[cp] & (self._dev[cp] >= 0)
                  & (step[cand] > 2 * self._max_step[cp]) & (dt[cand] > 0)
                  & ((period == 0) | (dt[cand] <= 2 * np.maximum(period, 1))) & np.isfinite(prev_v[cand]))
            jump[cand[ok]] = True
            for i in cand[ok][:5]:
                span = self._span[pid[i]]
                out.append(self._event(int(self._dev[pid[i]]), "behaviour.implausible_jump", now,
                                       f"{self.registry.tag(int(pid[i]))} moved {abs(b.value[i] - prev_v[i]):g} in {dt[i] / US:g} s "
                                       f"(its range spans {span:g})",
                                       {"point": self.registry.tag(int(pid[i])), "previous": float(prev_v[i]), "value": float(b.value[i]),
                                        "ts": int(b.ts[i]), "previous_ts": int(prev_t[i])}))
        # far timestamps (replays)
        # judged against the point's own previous reading, so importing a historian's archive into a new point is not
        # a replay; a live point that suddenly receives readings far behind its own is
        # (a batch is sorted by point and time, so only a group's first reading can be behind its previous one)
        pt0 = prev_t[starts]
        old = gknown & (pt0 > 0) & (pt0 - b.ts[starts] > int(s.max_age_s * US))
        if old.any():
            i = int(starts[np.flatnonzero(old)[0]])
            out.append(self._event(int(self._dev[pid[i]]), "behaviour.far_timestamp", now,
                                   f"{int(old.sum())} point(s) received readings more than {s.max_age_s / 86400:g} days behind their previous one",
                                   {"point": self.registry.tag(int(pid[i])), "ts": int(b.ts[i]), "count": int(old.sum())}))
        # frozen values: run lengths carried across batches
        runs = _runs(same, first, starts, self._run[upid])
        cand = np.flatnonzero(runs >= s.frozen_min) if s.frozen_min > 1 else np.arange(len(pid))
        if len(cand):
            cp = pid[cand]
            # a point that moves: it changed value at least every other reading so far (a setpoint that is changed
            # once in a while, a level that rests, a quantised signal are not judged)
            moving = self._changes[cp] >= 0.5 * np.maximum(self._n[cp], 1)
            limit = np.maximum(s.frozen_min, 20 * self._max_run[cp])
            r = runs[cand]
            hit = ((learned if learned.ndim == 0 else learned[cand]) & self._judged[cp] & (self._dev[cp] >= 0) & moving
                   & (r >= limit) & (r - 1 < limit))  # the reading that crosses the limit
            for i in cand[hit][:5]:
                out.append(self._event(int(self._dev[pid[i]]), "behaviour.frozen", now,
                                       f"{self.registry.tag(int(pid[i]))} has held {b.value[i]:g} for {int(runs[i])} readings "
                                       f"(its longest run while learning: {int(self._max_run[pid[i]])})",
                                       {"point": self.registry.tag(int(pid[i])), "value": float(b.value[i]), "run": int(runs[i]),
                                        "since_ts": int(b.ts[i])}))
        # timing: the smoothed log interval of each point against the rhythm it had while learning
        out.extend(self._timing(dt, prev_t, starts, lens, upid, known, learned, now))
        # state update, per point of the batch (groups are contiguous: the batch is sorted by pid)
        last = starts + lens - 1
        self._last_v[upid] = b.value[last]
        self._last_t[upid] = b.ts[last]
        self._run[upid] = runs[last]
        changed = ~same & np.isfinite(prev_v)
        ok_step = np.where(np.isfinite(step) & ~jump, step, 0.0)
        self._max_step[upid] = np.maximum(self._max_step[upid], np.maximum.reduceat(ok_step, starts))
        learning = n0 < s.learning_readings
        if learning.any():
            runmax = np.maximum.reduceat(np.where(learned, 0, runs), starts)
            self._max_run[upid] = np.where(learning, np.maximum(self._max_run[upid], runmax), self._max_run[upid])
        self._n[upid] += lens
        self._changes[upid] += np.add.reduceat(changed, starts, dtype=np.int64)
        self._emit(out)

    def _timing(self, dt, prev_t, starts, lens, upid, known, learned, now) -> list:
        s = self.settings
        valid = known & (prev_t > np.iinfo(np.int64).min) & (dt > 0)
        if not valid.any():
            return []
        # learning: Welford over the log intervals of the readings still in the learning period
        lmask = valid & ~learned
        if lmask.any():
            ldt = np.log(np.maximum(dt, 1).astype(np.float64))
            ln = np.add.reduceat(lmask, starts, dtype=np.int64)
            lsum = np.add.reduceat(np.where(lmask, ldt, 0.0), starts)
            m = ln > 0
            bmean = np.where(m, lsum / np.maximum(ln, 1), 0.0)
            bm2 = np.add.reduceat(np.where(lmask, (ldt - np.repeat(bmean, lens)) ** 2, 0.0), starts)
            na, nb = self._ldt_n[upid].astype(np.float64), ln.astype(np.float64)
            tot = na + nb
            delta = bmean - self._ldt_mean[upid]
            new_mean = np.where(m, self._ldt_mean[upid] + delta * nb / np.maximum(tot, 1), self._ldt_mean[upid])
            new_m2 = np.where(m, self._ldt_m2[upid] + bm2 + delta ** 2 * na * nb / np.maximum(tot, 1), self._ldt_m2[upid])
            self._ldt_mean[upid], self._ldt_m2[upid] = new_mean, new_m2
            self._ldt_n[upid] += ln
        # judging: the batch's mean clipped log ratio moves the smoothed value by (1 - (1 - a)^n)
        jmask = valid & learned
        if not jmask.any():
            return []
        jn = np.add.reduceat(jmask, starts, dtype=np.int64)
        base = self._ldt_mean[upid]
        # each interval against the learned one, clipped to [1/20, 20] (one outage gap weighs at most 20 intervals);
        # the log of the batch's mean ratio, per point: a multiply per reading, a log per point
        ratio = np.clip(dt * np.repeat(np.exp(-base), lens), CLIP_LO, CLIP_HI)
        if jmask.ndim:
            ratio[~jmask] = 0.0
        jmean = np.log(np.maximum(np.add.reduceat(ratio, starts) / np.maximum(jn, 1), CLIP_LO))
        cur = np.where(np.isnan(self._ldt_ewma[upid]), 0.0, self._ldt_ewma[upid])
        w = 1.0 - (1.0 - TIMING_ALPHA) ** jn
        cur = np.where(jn > 0, cur + w * (jmean - cur), cur)
        self._ldt_ewma[upid] = cur
        # regular points only: a report-by-exception point has no rhythm to lose
        sd = np.sqrt(self._ldt_m2[upid] / np.maximum(self._ldt_n[upid] - 1, 1))
        regular = (self._ldt_n[upid] >= 20) & (sd < 0.5)
        hit = regular & (np.abs(cur) > np.log(s.timing_factor)) & (jn > 0)
        out = []
        for k in np.flatnonzero(hit)[:5]:
            p = int(upid[k])
            # the interval of this batch's readings (the smoothed value is still on its way there)
            was, now_s = float(np.exp(base[k])) / US, float(np.exp(base[k] + jmean[k])) / US
            out.append(self._event(int(self._dev[p]), "behaviour.timing", now,
                                   f"{self.registry.tag(p)} reports every {now_s:.3g} s, it used to every {was:.3g} s",
                                   {"point": self.registry.tag(p), "interval_s": now_s, "learned_interval_s": was}))
        if hit.any():  # the new rhythm is the baseline from now on: one event per change
            hp = upid[hit]
            self._ldt_mean[hp] = self._ldt_mean[hp] + jmean[hit]
            self._ldt_ewma[hp] = 0.0
        return out

    # -- readings that ingest refused ----------------------------------------------------------------------------
    def on_rejects(self, rejects, now: int) -> None:
        """Unknown points and out-of-range values sent by a device that has finished learning (a device being
        commissioned sends both while its model is completed)."""
        if self.settings.enabled and rejects is not None and len(rejects.code):
            self._guarded(self._run_rejects, rejects, now, "refused readings")

    def _run_rejects(self, r, now: int) -> None:
        out: list[SecurityEvent] = []
        dev_of = {d: i for i, d in enumerate(self._devices)}
        learned = self._rate_minutes >= self.settings.learning_minutes
        for code, rule, what in (("unknown_point", "behaviour.new_point", "points the model does not have"),
                                 ("out_of_range", "behaviour.out_of_range", "values outside the engineering range")):
            idx = np.flatnonzero(r.code == code)[:10_000]  # bounded work per batch
            if not len(idx):
                continue
            by_dev: dict[int, list[int]] = {}
            for i in idx.tolist():
                d = dev_of.get(str(r.point[i]).rsplit("/", 1)[0])
                if d is not None and learned[d]:
                    by_dev.setdefault(d, []).append(i)
            for d, rows in list(by_dev.items())[:10]:
                points = sorted({str(r.point[i]) for i in rows})
                out.append(self._event(d, rule, now, f"{len(rows)} reading(s) with {what}: {', '.join(p.rsplit('/', 1)[1] for p in points[:5])}",
                                       {"points": points[:20], "count": len(rows),
                                        "readings": [{"point": str(r.point[i]), "ts": int(r.ts[i]), "value": float(r.value[i])}
                                                     for i in rows[:10]]}))
        self._emit(out)

    # -- events from outside the pipeline (the API's access checks) ----------------------------------------------
    def raise_event(self, device: str, rule: str, message: str, evidence: dict) -> None:
        """An access event (a scope violation, a lockout): the same dedupe, muting, store and bus as the rest."""
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}")
        with self._lock:
            self._emit([SecurityEvent(device, rule, self.clock(), message[:1000], evidence)])

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
            if len(self._last_raised) >= 100_000:  # bounded: subjects named by outside input (user names) cannot grow it
                self._last_raised.clear()
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


def _runs(same: np.ndarray, first: np.ndarray, starts: np.ndarray, carried: np.ndarray) -> np.ndarray:
    """The length of the run of equal values ending at each reading (a reading alone is a run of 1), continuing the
    carried run of its point (`carried`, one per group) for the readings that repeat the previous batch's last value."""
    n = len(same)
    if not same.any():
        return np.ones(n, np.int64)
    idx = np.arange(n)
    breaks = ~same | first
    start = np.maximum.accumulate(np.where(breaks, idx, 0))
    length = idx - start + 1
    cont = same[starts]  # groups whose first reading repeats the carried value continue that run
    if cont.any():
        extra = np.zeros(n, np.int64)
        extra[starts[cont]] = carried[cont]
        length += extra[start]  # each run inherits the carry of the reading it started at (only a group's first has one)
    return length
