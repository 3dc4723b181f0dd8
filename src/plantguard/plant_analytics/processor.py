"""The analytics processor: runs the analytics configured in the plant model over every stored batch.

    point analytics.spc       -> SpcBank slot (individuals chart + EWMA + CUSUM + Nelson rules)
    point analytics.anomaly   -> RobustZBank slot (the default wiring, or robust_z) or a per-point Thresholded
                                 detector (others)
    asset analytics.anomaly   -> one Thresholded multivariate detector over the asset's listed points (the default
                                 asset wiring unless another detector is named)
    asset analytics.rul       -> one DegradationTrend over the asset's condition indicator

Results go to a sink as one AnalyticsWrite per batch: rule violations, anomaly starts and ends and predictive
alerts as events; EWMA statistics, anomaly scores and RUL estimates as derived series thinned to one row per key
and `store_interval` (the highest score of the interval, so a short anomaly is never thinned away); status and
limits as state. Alarms are raised through the alarm engine's external conditions (SPC, ANOMALY, RUL), except on
shadow devices, whose analytics are computed and stored but never alarm.

Only good-quality readings are analysed. The learned state (banks and detectors) is checkpointed through the
sink every `checkpoint_every` and at close, and restored at start for every key whose settings are unchanged,
so a restart does not relearn from zero.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from plantguard import checkpoints
from plantguard.analytics.anomaly.bank import RobustZBank
from plantguard.analytics.anomaly.defaults import bank_params, default_asset_detector
from plantguard.analytics.anomaly.registry import load as load_detector
from plantguard.analytics.anomaly.threshold import Thresholded
from plantguard.analytics.spc.bank import CHARTS, IND, IN_CONTROL, INSUFFICIENT_DATA, NO_VARIATION, OUT_OF_CONTROL, SpcBank, SlotSettings
from plantguard.analytics.spc.rules import RULE_NAMES
from plantguard.domain.analytics import AnalyticsEvent, AnalyticsWrite
from plantguard.domain.index import PlantIndex
from plantguard.domain.model import PlantConfig, SpcSettings, state_gate, where as describe, us_of
from plantguard.domain.readings import PointBatch, Quality
from plantguard.events import ConditionChange, ConditionsChanged, ExternalRule, ExternalRulesDeclared
from plantguard.timeutil import iso, Clock, parse_duration_us

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "analytics"
RUL_CLEAR_FACTOR = 1.5  # a predictive alert clears once the lower bound is back above 1.5 x the lead time
_S = 1_000_000
# rule codes of violations: Nelson rules 1..8, then the other charts' limits
_CHART_CODE = np.array([0, 9, 10, 11, 12], np.int64)  # individuals (rule number used), moving_range, ewma, cusum up/low
_N_CODES = 13
_CODE_OF = {**{f"nelson-{i}": (i,) for i in range(1, 9)}, "moving_range": (9,), "ewma": (10,), "cusum": (11, 12)}


def _digest(settings) -> str:
    """A short fingerprint of a settings model: checkpoints keep it per key (not the settings) to tell whether
    the learned state still matches the configuration."""
    import hashlib

    return hashlib.blake2b(settings.model_dump_json().encode(), digest_size=8).hexdigest()


def _rule_bits(rules: list[str]) -> int:
    return sum(1 << c for r in rules for c in _CODE_OF[r])


STATE_NAMES = {INSUFFICIENT_DATA: "insufficient_data", IN_CONTROL: "in_control", OUT_OF_CONTROL: "out_of_control",
               NO_VARIATION: "no_variation"}


class Thinner:
    """Keeps one row per key and interval for derived series: the maximum of the interval (with its time), so
    a spike survives thinning. Vectorised over slots; a batch must hold each slot's readings in time order."""

    def __init__(self, interval_us: int) -> None:
        self.interval = max(1, int(interval_us))
        self.bucket = np.zeros(0, np.int64)
        self.vmax = np.zeros(0)
        self.tmax = np.zeros(0, np.int64)

    def _grow(self, n: int) -> None:
        old = len(self.bucket)
        if n > old:
            self.bucket = np.concatenate([self.bucket, np.full(n - old, np.iinfo(np.int64).min, np.int64)])
            self.vmax = np.concatenate([self.vmax, np.full(n - old, -np.inf)])
            self.tmax = np.concatenate([self.tmax, np.zeros(n - old, np.int64)])

    def feed(self, slots: np.ndarray, ts: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Adds readings; returns (slot, ts, value) of the intervals that closed."""
        ok = np.isfinite(values)
        slots, ts, values = slots[ok], ts[ok], values[ok]
        if not len(slots):
            return slots, ts, values
        self._grow(int(slots.max()) + 1)
        order = np.lexsort((ts, slots))
        slots, ts, values = slots[order], ts[order], values[order]
        b = ts // self.interval
        start = np.r_[True, (slots[1:] != slots[:-1]) | (b[1:] != b[:-1])]
        gi = np.flatnonzero(start)
        g_slot, g_b = slots[gi], b[gi]
        # max of each group, and the time of that max
        g_max = np.maximum.reduceat(values, gi)
        gid = np.cumsum(start) - 1
        is_max = values == g_max[gid]
        first_max = np.full(len(gi), -1, np.int64)
        pos = np.flatnonzero(is_max)
        first_max[gid[pos[::-1]]] = pos[::-1]
        g_t = ts[first_max]
        out_s, out_t, out_v = [], [], []
        # merge each slot's first group with its open interval when they are the same interval
        slot_first = np.r_[True, g_slot[1:] != g_slot[:-1]]
        slot_last = np.r_[g_slot[1:] != g_slot[:-1], True]
        open_b = self.bucket[g_slot]
        same = slot_first & (g_b == open_b)
        better = same & (self.vmax[g_slot] >= g_max)
        g_max = np.where(better, self.vmax[g_slot], g_max)
        g_t = np.where(better, self.tmax[g_slot], g_t)
        # the open interval closes when a slot's first group starts a later interval
        closes = slot_first & ~same & (open_b != np.iinfo(np.int64).min) & (g_b > open_b)
        cs = g_slot[closes]
        out_s.append(cs)
        out_t.append(self.tmax[cs])
        out_v.append(self.vmax[cs])
        # late readings (an interval before the open one) are emitted as their own rows
        emit = ~slot_last | (slot_first & (g_b < open_b) & (open_b != np.iinfo(np.int64).min))
        out_s.append(g_slot[emit])
        out_t.append(g_t[emit])
        out_v.append(g_max[emit])
        keep = slot_last & ~(slot_first & (g_b < open_b) & (open_b != np.iinfo(np.int64).min))
        ks = g_slot[keep]
        self.bucket[ks], self.vmax[ks], self.tmax[ks] = g_b[keep], g_max[keep], g_t[keep]
        return np.concatenate(out_s), np.concatenate(out_t), np.concatenate(out_v)

    def flush(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = np.flatnonzero(self.bucket != np.iinfo(np.int64).min)
        out = (s, self.tmax[s].copy(), self.vmax[s].copy())
        self.bucket[s] = np.iinfo(np.int64).min
        self.vmax[s] = -np.inf
        return out


@dataclass
class _Asset:
    key: str  # asset path
    shadow: bool
    mv_pids: list[int] = field(default_factory=list)
    mv_names: list[str] = field(default_factory=list)
    mv_period: list[int] = field(default_factory=list)
    mv: Thresholded | None = None
    mv_settings: dict | None = None
    mv_last: dict[int, tuple[int, float]] = field(default_factory=dict)  # pid -> (ts, value) held
    mv_clock: int = -1  # the member that triggers an evaluation (the slowest)
    mv_active: bool = False
    rul_pid: int = -1
    rul: Any = None
    rul_settings: dict | None = None
    rul_lead_s: float = 0.0
    rul_alert: bool = False
    rul_last_row: int = np.iinfo(np.int64).min
    rul_last: dict | None = None


@dataclass
class _State:
    """Everything learned, picklable as one checkpoint."""

    spc: SpcBank = field(default_factory=SpcBank)
    spc_keys: dict[str, tuple[int, str]] = field(default_factory=dict)  # tag -> (slot, settings fingerprint)
    rz: RobustZBank = field(default_factory=lambda: RobustZBank(warmup=30, bins=24))
    rz_keys: dict[str, tuple[int, str]] = field(default_factory=dict)
    dets: dict[str, tuple[Thresholded, str]] = field(default_factory=dict)  # tag -> other univariate detectors
    assets_mv: dict[str, tuple[Thresholded, str]] = field(default_factory=dict)
    assets_rul: dict[str, tuple[Any, str]] = field(default_factory=dict)


def _spc_slot_settings(s: SpcSettings, period_us: int) -> SlotSettings:
    return SlotSettings(baseline=s.baseline, lam=s.ewma_lambda, L=s.ewma_l, k=s.cusum_k, h=s.cusum_h,
                        rules=s.rules if isinstance(s.rules, str) else tuple(s.rules), reset_on_signal=True)


class AnalyticsProcessor:
    """Pipeline processor; see the module docstring."""

    name = "analytics"

    def __init__(self, cfg: PlantConfig, registry, *, sink: Callable[[AnalyticsWrite], None],
                 alarms=None, clock: Clock, checkpoint: tuple[Callable[[bytes], None], Callable[[], bytes | None]] | None = None,
                 store_interval: str | float = "10s", rul_interval: str | float = "1m", checkpoint_every: str | float = "5m") -> None:
        self.registry = registry
        self.sink = sink
        self.alarms = alarms  # read only (is an alarm active?); conditions go out on the alarm engine's bus
        self._publish = alarms.bus.publish if alarms is not None else (lambda event: None)
        self.clock = clock
        self._save_ckpt, self._load_ckpt = checkpoint if checkpoint else (None, None)
        self.store_interval = parse_duration_us(store_interval)
        self.rul_interval = parse_duration_us(rul_interval)
        self.checkpoint_every = parse_duration_us(checkpoint_every)
        self._lock = threading.RLock()
        self._st = self._restore() or _State()
        self._last_ckpt = clock()
        self.stats = {"readings": 0, "events": 0, "series_rows": 0, "errors": 0}
        self.reload(cfg)

    # -- configuration ------------------------------------------------------------------------------------
    def _restore(self) -> _State | None:
        if self._load_ckpt is None:
            return None
        try:
            blob = self._load_ckpt()
            if not blob:
                return None
            st = checkpoints.loads(blob, CHECKPOINT_NAME)
            if not isinstance(st, _State):
                raise checkpoints.CheckpointError(f"holds a {type(st).__name__}, not the analytics state")
            log.info("analytics state restored from checkpoint (%d SPC, %d anomaly, %d asset)",
                     len(st.spc_keys), len(st.rz_keys) + len(st.dets), len(st.assets_mv) + len(st.assets_rul))
            return st
        except Exception as e:  # noqa: BLE001 - a bad checkpoint must not stop the platform: relearn instead
            log.error("analytics checkpoint not usable (%s); learning from scratch", e)
            return None

    def reload(self, cfg: PlantConfig) -> None:
        """(Re)builds the analytics from the plant model. Keys whose settings did not change keep their state."""
        with self._lock:
            st = self._st
            n = max(self.registry.tags, default=-1) + 1
            spc_of = np.full(n, -1, np.int64)
            rz_of = np.full(n, -1, np.int64)
            det_of: dict[int, str] = {}
            shadow = np.zeros(n, bool)
            spc_tag: dict[int, str] = {}
            rz_tag: dict[int, str] = {}
            spc_cfg: dict[int, SpcSettings] = {}
            anom_cfg: dict[int, Any] = {}
            keep_spc, keep_rz, keep_det = {}, {}, {}
            for tag, _s, _a, _l, _asset, device, point in cfg.iter_points():
                pid = self.registry.pid(tag)
                if pid is None or point.analytics is None:
                    continue
                shadow[pid] = device.mode == "shadow"
                an = point.analytics
                if an.spc is not None:
                    settings = _digest(an.spc)
                    old = st.spc_keys.get(tag)
                    if old is not None and old[1] == settings:
                        slot = old[0]
                    else:
                        slot = st.spc.add(_spc_slot_settings(an.spc, us_of(point.period)))
                        if an.spc.center is not None:
                            from plantguard.analytics.spc.limits import individuals_limits
                            from plantguard.analytics.spc.constants import D2_MR

                            st.spc.set_limits(slot, individuals_limits(an.spc.center, an.spc.sigma * D2_MR, 0, 0, ()))
                    keep_spc[tag] = (slot, settings)
                    spc_of[pid] = slot
                    spc_tag[slot] = tag
                    spc_cfg[slot] = an.spc
                if an.anomaly is not None:
                    settings = _digest(an.anomaly)
                    if an.anomaly.detector in ("default", "robust_z"):
                        old = st.rz_keys.get(tag)
                        if old is not None and old[1] == settings:
                            slot = old[0]
                        elif an.anomaly.detector == "default":
                            slot = st.rz.add(**bank_params({**an.anomaly.params, "threshold": an.anomaly.threshold}))
                        else:
                            params = dict(an.anomaly.params)
                            params.setdefault("persistence", 1)
                            slot = st.rz.add(threshold=an.anomaly.threshold, **params)
                        keep_rz[tag] = (slot, settings)
                        rz_of[pid] = slot
                        rz_tag[slot] = tag
                        anom_cfg[slot] = an.anomaly
                    else:
                        old = st.dets.get(tag)
                        if old is not None and old[1] == settings:
                            det = old[0]
                        else:
                            det = Thresholded(load_detector(an.anomaly.detector)(**an.anomaly.params), threshold=an.anomaly.threshold)
                        keep_det[tag] = (det, settings)
                        det_of[pid] = tag
                        anom_cfg[tag] = an.anomaly
            st.spc_keys, st.rz_keys, st.dets = keep_spc, keep_rz, keep_det

            assets: dict[str, _Asset] = {}
            keep_mv, keep_rul = {}, {}
            for ref in PlantIndex(cfg).assets():
                asset = ref.asset
                if asset.analytics is None:
                    continue
                key = ref.path
                devs = {d.id: d for d in asset.devices}
                ax = _Asset(key, shadow=any(d.mode == "shadow" for d in asset.devices))
                mv = asset.analytics.anomaly
                if mv is not None:
                    settings = _digest(mv)
                    old = st.assets_mv.get(key)
                    if old is not None and old[1] == settings:
                        ax.mv = old[0]
                    elif mv.detector == "default":
                        ax.mv = default_asset_detector(mv.threshold, **mv.params)
                    else:
                        ax.mv = Thresholded(load_detector(mv.detector)(**mv.params), threshold=mv.threshold)
                    keep_mv[key] = (ax.mv, settings)
                    ax.mv_settings = mv.model_dump(mode="json")
                    for path in mv.points:
                        pid = self.registry.pid(f"{key}/{path}")
                        dev_id, pt_id = path.split("/", 1)
                        point = next(p for p in devs[dev_id].points if p.id == pt_id)
                        ax.mv_pids.append(pid)
                        ax.mv_names.append(path)
                        ax.mv_period.append(us_of(point.period))
                    ax.mv_clock = ax.mv_pids[int(np.argmax(ax.mv_period))]
                    ax.mv_active = self._alarm_active(f"{key}:ANOMALY")
                rul = asset.analytics.rul
                if rul is not None:
                    settings = _digest(rul)
                    old = st.assets_rul.get(key)
                    if old is not None and old[1] == settings:
                        ax.rul = old[0]
                    else:
                        from plantguard.analytics.rul.trend import DegradationTrend

                        ax.rul = DegradationTrend(rul.failure_threshold, **rul.params)
                    keep_rul[key] = (ax.rul, settings)
                    ax.rul_settings = rul.model_dump(mode="json")
                    ax.rul_pid = self.registry.pid(f"{key}/{rul.point}")
                    ax.rul_lead_s = us_of(rul.lead_time) / _S
                    ax.rul_alert = self._alarm_active(f"{key}:RUL")
                assets[key] = ax
            st.assets_mv, st.assets_rul = keep_mv, keep_rul

            self._spc_of, self._rz_of, self._det_of, self._shadow = spc_of, rz_of, det_of, shadow
            self._build_gates(cfg, n)
            self._spc_tag, self._rz_tag, self._spc_cfg, self._anom_cfg = spc_tag, rz_tag, spc_cfg, anom_cfg
            self._assets = assets
            self._asset_of_pid: dict[int, list[_Asset]] = {}
            for ax in assets.values():
                for pid in set(ax.mv_pids + ([ax.rul_pid] if ax.rul is not None else [])):
                    self._asset_of_pid.setdefault(pid, []).append(ax)
            self._any = bool(spc_tag or rz_tag or det_of or assets)
            ns = len(st.spc)
            self._spc_thin = Thinner(self.store_interval)
            self._rz_thin = Thinner(self.store_interval)
            # SPC alarm bookkeeping per slot (arrays kept across reloads: slots are never reused)
            if not hasattr(self, "_spc_mask"):
                self._spc_mask = np.zeros(0, np.uint64)  # violation bits of the last 64 points, bit 0 the newest
                self._spc_vidx = np.zeros(0, np.int64)  # point index the mask is aligned to
                self._spc_alarm = np.zeros(0, bool)
                self._spc_status = np.zeros(0, np.int16)
                self._spc_dirty = np.zeros(0, bool)
                self._spc_rulebits = np.zeros(0, np.int64)
                self._spc_min = np.zeros(0, np.int64)
                self._spc_clear = np.zeros(0, np.int64)
                self._spc_prev = np.zeros((0, _N_CODES), np.int64)  # newest index each rule code fired at
                self._spc_ewma_keys: list[str | None] = []
                self._spc_last_rule: dict[int, str] = {}
                self._spc_state_at = np.iinfo(np.int64).min
            self._spc_grow(ns)
            for slot, c in spc_cfg.items():
                self._spc_rulebits[slot] = _rule_bits(c.alarm_rules)
                self._spc_min[slot], self._spc_clear[slot] = c.alarm_min_points, c.clear_after
                self._spc_alarm[slot] = self._alarm_active(f"{spc_tag[slot]}:SPC")
                self._spc_ewma_keys[slot] = f"ewma/{spc_tag[slot]}"
            nr = len(st.rz)
            self._rz_anom = np.zeros(nr, bool)
            for slot, tag in rz_tag.items():
                self._rz_anom[slot] = self._alarm_active(f"{tag}:ANOMALY")
            self._det_anom = {tag: self._alarm_active(f"{tag}:ANOMALY") for tag in det_of.values()}
            self._declare_alarms(cfg)

    def _alarm_active(self, rid: str) -> bool:
        return self.alarms is not None and self.alarms.is_active(rid)

    def _declare_alarms(self, cfg: PlantConfig) -> None:
        if self.alarms is None:
            return
        rules = []
        units = {tag: p.unit for tag, *_r, p in cfg.iter_points()}
        for slot, tag in self._spc_tag.items():
            s = self._spc_cfg[slot]
            if s.alarm and not self._shadow[self.registry.pid(tag)]:
                rules.append(ExternalRule(f"{tag}:SPC", tag, "SPC", s.priority, None, units.get(tag, "")))
        for key in list(self._rz_tag.values()) + list(self._det_of.values()):
            a = self._anom_cfg[self._rz_slot(key)] if key in self._rz_tag.values() else self._anom_cfg[key]
            if a.alarm and not self._shadow[self.registry.pid(key)]:
                rules.append(ExternalRule(f"{key}:ANOMALY", key, "ANOMALY", a.priority, a.threshold, ""))
        for ref in PlantIndex(cfg).assets():
            asset = ref.asset
            key = ref.path
            ax = self._assets.get(key)
            if ax is None or ax.shadow:
                continue
            if asset.analytics.anomaly is not None and asset.analytics.anomaly.alarm:
                rules.append(ExternalRule(f"{key}:ANOMALY", key, "ANOMALY", asset.analytics.anomaly.priority, asset.analytics.anomaly.threshold, ""))
            if asset.analytics.rul is not None and asset.analytics.rul.alarm:
                rules.append(ExternalRule(f"{key}:RUL", key, "RUL", asset.analytics.rul.priority, ax.rul_lead_s / 3600, "h"))
        self._publish(ExternalRulesDeclared(tuple(rules)))

    def _rz_slot(self, tag: str) -> int:
        return self._st.rz_keys[tag][0]

    # -- processing ---------------------------------------------------------------------------------------
    def _build_gates(self, cfg: PlantConfig, n: int) -> None:
        """Points with analytics.only_when: which machine-state point gates them, and its allowed state codes."""
        gate_of = np.full(n, -1, np.int64)
        gates: list[tuple[int, np.ndarray]] = []
        index: dict[tuple, int] = {}
        for ref in PlantIndex(cfg).assets():
            ln, asset = ref.line, ref.asset
            if ln.oee is None:
                continue
            base = ref.path
            for d in asset.devices:
                for p in d.points:
                    gate = state_gate(ln, asset, p)
                    if gate is None:
                        continue
                    spid = self.registry.pid(f"{base}/{gate[0]}")
                    pid = self.registry.pid(f"{base}/{d.id}/{p.id}")
                    if spid is None or pid is None or pid >= n:
                        continue
                    allowed = gate[1]
                    gk = (spid, allowed)
                    if gk not in index:
                        index[gk] = len(gates)
                        gates.append((spid, np.array(allowed, np.float64)))
                    gate_of[pid] = index[gk]
        old = getattr(self, "_gate_keys", {})
        last = getattr(self, "_gate_last", {})
        self._gate_last = {i: last[old[gk]] for gk, i in index.items() if gk in old and old[gk] in last}
        self._gate_keys = index
        self._gate_of, self._gates = gate_of, gates
        self.stats.setdefault("gated", 0)

    def _gate_mask(self, batch: PointBatch) -> np.ndarray:
        """False for readings of gated points taken while their machine was not in an allowed state (or before
        any state is known). The state at a reading's time is the newest state reading at or before it."""
        pid, ts = batch.pid, batch.ts
        ok = np.ones(len(pid), bool)
        known = pid < len(self._gate_of)
        g = np.where(known, self._gate_of[np.where(known, pid, 0)], -1)
        for gi, (spid, allowed) in enumerate(self._gates):
            sm = pid == spid
            st_ts, st_code = ts[sm], batch.value[sm]  # sorted by ts: the batch is sorted by (pid, ts)
            last = self._gate_last.get(gi)
            if last is not None:
                st_ts, st_code = np.r_[last[0], st_ts], np.r_[last[1], st_code]
            sel = g == gi
            if sel.any():
                pos = np.searchsorted(st_ts, ts[sel], "right") - 1
                state = np.where(pos >= 0, st_code[np.maximum(pos, 0)] if len(st_code) else np.nan, np.nan)
                ok[sel] = np.isin(state, allowed)
            if len(st_ts) and (last is None or st_ts[-1] >= last[0]):
                self._gate_last[gi] = (int(st_ts[-1]), float(st_code[-1]))
        self.stats["gated"] += int((~ok).sum())
        return ok

    def on_batch(self, batch: PointBatch, now: int) -> None:
        if not self._any or not len(batch):
            return
        with self._lock:
            out = AnalyticsWrite()
            alarm_changes: list[ConditionChange] = []
            good = batch.quality == Quality.good
            if self._gates:
                good = good & self._gate_mask(batch)
            pid = batch.pid
            n = len(self._spc_of)
            known = pid < n
            self.stats["readings"] += int(good.sum())
            if self._spc_tag:
                self._run_spc(batch, good & known, out, alarm_changes)
            if self._rz_tag:
                self._run_rz(batch, good & known, out, alarm_changes)
            if self._det_of:
                self._run_dets(batch, good, out, alarm_changes)
            if self._assets:
                self._run_assets(batch, good, out, alarm_changes)
            self._emit(out, alarm_changes, now)

    def _emit(self, out: AnalyticsWrite, alarm_changes, now: int) -> None:
        self.stats["events"] += len(out.events)
        self.stats["series_rows"] += len(out.series)
        if out:
            self.sink(out)
        if alarm_changes:
            self._publish(ConditionsChanged(tuple(alarm_changes)))
        if self._save_ckpt is not None and now - self._last_ckpt >= self.checkpoint_every:
            self.save_checkpoint(now)

    @staticmethod
    def _select(slot_of: np.ndarray, batch: PointBatch, mask: np.ndarray):
        """(slots, ts, values) of the masked readings whose point has a slot in `slot_of`, or None."""
        slots = slot_of[batch.pid[mask]]
        use = slots >= 0
        if not use.any():
            return None
        idx = np.flatnonzero(mask)[use]
        return slots[use], batch.ts[idx], batch.value[idx]

    def _run_spc(self, batch: PointBatch, mask: np.ndarray, out: AnalyticsWrite, alarm_changes) -> None:
        """Vectorised over slots: Python runs per recorded event and per slot whose alarm or status changed."""
        sel = self._select(self._spc_of, batch, mask)
        if sel is None:
            return
        slots, ts, v = sel
        bank = self._st.spc
        res = bank.process(slots, ts, v)
        self._spc_grow(len(bank))
        n_ev = len(res.event_slot)
        last = np.full(len(bank), -1, np.int64)
        np.maximum.at(last, slots, res.index)
        touched = np.flatnonzero(last >= 0)
        if n_ev:
            ev_slot, ev_index = res.event_slot.astype(np.int64), res.event_index.astype(np.int64)
            code = np.where(res.event_chart == IND, res.event_rule, _CHART_CODE[res.event_chart]).astype(np.int64)
            # one event per episode: a rule that also fired at the slot's previous point continues an episode
            order = np.lexsort((ev_index, code, ev_slot))
            es, ec, ei = ev_slot[order], code[order], ev_index[order]
            same = np.r_[False, (es[1:] == es[:-1]) & (ec[1:] == ec[:-1])]
            prev = np.where(same, np.r_[np.int64(-2), ei[:-1]], self._spc_prev[es, ec])
            new_episode = ei - prev != 1
            self._spc_prev[es, ec] = ei  # ascending within each group: the last write is the newest index
            for k in np.flatnonzero(new_episode).tolist():
                j = int(order[k])
                slot, chart, rule = int(es[k]), int(res.event_chart[j]), int(res.event_rule[j])
                tag = self._spc_tag.get(slot)
                if tag is None:
                    continue
                name, rid = (RULE_NAMES[rule], f"nelson-{rule}") if chart == IND else (f"{CHARTS[chart]} beyond its limit", CHARTS[chart])
                pos, span = int(res.event_pos[j]), int(res.event_span[j])
                first = pos - span + 1
                # batches arrive sorted by point, so a span inside this batch is one slice of it
                first_ts = int(ts[first]) if first >= 0 and slots[first] == slot else None
                out.events.append(AnalyticsEvent(int(res.event_ts[j]), "spc", f"spc/{tag}", rid, name,
                                                  {"value": float(v[pos]), "span": span, "first_ts": first_ts,
                                                   "index": int(ei[k]), "chart": CHARTS[chart]}))
                self._spc_last_rule[slot] = f"{rid} {name}"
            # the alarm counts readings with a violation of an alarm rule among the last clear_after
            counted = ((self._spc_rulebits[ev_slot] >> code) & 1).astype(bool)
            cs, ci = ev_slot[counted], ev_index[counted]
        else:
            cs = ci = np.zeros(0, np.int64)
        t_sl = touched
        shift = last[t_sl] - self._spc_vidx[t_sl]
        m = self._spc_mask[t_sl]
        m = np.where(shift >= 64, np.uint64(0), m << np.minimum(np.maximum(shift, 0), 63).astype(np.uint64))
        self._spc_mask[t_sl] = m
        self._spc_vidx[t_sl] = np.maximum(self._spc_vidx[t_sl], last[t_sl])
        if len(cs):
            age = self._spc_vidx[cs] - ci
            ok = (age >= 0) & (age < 64)
            np.bitwise_or.at(self._spc_mask, cs[ok], np.left_shift(np.uint64(1), age[ok].astype(np.uint64)))
        window = np.left_shift(np.uint64(1), self._spc_clear[t_sl].astype(np.uint64)) - np.uint64(1)
        count = np.bitwise_count(self._spc_mask[t_sl] & window)
        was = self._spc_alarm[t_sl]
        now_active = np.where(was, count > 0, count >= self._spc_min[t_sl])
        st_last = np.full(len(bank), -1, np.int64)
        st_last[slots] = res.state  # fancy assignment keeps each slot's last reading
        status_changed = (st_last[t_sl] >= 0) & (st_last[t_sl] != self._spc_status[t_sl])
        self._spc_status[t_sl] = np.where(st_last[t_sl] >= 0, st_last[t_sl], self._spc_status[t_sl])
        self._spc_dirty[t_sl[status_changed]] = True
        flip = np.flatnonzero(now_active != was)
        if len(flip):
            ts_last = np.zeros(len(bank), np.int64)
            ts_last[slots] = ts
            v_last = np.zeros(len(bank))
            v_last[slots] = v
            for slot in t_sl[flip].tolist():
                active = not self._spc_alarm[slot]
                self._spc_alarm[slot] = active
                self._spc_dirty[slot] = True
                tag = self._spc_tag.get(slot)
                if tag is None:
                    continue
                cfg = self._spc_cfg[slot]
                if cfg.alarm and not self._shadow[self.registry.pid(tag)]:
                    msg = (f"SPC {describe(tag)}: {self._spc_last_rule.get(slot, 'rule violations')} (process out of statistical control)" if active
                           else f"SPC {describe(tag)}: no alarm-rule violation for {cfg.clear_after} readings")
                    alarm_changes.append(ConditionChange(f"{tag}:SPC", active, int(ts_last[slot]), float(v_last[slot]), msg))
        # status and limits as state: at most once per key and store interval (statuses can flip every reading)
        t_max = int(ts.max())
        if t_max - self._spc_state_at >= self.store_interval and self._spc_dirty.any():
            self._spc_state_at = t_max
            for slot in np.flatnonzero(self._spc_dirty).tolist():
                tag = self._spc_tag.get(slot)
                if tag is not None:
                    out.states[f"spc/{tag}"] = self.spc_state(slot)
            self._spc_dirty[:] = False
        # EWMA statistic as a derived series (the highest of each interval)
        rs, rt, rv = self._spc_thin.feed(slots, ts, res.ewma)
        if len(rs):
            keys = self._spc_ewma_keys
            out.series.extend([keys[s_] for s_ in rs.tolist()], rt.tolist(), rv.tolist())

    def _spc_grow(self, n: int) -> None:
        old = len(self._spc_mask)
        if n <= old:
            return
        k = n - old
        self._spc_mask = np.concatenate([self._spc_mask, np.zeros(k, np.uint64)])
        self._spc_vidx = np.concatenate([self._spc_vidx, np.full(k, -1, np.int64)])
        self._spc_alarm = np.concatenate([self._spc_alarm, np.zeros(k, bool)])
        self._spc_status = np.concatenate([self._spc_status, np.full(k, -1, np.int16)])
        self._spc_dirty = np.concatenate([self._spc_dirty, np.zeros(k, bool)])
        self._spc_rulebits = np.concatenate([self._spc_rulebits, np.zeros(k, np.int64)])
        self._spc_min = np.concatenate([self._spc_min, np.full(k, 64, np.int64)])
        self._spc_clear = np.concatenate([self._spc_clear, np.full(k, 16, np.int64)])
        self._spc_prev = np.concatenate([self._spc_prev, np.full((k, _N_CODES), -2, np.int64)])
        self._spc_ewma_keys += [None] * k

    def spc_state(self, slot: int) -> dict:
        s = self._st.spc.state(slot)
        lim = s.limits
        # The status must never contradict the violations next to it: 'in_control' only when no rule fired in
        # the last clear_after readings and the SPC alarm is not active (the bank's own state is the last
        # reading's alone).
        status = s.status
        window = int(self._spc_clear[slot]) if slot < len(self._spc_clear) else 16
        vidx = int(self._spc_vidx[slot]) if slot < len(self._spc_vidx) else -1
        recent = int(((self._spc_prev[slot] >= 0) & (self._spc_prev[slot] > vidx - window)).sum()) if slot < len(self._spc_prev) else 0
        alarm = bool(self._spc_alarm[slot]) if slot < len(self._spc_alarm) else False
        if status == "in_control" and (recent or alarm):
            status = "out_of_control"
        d = {"status": status, "last_reading_status": s.status, "alarm_active": alarm,
             "rules_fired_recently": recent, "recent_window": window,
             "n_points": s.n_points, "n_missing": s.n_missing, "n_out_of_order": s.n_out_of_order,
             "collected": s.collected, "baseline": self._spc_cfg[slot].baseline if slot in self._spc_cfg else None}
        if lim is not None:
            d["limits"] = {"center": lim.center, "ucl": lim.ucl, "lcl": lim.lcl, "sigma": lim.sigma,
                           "sigma_method": lim.sigma_method, "n_used": lim.n_used, "removed": len(lim.removed),
                           "mr_ucl": lim.spread_ucl}
            c = self._spc_cfg.get(slot)
            if c is not None:
                lam, L = c.ewma_lambda, c.ewma_l
                half = L * lim.sigma * (lam / (2 - lam)) ** 0.5
                d["ewma_limits"] = {"center": lim.center, "ucl": lim.center + half, "lcl": lim.center - half}
                d["cusum"] = {"k": c.cusum_k, "h": c.cusum_h, "upper": s.cusum_upper, "lower": s.cusum_lower}
        return d

    def _run_rz(self, batch: PointBatch, mask: np.ndarray, out: AnalyticsWrite, alarm_changes) -> None:
        sel = self._select(self._rz_of, batch, mask)
        if sel is None:
            return
        slots, ts, v = sel
        res = self._st.rz.process(slots, v, ts)
        # starts and ends of anomalies: transitions of the decision within each slot's readings (in order)
        order = np.argsort(slots, kind="stable")
        s_o, a_o = slots[order], res.is_anomaly[order]
        prev = np.r_[False, a_o[:-1]]
        first = np.r_[True, s_o[1:] != s_o[:-1]]
        if len(self._rz_anom) < len(self._st.rz):
            self._rz_anom = np.concatenate([self._rz_anom, np.zeros(len(self._st.rz) - len(self._rz_anom), bool)])
        prev = np.where(first, self._rz_anom[s_o], prev)
        for j in np.flatnonzero(prev != a_o).tolist():
            i = int(order[j])
            slot = int(s_o[j])
            tag = self._rz_tag.get(slot)
            if tag is None:
                continue
            started = bool(a_o[j])
            self._anomaly_change(f"anomaly/{tag}", tag, started, int(ts[i]), float(v[i]), float(res.scores[i]),
                                 self._anom_cfg[slot], out, alarm_changes, shadow=bool(self._shadow[self.registry.pid(tag)]))
        last = np.flatnonzero(np.r_[s_o[1:] != s_o[:-1], True])
        self._rz_anom[s_o[last]] = a_o[last]
        rs, rt, rv = self._rz_thin.feed(slots, ts, res.scores)
        if len(rs):
            tags = self._rz_tag
            out.series.extend([f"anomaly/{tags[s_]}" for s_ in rs.tolist()], rt.tolist(), rv.tolist())

    def _anomaly_change(self, key: str, alarm_tag: str, started: bool, ts: int, value: float | None, score: float, cfg,
                        out: AnalyticsWrite, alarm_changes, *, shadow: bool, detail: dict | None = None) -> None:
        msg = (f"anomaly {describe(alarm_tag)}: score {score:.3f} at or above {cfg.threshold:g}" if started
               else f"anomaly over {describe(alarm_tag)}: score {score:.3f}")
        out.events.append(AnalyticsEvent(ts, "anomaly", key, "anomaly-start" if started else "anomaly-end", msg,
                                          {"score": score, "value": value, **(detail or {})}))
        out.states[key] = {"anomalous": started, "score": score, "since": ts, "threshold": cfg.threshold}
        if cfg.alarm and not shadow:
            alarm_changes.append(ConditionChange(f"{alarm_tag}:ANOMALY", started, ts, value if value is not None else score, msg))

    def _run_dets(self, batch: PointBatch, good: np.ndarray, out: AnalyticsWrite, alarm_changes) -> None:
        for pid_, tag in self._det_of.items():
            sel = np.flatnonzero((batch.pid == pid_) & good)
            if not len(sel):
                continue
            det = self._st.dets[tag][0]
            cfg = self._anom_cfg[tag]
            best = (-1.0, 0)
            for i in sel.tolist():
                t, x = int(batch.ts[i]), float(batch.value[i])
                d = det.update(x)
                if d.score > best[0]:
                    best = (d.score, t)
                if d.is_anomaly != self._det_anom[tag]:
                    self._det_anom[tag] = d.is_anomaly
                    self._anomaly_change(f"anomaly/{tag}", tag, d.is_anomaly, t, x, d.score, cfg, out, alarm_changes,
                                         shadow=bool(self._shadow[pid_]))
            out.series.add(f"anomaly/{tag}", best[1], best[0])

    def _run_assets(self, batch: PointBatch, good: np.ndarray, out: AnalyticsWrite, alarm_changes) -> None:
        pids = np.fromiter(self._asset_of_pid.keys(), np.int64)
        sel = np.flatnonzero(np.isin(batch.pid, pids) & good)
        if not len(sel):
            return
        sel = sel[np.argsort(batch.ts[sel], kind="stable")]  # across points: time order
        best: dict[str, tuple[float, int]] = {}
        due: list[_Asset] = []
        ts_sel = batch.ts[sel]
        for j, i in enumerate(sel.tolist()):
            p, t, x = int(batch.pid[i]), int(batch.ts[i]), float(batch.value[i])
            for ax in self._asset_of_pid[p]:
                if ax.mv is not None and p in ax.mv_pids:
                    ax.mv_last[p] = (t, x)
                    if p == ax.mv_clock:
                        due.append(ax)
                if ax.rul is not None and p == ax.rul_pid:
                    self._asset_rul(ax, t, x, out, alarm_changes)
            # evaluate once every reading stamped with this time is held, so sensors sampled together are
            # judged together
            if due and (j + 1 == len(sel) or ts_sel[j + 1] != t):
                for ax in due:
                    self._asset_mv(ax, t, best, out, alarm_changes)
                due.clear()
        for key, (score, t) in best.items():
            out.series.add(f"anomaly/{key}", t, score)

    def _asset_mv(self, ax: _Asset, t: int, best: dict, out: AnalyticsWrite, alarm_changes) -> None:
        feats = {}
        for p, name, period in zip(ax.mv_pids, ax.mv_names, ax.mv_period):
            held = ax.mv_last.get(p)
            # a value older than 3 of its periods is missing, not carried forward forever
            feats[name] = held[1] if held is not None and t - held[0] <= 3 * period else None
        d = ax.mv.update(feats)
        if d.score > best.get(ax.key, (-1.0, 0))[0]:
            best[ax.key] = (d.score, t)
        if d.is_anomaly != ax.mv_active:
            ax.mv_active = d.is_anomaly
            cfg = _Cfg(ax.mv.threshold, bool(ax.mv_settings.get("alarm", True)))
            contrib = {}
            explain = getattr(ax.mv.detector, "contributions", None)
            if callable(explain):
                try:
                    contrib = {"contributions": explain(feats)}
                except Exception:  # noqa: BLE001 - an explanation is a bonus, never a failure
                    contrib = {}
            self._anomaly_change(f"anomaly/{ax.key}", ax.key, d.is_anomaly, t, None, d.score, cfg, out, alarm_changes,
                                 shadow=ax.shadow, detail={"features": feats, **contrib})

    def _asset_rul(self, ax: _Asset, t: int, x: float, out: AnalyticsWrite, alarm_changes) -> None:
        est = ax.rul.update(t / _S, x)
        alert = bool(est.alert(ax.rul_lead_s))
        if ax.rul_alert and not alert and est.state == "degrading" and not (
                np.isfinite(est.lower) and est.lower >= RUL_CLEAR_FACTOR * ax.rul_lead_s):
            # hysteresis: a bound hovering around the lead time, or a fit briefly without a finite life just after
            # the onset, must not chatter the alarm; it clears when the bound is well above the lead time or the
            # asset is healthy again (part replaced)
            alert = True
        d = dataclasses.asdict(est)
        d["lead_time_s"] = ax.rul_lead_s
        d["alert"] = alert
        d["ts"] = t
        ax.rul_last = d
        refresh = t - ax.rul_last_row >= self.rul_interval
        if refresh or alert != ax.rul_alert:
            ax.rul_last_row = t
            out.states[f"rul/{ax.key}"] = d
            if est.median is not None and np.isfinite(est.median):
                out.series.add(f"rul/{ax.key}", t, est.median, _finite(est.lower), _finite(est.upper))
        asset_name = ax.key.rsplit("/", 1)[-1]
        # the alarm's value is the lower bound of the remaining life in hours, next to the lead time in hours
        lower_h = float(est.lower) / 3600 if est.lower is not None and np.isfinite(est.lower) else None
        if alert != ax.rul_alert:
            ax.rul_alert = alert
            if alert:
                msg = (f"{asset_name}: predicted failure in {_h(est.median)} (interval {_h(est.lower)} to {_h(est.upper)}), "
                       f"lower bound below the lead time {_h(ax.rul_lead_s)}; estimate as of {iso(t)}")
            else:
                msg = f"{asset_name}: remaining life back above the lead time {_h(ax.rul_lead_s)}"
            out.events.append(AnalyticsEvent(t, "rul", f"rul/{ax.key}", "rul-alert" if alert else "rul-clear", msg, d))
            if ax.rul_settings.get("alarm", True) and not ax.shadow:
                alarm_changes.append(ConditionChange(f"{ax.key}:RUL", alert, t, lower_h, msg))
        elif alert and refresh and ax.rul_settings.get("alarm", True) and not ax.shadow:
            # the standing alarm follows the live estimate, with the time it was made
            msg = (f"{asset_name}: predicted failure in {_h(est.median)} (interval {_h(est.lower)} to {_h(est.upper)}), "
                   f"lower bound below the lead time {_h(ax.rul_lead_s)}; estimate as of {iso(t)}")
            alarm_changes.append(ConditionChange(f"{ax.key}:RUL", True, t, lower_h, msg))

    # -- ticks, checkpoints -------------------------------------------------------------------------------
    def on_tick(self, now: int) -> None:
        if self._save_ckpt is not None and now - self._last_ckpt >= self.checkpoint_every:
            with self._lock:
                self.save_checkpoint(now)

    def save_checkpoint(self, now: int | None = None) -> None:
        if self._save_ckpt is None:
            return
        with self._lock:
            self._last_ckpt = self.clock() if now is None else now
            try:
                self._save_ckpt(checkpoints.dumps(self._st, CHECKPOINT_NAME))
            except Exception:  # noqa: BLE001 - retried at the next interval; the live state is intact
                self.stats["errors"] += 1
                log.exception("saving the analytics checkpoint failed")

    def close(self) -> None:
        with self._lock:
            out = AnalyticsWrite()
            for thin, tags, prefix in ((self._spc_thin, self._spc_tag, "ewma"), (self._rz_thin, self._rz_tag, "anomaly")):
                for s_, t_, v_ in zip(*(a.tolist() for a in thin.flush())):
                    if s_ in tags:
                        out.series.add(f"{prefix}/{tags[s_]}", t_, v_)
            if out:
                try:
                    self.sink(out)
                except Exception:  # noqa: BLE001
                    log.exception("writing the last analytics rows failed")
            self.save_checkpoint()

    # -- reads for the API ----------------------------------------------------------------------------------
    def live(self) -> dict:
        """In-memory view: SPC status per point, anomaly flags, RUL per asset."""
        with self._lock:
            spc = {tag: self.spc_state(slot) for slot, tag in self._spc_tag.items()}
            anomaly = {tag: {"anomalous": bool(self._rz_anom[slot]) if slot < len(self._rz_anom) else False,
                             **self._st.rz.state(slot)} for slot, tag in self._rz_tag.items()}
            anomaly.update({tag: {"anomalous": self._det_anom.get(tag, False), "warm": self._st.dets[tag][0].is_warm}
                            for tag in self._det_of.values()})
            assets = {}
            for key, ax in self._assets.items():
                a = {}
                if ax.mv is not None:
                    a["anomaly"] = {"anomalous": ax.mv_active, "warm": ax.mv.is_warm, "points": ax.mv_names}
                if ax.rul is not None:
                    a["rul"] = ax.rul_last
                assets[key] = a
            return {"spc": spc, "anomaly": anomaly, "assets": assets}


@dataclass
class _Cfg:
    threshold: float
    alarm: bool


def _finite(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _h(seconds) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "unknown"
    s = float(seconds)
    if s >= 2 * 86400:
        return f"{s / 86400:.1f} d"
    if s >= 7200:
        return f"{s / 3600:.1f} h"
    return f"{s / 60:.0f} min"
