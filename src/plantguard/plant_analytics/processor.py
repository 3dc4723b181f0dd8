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
from plantguard.analytics.spc.bank import IN_CONTROL, INSUFFICIENT_DATA, NO_VARIATION, OUT_OF_CONTROL, SpcBank, SlotSettings
from plantguard.domain.analytics import AnalyticsWrite
from plantguard.domain.index import PlantIndex
from plantguard.domain.fields import us_of
from plantguard.domain.model import PlantConfig, SpcSettings, state_gate
from plantguard.domain.partition import partition_key
from plantguard.domain.readings import PointBatch, Quality
from plantguard.events import ConditionChange, ConditionsChanged, ExternalRule, ExternalRulesDeclared
from plantguard.timeutil import Clock, parse_duration_us
from plantguard.plant_analytics.anomaly import AnomalyPart
from plantguard.plant_analytics.common import _S
from plantguard.domain.partition import ANALYTICS_CHECKPOINT as CHECKPOINT_NAME  # one name for the writer and readers
from plantguard.plant_analytics.assets import AssetPart
from plantguard.plant_analytics.spc import _CODE_OF, _N_CODES, SpcPart

log = logging.getLogger(__name__)


def _digest(settings) -> str:
    """A short fingerprint of a settings model: checkpoints keep it per key (not the settings) to tell whether
    the learned state still matches the configuration."""
    import hashlib

    return hashlib.blake2b(settings.model_dump_json().encode(), digest_size=8).hexdigest()


def _rule_bits(rules: list[str]) -> int:
    return sum(1 << c for r in rules for c in _CODE_OF[r])


STATE_NAMES = {INSUFFICIENT_DATA: "insufficient_data", IN_CONTROL: "in_control", OUT_OF_CONTROL: "out_of_control",
               NO_VARIATION: "no_variation"}


def _kept(table: dict, key: str, settings: str):
    """What `table` kept for `key` (a slot, a detector, a model) when it was built with the same `settings`, else
    None: a reload keeps the learned state of what did not change."""
    old = table.get(key)
    return old[0] if old is not None and old[1] == settings else None


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
    # SPC alarm memory per tag (violation mask of the last 64 points, its point index, newest index per rule):
    # filled when a checkpoint is written, applied once when one is restored
    spc_memory: dict[str, tuple[int, int, list[int]]] = field(default_factory=dict)


def _spc_slot_settings(s: SpcSettings, period_us: int) -> SlotSettings:
    return SlotSettings(baseline=s.baseline, lam=s.ewma_lambda, L=s.ewma_l, k=s.cusum_k, h=s.cusum_h,
                        rules=s.rules if isinstance(s.rules, str) else tuple(s.rules), reset_on_signal=True)


