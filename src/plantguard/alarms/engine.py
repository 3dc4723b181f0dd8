"""The alarm engine: limit, rate-of-change, stale-data and device-offline alarms with ISA-18.2 states.

Two layers of state:
- the *condition* (is the point beyond its limit?) lives in numpy arrays indexed by pid, one set per condition
  kind, so a batch is judged with vectorised comparisons and Python runs only where a condition changes;
- the *alarm record* (unacknowledged, acknowledged, returned_to_normal, shelved, normal) lives in AlarmRecord
  objects, changed by condition transitions and operator actions, and persisted through the store.

Threads: on_batch/on_tick run on the pipeline's writer thread, operator actions on API threads; one lock
serialises them (a batch takes a few milliseconds, so operators never wait long).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from plantguard.domain.actor import Actor
from plantguard.domain.alarms import PRIORITY_RANK, AlarmEvent, AlarmRecord, AlarmState
from plantguard.domain.fields import us_of
from plantguard.domain.model import PlantConfig, where as describe
from plantguard.domain.readings import PointBatch, Quality
from plantguard.events import AlarmChanged, ConditionChange, ConditionsChanged, EventBus, ExternalRule, ExternalRulesDeclared
from plantguard.errors import Conflict, InvalidInput, NotFound
from plantguard.ingest.registry import PointRegistry
from plantguard.store.protocols import AlarmStore  # noqa: F401 - the store it needs, with ReadingsStore
from plantguard.timeutil import Clock, iso

log = logging.getLogger(__name__)

NONE_TS = np.iinfo(np.int64).min  # "no run in progress" in the *_since arrays
OFFLINE_PRIORITY = "high"  # a silent device hides all its points, so it outranks a single stale point
_S = 1e-6  # microseconds -> seconds

# (condition, LimitAlarm field, direction): +1 raises above the limit, -1 below it
LIMITS = (("HIHI", "hihi", 1), ("HI", "hi", 1), ("LO", "lo", -1), ("LOLO", "lolo", -1))
# Conditions judged elsewhere (the analytics processor) and set through external_conditions(); their message
# comes with the change.
EXTERNAL = ("SPC", "ANOMALY", "RUL")

_U = AlarmState.unacknowledged.value
_A = AlarmState.acknowledged.value
_R = AlarmState.returned_to_normal.value
_N = AlarmState.normal.value
_SH = AlarmState.shelved.value


# Lateness of a stream forgiven when judging silence: beyond it a silent device is alarmed even if its last
# readings arrived this late (a device clock far behind must not hide an outage for longer).
MAX_FORGIVE_US = 600 * 1_000_000


@dataclass
class _Rule:
    id: str
    tag: str
    condition: str
    priority: str
    limit: float | None = None
    unit: str = ""


class _Level:
    """One condition kind (HIHI, HI, LO, LOLO or ROC) over all pids. NaN threshold = no rule for that pid.

    Each level is judged on its own: ISA-18.2 treats HI and HIHI as two alarms, each with its own
    acknowledgement, so a point above HIHI has both active. Hiding HI while HIHI is active would be designed
    suppression, a deliberate per-alarm decision rather than a default.
    """

    def __init__(self, condition: str, direction: int, n: int) -> None:
        self.condition = condition
        self.direction = direction  # +1 above, -1 below, 0 rate of change
        self.thr = np.full(n, np.nan)
        self.dead = np.zeros(n)
        self.on = np.zeros(n, np.int64)
        self.off = np.zeros(n, np.int64)
        self.active = np.zeros(n, bool)
        self.exceed_since = np.full(n, NONE_TS, np.int64)
        self.clear_since = np.full(n, NONE_TS, np.int64)
        self.ids: dict[int, str] = {}

    def carry_from(self, old: "_Level") -> None:
        """Keeps the delay timers of a previous rule set (pids are stable)."""
        k = min(len(old.exceed_since), len(self.exceed_since))
        self.exceed_since[:k] = old.exceed_since[:k]
        self.clear_since[:k] = old.clear_since[:k]


@dataclass
class _Changes:
    """Everything one call changes: persisted together in one save_alarms call, then notified."""

    records: dict[str, AlarmRecord] = field(default_factory=dict)
    events: list[AlarmEvent] = field(default_factory=list)
    notify: list[tuple[AlarmRecord, AlarmEvent]] = field(default_factory=list)


def _copy(rec: AlarmRecord) -> AlarmRecord:
    return replace(rec, extra=dict(rec.extra))


def _held(mask: np.ndarray, t: np.ndarray, first: np.ndarray, p_first: np.ndarray, last: np.ndarray,
          p_last: np.ndarray, since: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """Where `mask` has held for at least `delay` us in reading time, runs continuing across batches through
    `since` (start ts of the run still open per pid, NONE_TS if none). Updates `since` for the next batch."""
    n = len(mask)
    prev = np.empty(n, bool)
    prev[1:] = mask[:-1]
    carried = since[p_first]
    prev[first] = carried != NONE_TS
    start_ts = np.where(mask & ~prev, t, NONE_TS)
    cont = mask[first] & prev[first]
    start_ts[first[cont]] = carried[cont]
    pos = np.where(start_ts != NONE_TS, np.arange(n), 0)
    np.maximum.accumulate(pos, out=pos)
    run_start = start_ts[pos]  # every run has its start at its first position, so this forward-fills runs
    since[p_last] = np.where(mask[last], run_start[last], NONE_TS)
    with np.errstate(over="ignore"):
        return mask & (t - run_start >= delay)


class AlarmEngine:
    """A pipeline processor raising and clearing alarms; operators acknowledge and shelve them."""

    name = "alarms"

    def __init__(self, cfg: PlantConfig, registry: PointRegistry, store: "AlarmStore", *, clock: Clock, notifier=None,
                 bus: EventBus | None = None, lag_us=None) -> None:
        """Alarm transitions are published on `bus` as AlarmChanged (a private bus when None); a `notifier`
        (WebhookNotifier) given here subscribes to it. Conditions judged elsewhere arrive as ConditionsChanged
        and ExternalRulesDeclared events on the same bus (inline: none may be lost). `store`: AlarmStore and
        ReadingsStore (the watermarks at start); `lag_us()`: how far ingest is behind (silence is judged against
        what was caught up)."""
        self.registry = registry
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.bus = bus if bus is not None else EventBus()
        if notifier is not None:
            self.bus.subscribe("webhooks", notifier.on_event, AlarmChanged, inline=True)  # notify() only enqueues
        self.bus.subscribe("alarms:conditions", self._on_conditions, ConditionsChanged, ExternalRulesDeclared, inline=True)
        self._lock = threading.RLock()
        self._records: dict[str, AlarmRecord] = {}
        self._rules: dict[str, _Rule] = {}
        self._shelved: set[str] = set()
        self._pending = _Changes()  # changes a failed save left behind, retried with the next one
        self._external: dict[str, _Rule] = {}
        self._external_declared = False  # until the analytics declare their alarms, their stored records stay
        now = clock()
        n = self._n_pids()
        # per pid: newest reading ts of any quality (stale/offline), newest evaluated reading (limits/ROC)
        self._seen = np.full(n, now, np.int64)  # a point never seen gets one full window after start
        self._late = np.zeros(n, np.int64)  # how late the newest reading of each pid arrived (capped)
        self.lag_us = lag_us or (lambda: 0)
        self._eval_ts = np.full(n, NONE_TS, np.int64)
        self._eval_v = np.full(n, np.nan)
        self._dev_of = np.full(n, -1, np.int32)  # device number per pid, -1 for none
        pid, ts, value, quality = store.watermarks()
        if len(pid):
            ok = pid < n
            pid, ts, value, quality = pid[ok], ts[ok], value[ok], quality[ok]
            self._seen[pid] = np.maximum(self._seen[pid], ts)
            self._eval_ts[pid] = ts  # those readings were judged before the restart
            good = quality != Quality.bad
            self._eval_v[pid[good]] = value[good]
        self._levels: list[_Level] = []
        self._roc: _Level | None = None
        for rec in store.load_alarms():
            self._records[rec.id] = rec
        self._cfg = cfg
        with self._lock:
            ch = _Changes()
            self._build(cfg, now, ch)
            self._commit(ch)

    # -- rules --------------------------------------------------------------------------------------------
    def _n_pids(self) -> int:
        return max(len(self.registry.snap.low), max(self.registry.tags, default=-1) + 1)

    def reload(self, cfg: PlantConfig) -> None:
        """Applies a new plant model: rules change live, alarms whose rule is gone are cleared."""
        with self._lock:
            self._cfg = cfg
            ch = _Changes()
            self._build(cfg, self.clock(), ch)
            self._commit(ch)

    def _grow(self, n: int, now: int) -> None:
        old = len(self._seen)
        if n <= old:
            return
        self._seen = np.concatenate([self._seen, np.full(n - old, now, np.int64)])
        self._late = np.concatenate([self._late, np.zeros(n - old, np.int64)])
        self._eval_ts = np.concatenate([self._eval_ts, np.full(n - old, NONE_TS, np.int64)])
        self._eval_v = np.concatenate([self._eval_v, np.full(n - old, np.nan)])
        self._dev_of = np.concatenate([self._dev_of, np.full(n - old, -1, np.int32)])

    def _build(self, cfg: PlantConfig, now: int, ch: _Changes) -> None:
        # Long on purpose: the rule arrays of every condition are rebuilt together so that a reload is all or nothing
        # (no condition's arrays may describe another model than its neighbours').
        self._grow(self._n_pids(), now)
        n = len(self._seen)
        old_levels = {lv.condition: lv for lv in self._levels + ([self._roc] if self._roc else [])}
        levels = {c: _Level(c, d, n) for c, _, d in LIMITS}
        roc = _Level("ROC", 0, n)
        for lv in [*levels.values(), roc]:
            if lv.condition in old_levels:
                lv.carry_from(old_levels[lv.condition])
        rules: dict[str, _Rule] = {}
        stale_pids, stale_thr, stale_period, stale_ids = [], [], [], []
        dev_of = np.full(len(self._seen), -1, np.int32)
        dev_thr, dev_ids = [], []
        dev_index: dict[str, int] = {}
        dev_periods: dict[str, list[int]] = {}
        for tag, _s, _a, _l, _x, device, point in cfg.iter_points():
            pid = self.registry.pid(tag)
            if pid is None:
                continue
            if device.mode == "shadow":
                continue  # a pilot device: its data is stored and flagged, but raises no alarm of any kind
            period = us_of(point.period)
            dpath = tag.rsplit("/", 1)[0]
            if dpath not in dev_index:
                dev_index[dpath] = len(dev_index)
                dev_periods[dpath] = []
                dev_thr.append(device.offline_after_periods)
            dev_of[pid] = dev_index[dpath]
            dev_periods[dpath].append(period)
            al = point.alarms
            if al is None:
                continue
            if al.limits is not None:
                lim = al.limits
                for cond, fld, _d in LIMITS:
                    v = getattr(lim, fld)
                    if v is None:
                        continue
                    lv = levels[cond]
                    lv.thr[pid] = v
                    lv.dead[pid] = lim.deadband
                    lv.on[pid] = us_of(lim.on_delay)
                    lv.off[pid] = us_of(lim.off_delay)
                    rid = f"{tag}:{cond}"
                    lv.ids[pid] = rid
                    rules[rid] = _Rule(rid, tag, cond, lim.priority, float(v), point.unit)
            if al.rate_of_change is not None:
                roc.thr[pid] = al.rate_of_change.max_per_second
                rid = f"{tag}:ROC"
                roc.ids[pid] = rid
                rules[rid] = _Rule(rid, tag, "ROC", al.rate_of_change.priority, al.rate_of_change.max_per_second, point.unit)
            if al.stale is not None:
                rid = f"{tag}:STALE"
                stale_pids.append(pid)
                stale_thr.append(int(al.stale.periods * period))
                stale_period.append(period)
                stale_ids.append(rid)
                rules[rid] = _Rule(rid, tag, "STALE", al.stale.priority, None, point.unit)
        dev_paths = list(dev_index)
        for i, dpath in enumerate(dev_paths):
            dev_thr[i] = int(dev_thr[i] * min(dev_periods[dpath]))
            rid = f"{dpath}:OFFLINE"
            dev_ids.append(rid)
            rules[rid] = _Rule(rid, dpath, "OFFLINE", OFFLINE_PRIORITY)

        rules.update(self._external)
        # records: create the missing ones (persisted on their first change), clear those without a rule
        for rid, rule in rules.items():
            rec = self._records.get(rid)
            if rec is None:
                self._records[rid] = AlarmRecord(rid, rule.tag, rule.condition, rule.priority, limit=rule.limit, updated_at=now)
            elif rec.priority != rule.priority or rec.limit != rule.limit:
                rec.priority, rec.limit, rec.updated_at = rule.priority, rule.limit, now
                ch.records[rid] = rec
        keep = () if self._external_declared else EXTERNAL
        for rid in [r for r, rec in self._records.items() if r not in rules and rec.condition not in keep]:
            rec = self._records.pop(rid)
            self._shelved.discard(rid)
            if rec.state != _N or rec.active:
                self._clear_removed(rec, now, ch)

        # condition state comes from the records (they survive restarts and reloads)
        for lv in [*levels.values(), roc]:
            for pid, rid in lv.ids.items():
                lv.active[pid] = self._records[rid].active
        self._levels = [lv for lv in levels.values() if lv.ids]
        self._roc = roc if roc.ids else None
        self._eval_pids = np.array(sorted({p for lv in [*levels.values(), roc] for p in lv.ids}), np.int32)
        self._stale_pids = np.array(stale_pids, np.int32)
        self._stale_thr = np.array(stale_thr, np.int64)
        self._stale_period = np.array(stale_period, np.int64)
        self._stale_ids = stale_ids
        self._stale_active = np.array([self._records[r].active for r in stale_ids], bool)
        self._dev_of = dev_of
        self._dev_thr = np.array(dev_thr, np.int64)
        self._dev_ids = dev_ids
        self._dev_active = np.array([self._records[r].active for r in dev_ids], bool)
        self._dev_last = np.full(len(dev_ids), np.iinfo(np.int64).min, np.int64)
        self._dev_late = np.zeros(len(dev_ids), np.int64)
        m = dev_of >= 0
        np.maximum.at(self._dev_last, dev_of[m], self._seen[m])
        self._rules = rules
        self._shelved = {rid for rid, r in self._records.items() if r.state == _SH}

    # -- conditions judged by other processors ------------------------------------------------------------
    def _on_conditions(self, event) -> None:
        if isinstance(event, ExternalRulesDeclared):
            self.set_external_rules(event.rules)
        else:
            self.external_conditions(event.changes)

    def set_external_rules(self, rules: tuple[ExternalRule, ...] | list[ExternalRule]) -> None:
        """Declares the alarms another processor drives, with condition in EXTERNAL. Replaces the previous
        declaration; alarms no longer declared are cleared."""
        for r in rules:
            if r.condition not in EXTERNAL:
                raise InvalidInput(f"external alarm condition must be one of {', '.join(EXTERNAL)}, not {r.condition!r}")
        with self._lock:
            self._external = {r.alarm_id: _Rule(r.alarm_id, r.tag, r.condition, r.priority, r.limit, r.unit) for r in rules}
            self._external_declared = True
            self.reload_rules()

    def reload_rules(self) -> None:
        ch = _Changes()
        self._build(self._cfg, self.clock(), ch)
        self._commit(ch)

    def is_active(self, alarm_id: str) -> bool:
        """Whether the condition behind an alarm is active now (False for an unknown id)."""
        rec = self._records.get(alarm_id)
        return bool(rec is not None and rec.active)

    def external_conditions(self, changes: tuple[ConditionChange, ...] | list[ConditionChange]) -> None:
        """Applies condition changes of declared external alarms; a change that matches the current condition is
        ignored, an undeclared id is an error."""
        with self._lock:
            ch = _Changes()
            now = self.clock()
            for c in changes:
                rid, active, at, value, message = c.alarm_id, c.active, c.at, c.value, c.message
                if rid not in self._external:
                    raise NotFound(f"no external alarm {rid!r} declared")
                rec = self._records[rid]
                if rec.active == active:
                    if active and message and message != rec.message:
                        # a live estimate (remaining life) refreshes the text of the standing alarm, no new event
                        rec.message, rec.value, rec.updated_at = message, value, now
                        ch.records[rec.id] = rec
                    continue
                rec.message = message
                self._condition(rec, active, at, value, now, ch)
            self._commit(ch)

    # -- processor ------------------------------------------------------------------------------------------
    def on_batch(self, batch: PointBatch, now: int) -> None:
        """Judges a batch sorted by (pid, ts). Python work happens per point with a rule, never per reading."""
        if not len(batch):
            return
        pid, ts = batch.pid, batch.ts
        with self._lock:
            ch = _Changes()
            # newest reading per pid (the last of each pid run): feeds stale and offline detection
            ends = np.flatnonzero(np.r_[pid[1:] != pid[:-1], True])
            pe, te = pid[ends], ts[ends]
            if int(pe[-1]) >= len(self._seen):
                self._grow(int(pe[-1]) + 1, now)
            self._seen[pe] = np.maximum(self._seen[pe], te)
            # how late the newest reading of each point arrived (a backlog in a broker, a busy subscriber)
            self._late[pe] = np.clip(now - self._seen[pe], 0, MAX_FORGIVE_US)
            if len(self._dev_ids):
                d = self._dev_of[pe]
                k = d >= 0
                np.maximum.at(self._dev_last, d[k], te[k])
                dk = d[k]
                self._dev_late[dk] = np.clip(now - self._dev_last[dk], 0, MAX_FORGIVE_US)
            if len(self._eval_pids):
                self._evaluate(batch, ch, now)
            self._recover_stale(now, ch)
            self._commit(ch)

    def _evaluate(self, batch: PointBatch, ch: _Changes, now: int) -> None:
        pid = batch.pid
        # rows of the points with rules: the batch is sorted by pid, so each is one contiguous slice
        lo = np.searchsorted(pid, self._eval_pids, "left")
        hi = np.searchsorted(pid, self._eval_pids, "right")
        lens = hi - lo
        nz = lens > 0
        if not nz.any():
            return
        lo, lens = lo[nz], lens[nz]
        total = int(lens.sum())
        idx = np.arange(total) + np.repeat(lo - (np.cumsum(lens) - lens), lens)
        p, t, v, q = pid[idx], batch.ts[idx], batch.value[idx], batch.quality[idx]
        # bad quality is never judged; late readings (at or behind the newest judged one) neither
        keep = (q != Quality.bad) & (t > self._eval_ts[p])
        if not keep.all():
            p, t, v = p[keep], t[keep], v[keep]
            if not len(p):
                return
        brk = p[1:] != p[:-1]
        first = np.flatnonzero(np.r_[True, brk])
        last = np.flatnonzero(np.r_[brk, True])
        p_first, p_last = p[first], p[last]
        seg: list = [None]  # segment number per row, computed only when some condition changes

        def segments() -> np.ndarray:
            if seg[0] is None:
                s = np.zeros(len(p), np.int64)
                s[first[1:]] = 1
                seg[0] = np.cumsum(s)
            return seg[0]

        with np.errstate(invalid="ignore", divide="ignore"):
            for lv in self._levels:
                thr, dead = lv.thr[p], lv.dead[p]
                if lv.direction > 0:
                    exceed, clear = v > thr, v <= thr - dead
                else:
                    exceed, clear = v < thr, v >= thr + dead
                self._judge(lv, p, t, v, exceed, clear, first, p_first, last, p_last, segments, ch, now)
            if self._roc is not None:
                prev_v = np.empty(len(v))
                prev_v[1:] = v[:-1]
                prev_t = np.empty(len(t), np.int64)
                prev_t[1:] = t[:-1]
                prev_v[first] = self._eval_v[p_first]
                prev_t[first] = np.where(self._eval_ts[p_first] == NONE_TS, t[first] - 1, self._eval_ts[p_first])
                rate = np.abs(v - prev_v) / ((t - prev_t) * _S)  # NaN where no previous reading: neither raises nor clears
                thr = self._roc.thr[p]
                self._judge(self._roc, p, t, rate, rate > thr, rate <= thr, first, p_first, last, p_last, segments, ch, now)
        self._eval_ts[p_last] = t[last]
        self._eval_v[p_last] = v[last]

    def _judge(self, lv: _Level, p, t, v, exceed, clear, first, p_first, last, p_last, segments, ch: _Changes, now: int) -> None:
        on = lv.on[p] if lv.on.any() else None
        off = lv.off[p] if lv.off.any() else None
        raise_ok = exceed if on is None else _held(exceed, t, first, p_first, last, p_last, lv.exceed_since, on)
        clear_ok = clear if off is None else _held(clear, t, first, p_first, last, p_last, lv.clear_since, off)
        act = lv.active[p]
        cand = (raise_ok & ~act) | (clear_ok & act)
        if not cand.any():
            return
        seg = segments()
        for s in np.unique(seg[cand]).tolist():
            a = int(first[s])
            b = int(last[s]) + 1
            pid = int(p[a])
            r_idx = np.flatnonzero(raise_ok[a:b])
            c_idx = np.flatnonzero(clear_ok[a:b])
            state = bool(lv.active[pid])
            pos = 0
            while True:  # alternate: the next raise while inactive, the next clear while active
                arr = c_idx if state else r_idx
                k = int(np.searchsorted(arr, pos))
                if k == len(arr):
                    break
                i = a + int(arr[k])
                state = not state
                self._condition(self._records[lv.ids[pid]], state, int(t[i]), float(v[i]), now, ch)
                pos = int(arr[k]) + 1
            lv.active[pid] = state

    def on_tick(self, now: int) -> None:
        """Stale data, device offline and shelve expiry. Silence is judged against what the platform has caught
        up to, not the bare clock: the time the ingest queue has been written up to (now minus its lag), and for
        each point or device minus how late its newest reading arrived (at most MAX_FORGIVE_US). When the platform
        itself falls behind (a backlog, a busy CPU), healthy devices are therefore not declared offline; a device
        that really stops is, once the platform has caught up with the time its next reading was due."""
        with self._lock:
            ch = _Changes()
            ref = now - max(0, int(self.lag_us()))
            if len(self._stale_pids):
                age = ref - self._seen[self._stale_pids] - self._late[self._stale_pids]
                for i in np.flatnonzero((age > self._stale_thr) & ~self._stale_active).tolist():
                    self._stale_active[i] = True
                    rec = self._records[self._stale_ids[i]]
                    rec.message = f"no data for {age[i] * _S:g} s (expected every {self._stale_period[i] * _S:g} s)"
                    self._condition(rec, True, now, None, now, ch)
            if len(self._dev_ids):
                age = ref - self._dev_last - self._dev_late
                for i in np.flatnonzero((age > self._dev_thr) & ~self._dev_active).tolist():
                    self._dev_active[i] = True
                    rec = self._records[self._dev_ids[i]]
                    rec.message = f"device silent for {age[i] * _S:g} s (offline after {self._dev_thr[i] * _S:g} s)"
                    self._condition(rec, True, now, None, now, ch)
            self._recover_stale(now, ch)
            for rid in sorted(self._shelved):
                rec = self._records[rid]
                if rec.shelved_until is not None and rec.shelved_until <= now:
                    self._unshelve(rec, str(Actor.system("alarms")), now, "shelve expired", ch)
            self._commit(ch)

    def _recover_stale(self, now: int, ch: _Changes) -> None:
        if len(self._stale_pids) and self._stale_active.any():
            fresh = self._stale_active & (now - self._seen[self._stale_pids] - self._late[self._stale_pids] <= self._stale_thr)
            for i in np.flatnonzero(fresh).tolist():
                self._stale_active[i] = False
                self._condition(self._records[self._stale_ids[i]], False, now, None, now, ch)
        if len(self._dev_ids) and self._dev_active.any():
            back = self._dev_active & (now - self._dev_last - self._dev_late <= self._dev_thr)
            for i in np.flatnonzero(back).tolist():
                self._dev_active[i] = False
                self._condition(self._records[self._dev_ids[i]], False, now, None, now, ch)

    def close(self) -> None:
        with self._lock:
            self._commit(_Changes())

    # -- state machine ------------------------------------------------------------------------------------
    def _event(self, rec: AlarmRecord, ch: _Changes, at: int, event: str, actor=None, note=None, value=None, notify=True) -> None:
        ev = AlarmEvent(rec.id, at, event, actor, note, value)
        ch.records[rec.id] = rec
        ch.events.append(ev)
        if notify:
            ch.notify.append((_copy(rec), ev))

    def _condition(self, rec: AlarmRecord, active: bool, at: int, value: float | None, now: int, ch: _Changes) -> None:
        """The condition behind `rec` became active (raised) or inactive (returned) at reading time `at`."""
        rec.active = active
        rec.value = value
        rec.updated_at = now
        shelved = rec.state == _SH
        rule = self._rules.get(rec.id) or self._external.get(rec.id)
        if rule is not None and rule.unit:
            rec.extra = {**(rec.extra or {}), "unit": rule.unit}  # the pages show value and limit with it
        if active:
            rec.raised_at, rec.returned_at = at, None
            if rec.condition not in ("STALE", "OFFLINE", *EXTERNAL):
                unit = f" {rule.unit}" if rule and rule.unit else ""
                # Which machine and which signal, in the message itself: it travels to webhooks and e-mails.
                where = describe(rec.tag)
                if rec.condition == "ROC":
                    rec.message = f"{where}: changing at {value:g}{unit}/s, above {rec.limit:g}{unit}/s"
                else:
                    side = "above" if rec.condition in ("HI", "HIHI") else "below"
                    rec.message = f"{rec.condition} {where}: {value:g}{unit} {side} the limit {rec.limit:g}{unit}"
            if not shelved:  # raising again from normal or RTN is a new occurrence: a new acknowledgement is due
                rec.state = _U
                rec.acked_by = rec.acked_at = None
        else:
            rec.returned_at = at
            if not shelved:
                rec.state = _R if rec.state == _U else _N
        # while shelved the condition is still recorded, but nobody is notified
        self._event(rec, ch, at, "raised" if active else "returned", note="while shelved" if shelved else None,
                    value=value, notify=not shelved)

    def _clear_removed(self, rec: AlarmRecord, now: int, ch: _Changes) -> None:
        rec.state, rec.active, rec.returned_at, rec.updated_at = _N, False, now, now
        rec.shelved_by = rec.shelved_at = rec.shelved_until = rec.shelve_reason = None
        self._event(rec, ch, now, "cleared", note="rule removed from the plant model")

    def _unshelve(self, rec: AlarmRecord, user: str | None, now: int, note: str | None, ch: _Changes) -> None:
        # back to normal processing: an alarm still active is presented again and must be acknowledged
        rec.state = _U if rec.active else _N
        if rec.active:
            rec.acked_by = rec.acked_at = None
        rec.shelved_by = rec.shelved_at = rec.shelved_until = rec.shelve_reason = None
        rec.updated_at = now
        self._shelved.discard(rec.id)
        self._event(rec, ch, now, "unshelved", actor=user, note=note)

    def _commit(self, ch: _Changes) -> None:
        """Persists one call's changes (plus any a failed save left behind), then notifies."""
        pend = self._pending
        if ch.records or ch.events or pend.records or pend.events:
            records = {**pend.records, **ch.records}
            events = sorted(pend.events + ch.events, key=lambda e: e.at)
            try:
                self.store.save_alarms(list(records.values()), events)
                self._pending = _Changes()
            except Exception:  # noqa: BLE001 - the state is kept and saved with the next change
                self._pending = _Changes(records, events)
                log.exception("saving %d alarm change(s) failed; will retry", len(records))
        for rec, ev in ch.notify:
            self.bus.publish(AlarmChanged(rec, ev))

    # -- operator actions ---------------------------------------------------------------------------------
    def _get(self, alarm_id: str) -> AlarmRecord:
        rec = self._records.get(alarm_id)
        if rec is None:
            raise NotFound(f"no alarm {alarm_id!r} (ids are '<tag>:<condition>', e.g. 'site/area/line/asset/device/point:HI')")
        return rec

    def _operator(self, rec: AlarmRecord, apply) -> AlarmRecord:
        """Applies an operator action and saves it; on a store failure the record is left as it was."""
        before = _copy(rec)
        was_shelved = rec.id in self._shelved
        ch = _Changes()
        apply(ch)
        pend = self._pending
        try:
            self.store.save_alarms(list({**pend.records, **ch.records}.values()), pend.events + ch.events)
        except Exception:
            rec.__dict__.update(before.__dict__)
            (self._shelved.add if was_shelved else self._shelved.discard)(rec.id)
            raise
        self._pending = _Changes()
        for r, ev in ch.notify:
            self.bus.publish(AlarmChanged(r, ev))
        return _copy(rec)

    @staticmethod
    def _need_user(user: Actor | str) -> Actor:
        if isinstance(user, Actor):
            return user
        if not user or not str(user).strip():
            raise InvalidInput("the operator's user name is required")
        return Actor.user(str(user))

    def acknowledge(self, alarm_id: str, user: Actor | str, note: str | None = None) -> AlarmRecord:
        """Acknowledged by `user` (an Actor; a plain name is a user): the record shows the name, the event the
        full identity."""
        actor = self._need_user(user)
        user = actor.name
        with self._lock:
            rec = self._get(alarm_id)
            if rec.state == _A:
                raise Conflict(f"alarm {alarm_id!r} is already acknowledged (by {rec.acked_by} at {iso(rec.acked_at or 0)})")
            if rec.state == _N:
                raise Conflict(f"alarm {alarm_id!r} is normal: there is nothing to acknowledge")
            if rec.state == _SH:
                raise Conflict(f"alarm {alarm_id!r} is shelved: unshelve it before acknowledging")
            now = self.clock()

            def apply(ch):
                rec.state = _A if rec.state == _U else _N  # an acknowledged RTN alarm is done
                rec.acked_by, rec.acked_at, rec.updated_at = user, now, now
                self._event(rec, ch, now, "acknowledged", actor=str(actor), note=note, value=rec.value)

            return self._operator(rec, apply)

    def shelve(self, alarm_id: str, user: Actor | str, duration_us: int, reason: str) -> AlarmRecord:
        actor = self._need_user(user)
        user = actor.name
        if duration_us is None or duration_us <= 0:
            raise InvalidInput(f"a shelve needs a positive duration (got {duration_us!r} us)")
        with self._lock:
            rec = self._get(alarm_id)
            if rec.state == _SH:
                raise Conflict(f"alarm {alarm_id!r} is already shelved (by {rec.shelved_by} until {iso(rec.shelved_until or 0)})")
            now = self.clock()

            def apply(ch):
                rec.state = _SH
                rec.shelved_by, rec.shelved_at, rec.shelved_until, rec.shelve_reason = user, now, now + int(duration_us), reason
                rec.updated_at = now
                self._shelved.add(rec.id)
                self._event(rec, ch, now, "shelved", actor=str(actor), note=reason)

            return self._operator(rec, apply)

    def unshelve(self, alarm_id: str, user: Actor | str) -> AlarmRecord:
        actor = self._need_user(user)
        with self._lock:
            rec = self._get(alarm_id)
            if rec.state != _SH:
                raise Conflict(f"alarm {alarm_id!r} is not shelved (it is {rec.state})")
            now = self.clock()
            return self._operator(rec, lambda ch: self._unshelve(rec, str(actor), now, None, ch))

    # -- queries ------------------------------------------------------------------------------------------
    def get(self, alarm_id: str) -> AlarmRecord:
        with self._lock:
            return _copy(self._get(alarm_id))

    def list(self, state: str | None = None, priority: str | None = None, active: bool | None = None,
             tag_prefix: str | None = None) -> list[AlarmRecord]:
        """Matching records, most urgent first, then newest raise first."""
        state = getattr(state, "value", state)
        if state is not None and state not in {s.value for s in AlarmState}:
            raise InvalidInput(f"unknown alarm state {state!r}; one of {', '.join(s.value for s in AlarmState)}")
        if priority is not None and priority not in PRIORITY_RANK:
            raise InvalidInput(f"unknown priority {priority!r}; one of {', '.join(PRIORITY_RANK)}")
        with self._lock:
            out = [
                _copy(r) for r in self._records.values()
                if (state is None or r.state == state) and (priority is None or r.priority == priority)
                and (active is None or r.active == active) and (tag_prefix is None or r.tag.startswith(tag_prefix))
            ]
        out.sort(key=lambda r: (-PRIORITY_RANK.get(r.priority, 0), -(r.raised_at or 0), r.id))
        return out

    def active_count(self) -> int:
        """Alarms whose condition is active and that are not shelved."""
        with self._lock:
            return sum(1 for r in self._records.values() if r.active and r.state != _SH)
