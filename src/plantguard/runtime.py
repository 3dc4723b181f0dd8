"""The running platform: configuration, store, point registry, pipeline, processors and sources, wired once.

The API and the CLI are thin shells over a Platform: every query and command they offer is a method here.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from plantguard.domain.index import PlantIndex
from plantguard.events import EventBus
from plantguard.domain.model import TAG_SEP, PlantConfig
from plantguard.config import parse_config
from plantguard.errors import ConfigError, ConfigProblem, InvalidInput, NotFound, PlantguardError
from plantguard.model_source import ModelFile, _has_file_version, model_document, resolve_model
from plantguard.ingest.pipeline import Pipeline
from plantguard.ingest.registry import PointRegistry
from plantguard.store import open_store
from plantguard.store.base import Series, Store
from plantguard.store.rollup import AGGREGATES, choose_tier
from plantguard.timeutil import Clock, now_us, parse_duration_us

log = logging.getLogger(__name__)

SUPERVISE_EVERY_S = 1.0
MAX_RAW_POINTS = 1_000_000
MAX_BUCKETS = 20_000
MAX_HISTORY_ROWS = 20_000_000  # a state point at 1 Hz for 93 days is 8 M rows
MAX_OEE_WINDOW_US = 93 * 86400 * 1_000_000
_NO_DATA = np.iinfo(np.int64).min


class Platform:
    def __init__(self, cfg: PlantConfig, *, store: Store | None = None, clock: Clock = now_us, alarms: bool = True,
                 analytics: bool = True, model_file: ModelFile | None = None) -> None:
        """`model_file` None: `cfg` is applied as given (programs embedding the platform, the demo, tests). With
        a ModelFile (`plantguard serve --config FILE`), the stored, versioned model is the truth once initialised
        and the file is applied only when it changed since it was last applied (see plantguard.model_source)."""
        self.clock = clock
        self._index: PlantIndex | None = None
        self.store = store if store is not None else open_store(cfg.storage)
        self.model_messages: list[str] = []
        try:
            if model_file is None:
                self.cfg = cfg
                self._pending_save: tuple | None = ("code", None)
            else:
                self.cfg, self._pending_save, self.model_messages = resolve_model(self.store, cfg, model_file)
            self.registry = PointRegistry()
            self.registry.load(self.store.load_points())
            self.registry.sync_config(self.cfg, self.store)
            if self._pending_save is not None:
                self._save_model_if_changed(self.cfg, origin=self._pending_save[0], file_sha=self._pending_save[1])
        except BaseException:
            if store is None:
                self.store.close()  # a refused start must not keep the data directory open
            raise
        cfg = self.cfg
        self.retention = {
            "raw": parse_duration_us(cfg.storage.retention_raw),
            "1m": parse_duration_us(cfg.storage.retention_1m),
            "1h": parse_duration_us(cfg.storage.retention_1h),
        }
        self.pipeline = Pipeline(
            self.store,
            self.registry,
            unknown_points=cfg.ingest.unknown_points,
            max_future_us=parse_duration_us(cfg.ingest.max_future),
            max_queue_readings=cfg.ingest.max_queue_readings,
            max_batch_readings=cfg.ingest.max_batch_readings,
            retention=self.retention,
            tick_us=parse_duration_us(cfg.alarms.check_interval),
            clock=clock,
        )
        self.bus = EventBus()  # typed in-process events: alarm changes, analytics conditions (plantguard.events)
        self.alarms = None
        self.notifier = None
        if alarms:
            from plantguard.alarms.engine import AlarmEngine
            from plantguard.alarms.notify import WebhookNotifier

            self.notifier = WebhookNotifier(cfg.alarms.webhooks) if cfg.alarms.webhooks else None
            self.alarms = AlarmEngine(cfg, self.registry, self.store, clock=clock, notifier=self.notifier, bus=self.bus)
            self.alarms.lag_us = self.pipeline.current_lag_us  # silence is judged against what was caught up
            self.pipeline.add_processor(self.alarms)
        self.analytics = None
        if analytics:
            from plantguard.ingest.analytics import CHECKPOINT_NAME, AnalyticsProcessor

            store_ = self.store
            self.analytics = AnalyticsProcessor(
                cfg, self.registry, alarms=self.alarms, clock=clock,
                sink=lambda w: store_.write_analytics(w, clock()),
                checkpoint=(lambda blob: store_.save_checkpoint(CHECKPOINT_NAME, blob, clock()),
                            lambda: store_.load_checkpoint(CHECKPOINT_NAME)))
            self.pipeline.add_processor(self.analytics)
        self.sources: list = []  # objects with start() / stop() / health() -> dict, optionally alive() / restart()
        self.supervisor_restarts: dict[str, int] = {}
        self._supervisor: threading.Thread | None = None
        self._supervisor_stop = threading.Event()
        self.lag_degraded_us = parse_duration_us(cfg.ingest.lag_degraded)
        self._model_lock = threading.Lock()
        self.started_at = now_us()  # wall time: an injected (simulation) clock must not distort uptime
        from plantguard.services import Services

        self.services = Services(self)  # what the API, the dashboard and the CLI call

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> "Platform":
        self.pipeline.start()
        if self.notifier is not None:
            self.notifier.start()
        if self.cfg.mqtt.enabled:
            from plantguard.connectors.mqtt.subscriber import MqttSource

            self.add_source(MqttSource(self.cfg.mqtt, self.pipeline, max_payload_bytes=self.cfg.ingest.max_payload_bytes))
        from plantguard.connectors.registry import validate as validate_connectors

        for cls, ccfg in validate_connectors(self.cfg.connectors):
            if ccfg.enabled:
                self.add_source(cls(ccfg, self.pipeline, clock=self.clock))
        return self

    def add_source(self, source) -> None:
        self.sources.append(source)
        source.start()
        self._start_supervisor()

    # -- supervision --------------------------------------------------------------------------------------
    def _start_supervisor(self) -> None:
        if self._supervisor is None or not self._supervisor.is_alive():
            self._supervisor_stop.clear()
            self._supervisor = threading.Thread(target=self._supervise, name="plantguard-supervisor", daemon=True)
            self._supervisor.start()

    def _supervise(self) -> None:
        """Restarts a source whose thread or loop died (health says so meanwhile). A source that keeps dying is
        restarted with a growing pause, so a crash loop cannot eat the machine."""
        pause: dict[int, float] = {}
        due: dict[int, float] = {}
        while not self._supervisor_stop.wait(SUPERVISE_EVERY_S):
            for src in list(self.sources):
                alive = getattr(src, "alive", None)
                try:
                    ok = alive() if callable(alive) else True
                except Exception:  # noqa: BLE001
                    ok = False
                if ok:
                    continue
                key = id(src)
                now = time.monotonic()
                if now < due.get(key, 0):
                    continue
                name = getattr(src, "name", type(src).__name__)
                log.error("source %s stopped running (its thread or loop died); restarting it", name)
                self.supervisor_restarts[name] = self.supervisor_restarts.get(name, 0) + 1
                try:
                    src.restart()
                except Exception:  # noqa: BLE001
                    log.exception("restarting source %s failed; will retry", name)
                pause[key] = min(60.0, pause.get(key, 0.5) * 2)
                due[key] = now + pause[key]

    def stop(self) -> None:
        """Sources first (nothing new arrives), then the pipeline drains what is queued, then the store closes."""
        self._supervisor_stop.set()
        if self._supervisor is not None:
            self._supervisor.join(5.0)
            self._supervisor = None
        for s in reversed(self.sources):
            try:
                s.stop()
            except Exception:  # noqa: BLE001
                log.exception("source failed to stop")
        self.sources.clear()
        self.pipeline.stop(drain=True)
        self.bus.close()
        if self.notifier is not None:
            self.notifier.stop()
        self.store.close()

    def __enter__(self) -> "Platform":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- plant model ------------------------------------------------------------------------------------
    def _save_model_if_changed(self, cfg: PlantConfig, *, origin: str = "api", file_sha: str | None = None,
                               actor: str | None = None) -> None:
        doc = model_document(cfg)
        cur = self.store.load_model()
        if cur is None or cur[1] != doc or (file_sha is not None and not _has_file_version(self.store, file_sha, cur[0])):
            self.store.save_model(doc, self.clock(), origin=origin, file_sha=file_sha, actor=actor)

    def _apply_model(self, cfg: PlantConfig) -> None:
        self.registry.sync_config(cfg, self.store)
        if self.alarms is not None:
            self.alarms.reload(cfg)
        if self.analytics is not None:
            self.analytics.reload(cfg)

    def replace_model(self, data: dict | PlantConfig, actor: str | None = None) -> PlantConfig:
        """Validates and applies a new plant model (raises ConfigError listing every problem).

        All or nothing: the model is validated completely first (ranges of every duration, count and limit, and
        the detectors and models it configures are built once on trial); if applying it still fails, the
        previous model is applied again and nothing is stored, so the store never holds a model the runtime
        cannot load."""
        cfg = data if isinstance(data, PlantConfig) else parse_config(data)
        with self._model_lock:
            # Platform settings (storage, api, mqtt) need a restart; only the plant hierarchy changes live.
            cfg = self.cfg.model_copy(update={"sites": cfg.sites})
            old = self.cfg
            try:
                self._apply_model(cfg)
            except Exception as e:  # noqa: BLE001 - roll back, then report the failure as a refused model
                log.exception("applying the new plant model failed; the previous model is applied again")
                try:
                    self._apply_model(old)
                except Exception:  # noqa: BLE001
                    log.exception("re-applying the previous plant model failed too")
                raise ConfigError([ConfigProblem("", f"the model could not be applied ({type(e).__name__}: {e}); "
                                                     "nothing was changed")]) from None
            self._save_model_if_changed(cfg, origin="api", actor=actor)
            self.cfg = cfg
        return cfg

    def model_version(self) -> int:
        cur = self.store.load_model()
        return cur[0] if cur else 0

    def auto_points(self, prefix: str | None = None) -> list[tuple[str, dict]]:
        """Points registered by the auto_register policy (not in the plant model), as (tag, meta)."""
        return [(tag, meta) for _, tag, meta in self.registry.rows(prefix, auto_only=True)]

    # -- telemetry queries ------------------------------------------------------------------------------
    def pid_of(self, tag: str) -> int:
        pid = self.registry.pid(tag)
        if pid is None:
            raise NotFound(f"unknown point {tag!r}")
        return pid

    def query_raw(self, tag: str, start: int, end: int, limit: int = 10_000) -> Series:
        if end <= start:
            raise InvalidInput("end must be after start")
        if not 1 <= limit <= MAX_RAW_POINTS:
            raise InvalidInput(f"limit must be between 1 and {MAX_RAW_POINTS}")
        return self.store.raw(self.pid_of(tag), start, end, limit)

    def query_downsample(self, tag: str, start: int, end: int, *, buckets: int | None = None, width: int | None = None,
                         agg: str = "avg") -> tuple[Series, str, int]:
        """Returns (series, tier used, effective bucket width in us)."""
        if end <= start:
            raise InvalidInput("end must be after start")
        if agg not in AGGREGATES:
            raise InvalidInput(f"aggregate must be one of {', '.join(AGGREGATES)}")
        now = self.clock()
        if width is None:
            if buckets is None or buckets < 1:
                raise InvalidInput("give either buckets (>= 1) or a bucket width")
            if buckets > MAX_BUCKETS:
                raise InvalidInput(f"at most {MAX_BUCKETS} buckets per query")
            # Buckets are aligned to multiples of their width, so [start, end) can touch one more than
            # span / width of them: widen until at most `buckets` are touched (two steps at most in practice).
            for k in range(buckets, max(0, buckets - 10), -1):
                width = max(1, -(-(end - start) // k))
                tier, eff = choose_tier(width, start, now, self.retention)
                if (end - 1) // eff - start // eff + 1 <= buckets:
                    break
            else:  # a few buckets over a range that straddles a boundary: widen until it fits
                for _ in range(64):
                    width *= 2
                    tier, eff = choose_tier(width, start, now, self.retention)
                    if (end - 1) // eff - start // eff + 1 <= buckets:
                        break
            return self.store.downsample(self.pid_of(tag), start, end, eff, agg, tier), tier, eff
        if width < 1:
            raise InvalidInput("bucket width must be positive")
        if (end - start) // width > MAX_BUCKETS:
            raise InvalidInput(f"at most {MAX_BUCKETS} buckets per query")
        tier, eff = choose_tier(width, start, now, self.retention)
        return self.store.downsample(self.pid_of(tag), start, end, eff, agg, tier), tier, eff

    def latest(self, tags: list[str]) -> dict[str, dict | None]:
        """Newest reading of each tag, served from the pipeline's in-memory state (exact: it only ever
        advances after a durable write). Vectorised: 10,000 tags cost a few milliseconds."""
        lt = self.pipeline.latest
        ts_a, v_a, q_a = lt.ts, lt.value, lt.quality  # one snapshot of the references
        pid = self.registry.resolve(tags)
        ok = (pid >= 0) & (pid < len(ts_a))
        safe = np.where(ok, pid, 0)
        ts = np.where(ok, ts_a[safe], _NO_DATA)
        has = (ts != _NO_DATA).tolist()
        return {
            t: ({"ts": a, "value": b, "quality": c} if h else None)
            for t, a, b, c, h in zip(tags, ts.tolist(), v_a[safe].tolist(), q_a[safe].tolist(), has)
        }

    # -- analytics ----------------------------------------------------------------------------------------
    def analytics_live(self) -> dict:
        """SPC status and limits per point, anomaly state per point and asset, latest RUL per asset (in memory)."""
        if self.analytics is None:
            return {"spc": {}, "anomaly": {}, "assets": {}}
        return self.analytics.live()

    def analytics_series(self, key: str, start: int, end: int, *, buckets: int | None = None, agg: str = "max") -> dict:
        if end <= start:
            raise InvalidInput("end must be after start")
        width = None
        if buckets is not None:
            if not 1 <= buckets <= MAX_BUCKETS:
                raise InvalidInput(f"buckets must be between 1 and {MAX_BUCKETS}")
            width = max(1, -(-(end - start) // buckets))
        d = self.store.analytics_series(key, start, end, width=width, agg=agg)
        return {"key": key, "ts": d.ts, "value": d.value, "lower": d.lower, "upper": d.upper, "width_us": width}

    def analytics_events(self, **kw) -> list:
        return self.store.analytics_events(**kw)

    def spc_report(self, tag: str, start: int, end: int) -> dict:
        """A point's SPC: status and limits (live), the capability over [start, end) against its spec limits,
        and the violations recorded in that window."""
        from plantguard.analytics.spc.capability import capability

        pid = self.pid_of(tag)
        point = self._point_cfg(tag)
        spc = point.analytics.spc if point is not None and point.analytics is not None else None
        if spc is None:
            raise NotFound(f"point {tag!r} has no SPC configured (analytics.spc in the plant model)")
        live = self.analytics_live()["spc"].get(tag, {})
        out = {"tag": tag, "unit": point.unit, "settings": spc.model_dump(mode="json"), **live, "capability": None,
               "capability_error": None}
        if spc.lsl is not None or spc.usl is not None:
            raw = self.store.raw(pid, start, end, MAX_RAW_POINTS)
            keep = raw.quality == 0 if raw.quality is not None else np.ones(len(raw.ts), bool)
            gate = self._state_gate(tag, point)
            if gate is not None:
                # only readings taken while the machine was in an allowed state, as the live SPC judged them
                state_tag, allowed, lookback = gate
                st = self.store.raw(self.pid_of(state_tag), start - lookback, end, MAX_HISTORY_ROWS)
                pos = np.searchsorted(st.ts, raw.ts, "right") - 1
                state = np.where(pos >= 0, st.value[np.maximum(pos, 0)] if len(st.ts) else np.nan, np.nan)
                keep &= np.isin(state, allowed)
                out["only_when"] = list(point.analytics.only_when)
                out["readings_excluded_by_state"] = int((~np.isin(state, allowed)).sum())
            vals = raw.value[keep]
            try:
                cap = capability(vals, lsl=spc.lsl, usl=spc.usl)
                out["capability"] = _plain(cap)
            except PlantguardError as e:
                out["capability_error"] = str(e)  # e.g. too few readings in the window: a state, not a failure
        out["violations"] = [e.as_dict() for e in self.store.analytics_events(kind="spc", key=f"spc/{tag}", since=start, until=end, limit=1000)]
        return out

    def _state_gate(self, tag: str, point) -> tuple[str, np.ndarray, int] | None:
        """(state point tag, allowed state codes, lookback us) when the point's analytics run only in some
        machine states (analytics.only_when), else None."""
        from plantguard.domain.model import state_gate

        ref = self.index.point(tag)
        gate = state_gate(ref.line, ref.asset, point) if ref is not None and point is not None else None
        if gate is None:
            return None
        lookback = int((ref.line.oee.max_gap_s or 86400) * 1e6)
        return f"{TAG_SEP.join(tag.split(TAG_SEP)[:4])}/{gate[0]}", np.array(gate[1], np.float64), lookback

    @property
    def index(self) -> PlantIndex:
        """O(1) lookups by path in the current plant model (rebuilt when the model changes)."""
        idx = self._index
        if idx is None or idx.cfg is not self.cfg:
            idx = self._index = PlantIndex(self.cfg)
        return idx

    def _point_cfg(self, tag: str):
        ref = self.index.point(tag)
        return None if ref is None else ref.point

    def _line_cfg(self, line_path: str):
        ref = self.index.require_line(line_path)
        return ref.site, ref.line

    def _history(self, tag: str, start: int, end: int) -> Series:
        return self.store.raw(self.pid_of(tag), start, end, MAX_HISTORY_ROWS)

    def oee(self, line_path: str, start: int, end: int, by: str = "shift") -> dict:
        """OEE of a line per shift, day, hour or for the whole window ('total'), with the six big losses."""
        from dataclasses import asdict

        from plantguard.analytics.oee import MachineData, OeeConfig, combine, line_oee_by
        from plantguard.analytics.shifts import Period, ShiftCalendar

        if end <= start:
            raise InvalidInput("end must be after start")
        if end - start > MAX_OEE_WINDOW_US:
            raise InvalidInput("an OEE window is at most 93 days; ask for several")
        site, ln = self._line_cfg(line_path)
        o = ln.oee
        if o is None:
            raise NotFound(f"line {line_path!r} has no OEE configured (oee in the plant model)")
        cfg = OeeConfig(categories=dict(o.state_categories), ideal_rate_per_h=o.ideal_rate_per_h, ideal_cycle_s=o.ideal_cycle_s,
                        max_gap_s=o.max_gap_s, minor_stop_max_s=o.minor_stop_max_s, startup_window_s=o.startup_window_s,
                        counter_modulus=o.counter_modulus, min_coverage=o.min_coverage)
        if by == "total":
            periods = [Period("total", start, end)]
        else:
            cal = ShiftCalendar(site.timezone, [(x.name, x.start, x.end) for x in site.shifts], day_start=site.day_start)
            periods = cal.periods(start, end, by=by)
        lookback = int((o.max_gap_s or 86400) * 1e6)
        machines, names = [], []
        counting = len(ln.assets) - 1
        for i, asset in enumerate(ln.assets):
            paths = {p.id: f"{line_path}/{asset.id}/{d.id}/{p.id}" for d in asset.devices for p in d.points}
            if o.state_point not in paths or o.good_point not in paths:
                continue
            if asset.id == o.counting_asset:
                counting = len(machines)
            elif o.counting_asset is None and i == len(ln.assets) - 1:
                counting = len(machines)
            bad = self._history(paths[o.bad_point], start - lookback, end) if o.bad_point in paths else (np.zeros(0, np.int64), np.zeros(0))
            machines.append(MachineData(self._history(paths[o.state_point], start - lookback, end),
                                        self._history(paths[o.good_point], start - lookback, end), bad))
            names.append(asset.id)
        if not machines:
            raise NotFound(f"no asset of line {line_path!r} has the points {o.state_point!r} and {o.good_point!r}")
        counting = min(counting, len(machines) - 1)
        results = line_oee_by(periods, machines, cfg, counting_machine=counting)
        total = combine(results, label="total", min_coverage=o.min_coverage) if len(results) > 1 else results[0]
        return {"line": line_path, "by": by, "timezone": site.timezone, "counting_asset": names[counting],
                "ideal_rate_per_h": 3600.0 / cfg.cycle_s, "periods": [_plain(asdict(r)) for r in results],
                "total": _plain(asdict(total))}

    def maintenance_kpis(self, asset_path: str, start: int, end: int) -> dict:
        """MTBF, MTTR, availability from the asset's state point; defect rate and first-pass yield from its counters."""
        from dataclasses import asdict

        from plantguard.analytics.kpi import maintenance_kpis, quality_kpis_from_counters

        if end <= start:
            raise InvalidInput("end must be after start")
        if end - start > MAX_OEE_WINDOW_US:
            raise InvalidInput("a KPI window is at most 93 days; ask for several")
        line_path, _, asset_id = asset_path.rpartition("/")
        _site, ln = self._line_cfg(line_path)
        asset = next((a for a in ln.assets if a.id == asset_id), None)
        if asset is None:
            raise NotFound(f"no asset {asset_path!r}")
        o = ln.oee
        if o is None:
            raise NotFound(f"line {line_path!r} has no OEE configured: its state categories define failures")
        paths = {p.id: f"{asset_path}/{d.id}/{p.id}" for d in asset.devices for p in d.points}
        if o.state_point not in paths:
            raise NotFound(f"asset {asset_path!r} has no state point {o.state_point!r}")
        lookback = int((o.max_gap_s or 86400) * 1e6)
        states = self._history(paths[o.state_point], start - lookback, end)
        m = maintenance_kpis(states, start, end, dict(o.state_categories), max_gap_s=o.max_gap_s, min_failure_s=o.min_failure_s)
        out = {"asset": asset_path, "maintenance": _plain(asdict(m)), "quality": None}
        if o.good_point in paths and o.bad_point in paths:
            q = quality_kpis_from_counters(self._history(paths[o.good_point], start - lookback, end),
                                           self._history(paths[o.bad_point], start - lookback, end), start, end,
                                           counter_modulus=o.counter_modulus)
            out["quality"] = _plain(asdict(q))
        return out

    # -- health -----------------------------------------------------------------------------------------
    def health(self) -> dict:
        st = self.pipeline.stats
        writer_alive = self.pipeline.alive
        sources = {}
        for s in self.sources:
            try:
                sources[getattr(s, "name", type(s).__name__)] = s.health()
            except Exception as e:  # noqa: BLE001
                sources[getattr(s, "name", type(s).__name__)] = {"ok": False, "error": str(e)}
        for name, v in sources.items():
            v["supervisor_restarts"] = self.supervisor_restarts.get(name, 0)
        lag_now = self.pipeline.current_lag_us()
        lagging = lag_now > self.lag_degraded_us
        problems = []
        if not writer_alive:
            problems.append("the ingest writer thread is not running")
        if lagging:
            problems.append(f"ingest lags: the oldest waiting reading has waited {lag_now / 1e6:.1f} s "
                            f"(threshold ingest.lag_degraded {self.lag_degraded_us / 1e6:g} s)")
        problems += [f"source {n} is not healthy" + (": its thread or loop died" if v.get("thread_alive") is False else "")
                     for n, v in sources.items() if not v.get("ok", True)]
        ok = not problems
        return {
            "status": "ok" if ok else "degraded",
            "problems": problems,
            "store": self.store.kind,
            "writer_alive": writer_alive,
            "points": len(self.registry),
            "pipeline": {
                "accepted": st.accepted, "rejected": st.rejected, "duplicates": st.duplicates,
                "queued_readings": st.queued_readings, "lag_ms_last": st.lag_us_last / 1000, "lag_ms_max": st.lag_us_max / 1000,
                "lag_ms_now": lag_now / 1000, "lagging": lagging, "lag_degraded_ms": self.lag_degraded_us / 1000,
                "write_errors": st.write_errors, "processor_errors": st.processor_errors,
            },
            "sources": sources,
            "uptime_s": (now_us() - self.started_at) / 1e6,
        }


def _plain(x):
    """Dataclasses, tuples, numpy scalars and non-finite floats as JSON-ready values (NaN/inf -> None)."""
    import dataclasses
    import math

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        x = dataclasses.asdict(x)
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