class AnalyticsProcessor(SpcPart, AnomalyPart, AssetPart):
    """Pipeline processor; see the module docstring."""

    name = "analytics"

    def __init__(self, cfg: PlantConfig, registry, *, sink: Callable[[AnalyticsWrite], None],
                 alarms=None, publish=None, clock: Clock, checkpoint: tuple[Callable[[str, bytes], None], Callable[[str], bytes | None]] | None = None,
                 store_interval: str | float = "10s", rul_interval: str | float = "1m", checkpoint_every: str | float = "5m",
                 keys=None, legacy_checkpoints: bool = False) -> None:
        """`keys`: the state key ring that seals checkpoints (plantguard.keys); `legacy_checkpoints`: accept the
        unsealed checkpoints of earlier versions (once, on the start that makes the key ring)."""
        self.registry = registry
        self.sink = sink
        self.alarms = alarms  # read only (is an alarm active?): the alarm service, or None without alarms
        # conditions and declared rules go out as events (the alarm engine subscribes); none without alarms
        self._publish = publish if publish is not None and alarms is not None else (lambda event: None)
        self.clock = clock
        self._save_ckpt, self._load_ckpt = checkpoint if checkpoint else (None, None)
        self._keys, self._legacy = keys, legacy_checkpoints
        self.store_interval = parse_duration_us(store_interval)
        self.rul_interval = parse_duration_us(rul_interval)
        self.checkpoint_every = parse_duration_us(checkpoint_every)
        self._lock = threading.RLock()
        self.partition_by = cfg.ingest.partition_by
        self._st = self._restore(cfg) or _State()
        self._last_ckpt = clock()
        self.stats = {"readings": 0, "events": 0, "series_rows": 0, "errors": 0}
        self.reload(cfg)

    # -- configuration ------------------------------------------------------------------------------------
    def _partition_keys(self, cfg: PlantConfig) -> list[str]:
        idx = PlantIndex(cfg)
        keys = {partition_key(r.tag, self.partition_by) for r in idx.points()}
        keys |= {partition_key(r.path, self.partition_by) for r in idx.assets()}
        return sorted(keys)

    def _restore(self, cfg: PlantConfig) -> _State | None:
        """Every partition's checkpoint of the current model; one that cannot be used is relearnt alone. A
        checkpoint written before partitions (one `analytics` blob) is read when no partition has one."""
        if self._load_ckpt is None:
            return None
        from plantguard.plant_analytics.partitions import merge

        parts = []
        for key in self._partition_keys(cfg):
            st = self._load_one(f"{CHECKPOINT_NAME}@{key}")
            if st is not None:
                parts.append(st)
        if not parts:
            st = self._load_one(CHECKPOINT_NAME)
            return st
        try:
            st = merge(parts)
        except Exception as e:  # noqa: BLE001 - checkpoints that load but do not fit together must not stop the start
            log.error("analytics checkpoints not usable together (%s: %s); learning the state from scratch", type(e).__name__, e)
            return None
        log.info("analytics state restored from %d partition checkpoint(s) (%d SPC, %d anomaly, %d asset)", len(parts),
                 len(st.spc_keys), len(st.rz_keys) + len(st.dets), len(st.assets_mv) + len(st.assets_rul))
        return st

    def _load_one(self, name: str) -> _State | None:
        try:
            blob = self._load_ckpt(name)
            if not blob:
                return None
            st = checkpoints.loads(blob, CHECKPOINT_NAME, self._keys, legacy=self._legacy)
            if not isinstance(st, _State):
                raise checkpoints.CheckpointError(f"holds a {type(st).__name__}, not the analytics state")
            if self._legacy and self._keys is not None and not checkpoints.is_sealed(blob):
                self._save_ckpt(name, checkpoints.dumps(st, CHECKPOINT_NAME, self._keys))  # migrated: sealed now
                log.info("analytics checkpoint %r of an earlier version sealed with the state key", name)
            return st
        except Exception as e:  # noqa: BLE001 - a bad checkpoint must not stop the platform: relearn instead
            log.error("analytics checkpoint %r not usable (%s); learning its state from scratch", name, e)
            return None

    # -- partitions (a worker taking one over) ------------------------------------------------------------------
    def partition_state(self, key: str) -> bytes:
        """The learned state of one partition, as the checkpoint that a worker taking it over loads."""
        from plantguard.plant_analytics.partitions import split

        with self._lock:
            self._remember_spc()
            part = split(self._st, lambda p: partition_key(p, self.partition_by)).get(key) or _State()
            return checkpoints.dumps(part, CHECKPOINT_NAME, self._keys)

    def _remember_spc(self) -> None:
        n = len(self._spc_vidx)
        self._st.spc_memory = {tag: (int(self._spc_mask[s]), int(self._spc_vidx[s]), self._spc_prev[s].tolist())
                               for s, tag in self._spc_tag.items() if s < n}

    def adopt(self, blob: bytes, cfg: PlantConfig) -> None:
        """Takes over a partition's learned state (from partition_state or its checkpoint): its keys replace the
        ones held here, then the model is applied again (keys whose settings changed start afresh)."""
        from plantguard.plant_analytics.partitions import merge

        st = checkpoints.loads(blob, CHECKPOINT_NAME, self._keys)
        if not isinstance(st, _State):
            raise checkpoints.CheckpointError(f"holds a {type(st).__name__}, not the analytics state")
        with self._lock:
            merge([st], into=self._st)
            self.reload(cfg)

    def reload(self, cfg: PlantConfig) -> None:
        """(Re)builds the analytics from the plant model. Keys whose settings did not change keep their state."""
        with self._lock:
            st = self._st
            n = max(self.registry.tags, default=-1) + 1
            spc_of, rz_of, det_of, shadow, spc_tag, rz_tag, spc_cfg, anom_cfg = self._point_slots(cfg, st, n)
            assets = self._asset_parts(cfg, st)
            self._spc_of, self._rz_of, self._det_of, self._shadow = spc_of, rz_of, det_of, shadow
            self._build_gates(cfg, n)
            self._spc_tag, self._rz_tag, self._spc_cfg, self._anom_cfg = spc_tag, rz_tag, spc_cfg, anom_cfg
            self._assets = assets
            self._asset_of_pid: dict[int, list[_Asset]] = {}
            for ax in assets.values():
                for pid in set(ax.mv_pids + ([ax.rul_pid] if ax.rul is not None else [])):
                    self._asset_of_pid.setdefault(pid, []).append(ax)
            self._any = bool(spc_tag or rz_tag or det_of or assets)
            self._spc_bookkeeping(st, spc_tag, spc_cfg)
            self._rz_anom = np.zeros(len(st.rz), bool)
            for slot, tag in rz_tag.items():
                self._rz_anom[slot] = self._alarm_active(f"{tag}:ANOMALY")
            self._det_anom = {tag: self._alarm_active(f"{tag}:ANOMALY") for tag in det_of.values()}
            self._declare_alarms(cfg)

    def _point_slots(self, cfg: PlantConfig, st, n: int) -> tuple:
        """Per point: its SPC slot, robust-z slot or detector (kept when its settings did not change)."""
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
                kept = _kept(st.spc_keys, tag, settings)
                if kept is not None:
                    slot = kept
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
                    kept = _kept(st.rz_keys, tag, settings)
                    if kept is not None:
                        slot = kept
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
                    kept = _kept(st.dets, tag, settings)
                    if kept is not None:
                        det = kept
                    else:
                        det = Thresholded(load_detector(an.anomaly.detector)(**an.anomaly.params), threshold=an.anomaly.threshold)
                    keep_det[tag] = (det, settings)
                    det_of[pid] = tag
                    anom_cfg[tag] = an.anomaly
        st.spc_keys, st.rz_keys, st.dets = keep_spc, keep_rz, keep_det

        return spc_of, rz_of, det_of, shadow, spc_tag, rz_tag, spc_cfg, anom_cfg

    def _asset_parts(self, cfg: PlantConfig, st) -> dict:
        """Per asset: its multivariate detector and RUL model (kept when their settings did not change)."""
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
                kept = _kept(st.assets_mv, key, settings)
                if kept is not None:
                    ax.mv = kept
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
                kept = _kept(st.assets_rul, key, settings)
                if kept is not None:
                    ax.rul = kept
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

        return assets

    def _spc_bookkeeping(self, st, spc_tag: dict, spc_cfg: dict) -> None:
        """The SPC alarm memory per slot, grown to the bank and restored from a checkpoint's memory."""
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
        mem = getattr(st, "spc_memory", None)  # a checkpoint from before the field existed has none
        if mem:
            for slot, tag in spc_tag.items():
                if tag in mem:
                    m, vidx, prev = mem[tag]
                    self._spc_mask[slot], self._spc_vidx[slot] = np.uint64(m), vidx
                    self._spc_prev[slot] = prev
        st.spc_memory = {}

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
            from plantguard.plant_analytics.partitions import split

            try:
                self._remember_spc()
                parts = split(self._st, lambda p: partition_key(p, self.partition_by))
            except Exception:  # noqa: BLE001 - retried at the next interval; the live state is intact
                self.stats["errors"] += 1
                log.exception("cutting the analytics state by partition failed")
                return
            for key, part in parts.items():
                try:
                    self._save_ckpt(f"{CHECKPOINT_NAME}@{key}", checkpoints.dumps(part, CHECKPOINT_NAME, self._keys))
                except Exception:  # noqa: BLE001 - one partition failing must not keep the others from saving
                    self.stats["errors"] += 1
                    log.exception("saving the analytics checkpoint of partition %s failed", key)

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
