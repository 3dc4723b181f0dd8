"""The running platform, the composition root: configuration, store, point registry, pipeline, event bus,
processors, sources and services, wired once, started and stopped in order.

Each capability is built from its Context and returns its Parts (plantguard.capabilities); the API, the dashboard and
the CLI are thin shells over the typed `Services` this assembles (plantguard.services).
"""

from __future__ import annotations

import logging
import threading


from plantguard import capabilities
from plantguard.domain.actor import Actor
from plantguard.domain.index import PlantIndex
from plantguard.events import EventBus, ModelChanged
from plantguard.supervisor import Supervisor
from plantguard.domain.fields import us_of
from plantguard.domain.model import PlantConfig
from plantguard.config import parse_config
from plantguard.errors import ConfigError, ConfigProblem
from plantguard.model_source import ModelFile, _has_file_version, model_document, resolve_model
from plantguard.ingest.pipeline import Pipeline
from plantguard.ingest.registry import PointRegistry
from plantguard.store import open_store
from plantguard.store.base import Store
from plantguard.timeutil import Clock, now_us

log = logging.getLogger(__name__)



class Platform:
    def __init__(self, cfg: PlantConfig, *, store: Store | None = None, clock: Clock = now_us, alarms: bool = True,
                 analytics: bool = True, model_file: ModelFile | None = None) -> None:
        """`model_file` None: `cfg` is applied as given (programs embedding the platform, the demo, tests). With
        a ModelFile (`plantguard serve --config FILE`), the stored, versioned model is the truth once initialised
        and the file is applied only when it changed since it was last applied (see plantguard.model_source)."""
        self.clock = clock
        capabilities.registered()  # their migrations must be known before the store migrates
        self._index: PlantIndex | None = None
        if store is None or cfg.storage.backend == "embedded":
            from plantguard.fsperm import secure_data_dir

            secure_data_dir(cfg.storage.data_dir)  # owner-only, fixed with a log line if it was not
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
                origin = self._pending_save[0]
                who = str(Actor.cli()) if origin == "file" else None  # a file applied at start: this machine's user
                self._save_model_if_changed(self.cfg, origin=origin, file_sha=self._pending_save[1], actor=who)
        except BaseException:
            if store is None:
                self.store.close()  # a refused start must not keep the data directory open
            raise
        cfg = self.cfg
        self.retention = {
            "raw": us_of(cfg.storage.retention_raw),
            "1m": us_of(cfg.storage.retention_1m),
            "1h": us_of(cfg.storage.retention_1h),
        }
        self.pipeline = Pipeline(
            self.store,
            self.registry,
            unknown_points=cfg.ingest.unknown_points,
            max_future_us=us_of(cfg.ingest.max_future),
            max_queue_readings=cfg.ingest.max_queue_readings,
            max_batch_readings=cfg.ingest.max_batch_readings,
            max_payload_bytes=cfg.ingest.max_payload_bytes,
            retention=self.retention,
            tick_us=us_of(cfg.alarms.check_interval),
            clock=clock,
        )
        self._spill = self._open_spill(cfg)
        self.bus = EventBus()  # typed in-process events: alarm changes, analytics conditions (plantguard.events)
        self.sources: list = []  # objects with start() / stop() / health() -> dict, optionally alive() / restart()
        self._supervisor = Supervisor(lambda: self.sources)
        self.started_at = now_us()  # wall time: an injected (simulation) clock must not distort uptime
        self._model_lock = threading.Lock()
        self._build_capabilities(skip={n for n, on in (("alarms", alarms), ("analytics", analytics)) if not on})

    def _open_spill(self, cfg: PlantConfig):
        """The disk buffer for a store outage: the gateway's checksummed queue, replayed by the writer."""
        on = cfg.ingest.spill == "on" or (cfg.ingest.spill == "auto" and self.store.kind == "postgres")
        if not on:
            return None
        from pathlib import Path

        from plantguard.connectors.gateway.codec import decode_record
        from plantguard.connectors.gateway.queue import GatewayQueue

        q = GatewayQueue(Path(cfg.storage.data_dir) / "spill", max_bytes=cfg.ingest.spill_max_bytes, overflow="reject_new",
                         min_free_bytes=16 << 20, clock=self.clock)
        self.pipeline.spill, self.pipeline.spill_decode = q, decode_record
        return q

    def _build_capabilities(self, skip: set[str]) -> None:
        """Each capability in order gets its Context and returns its Parts; the platform wires them (processors
        on the pipeline, the diverter, hooks on each source) and assembles the typed services."""
        from pathlib import Path

        from plantguard.auditing import AuditTrail
        from plantguard.capabilities import Context, LogAudit, frozen, store_view
        from plantguard.services import AlarmService, AnalyticsService, Services
        from plantguard.services._base import Core

        cfg = self.cfg
        core = Core(points=self.registry, pipeline=self.pipeline, clock=self.clock, model=lambda: self.cfg,
                    index=lambda: self.index, retention=self.retention, bus=self.bus)
        from plantguard.services import ModelService, PartitionService, PerformanceService, StatusService, TelemetryService

        telemetry = TelemetryService(core, self.store)
        own = {"clock": self.clock, "telemetry": telemetry,
               "model": ModelService(self.store, current=lambda: self.cfg, replace=self.replace_model, index=lambda: self.index,
                                     messages=self.model_messages),
               "status": StatusService(core, store_kind=self.store.kind, sources=lambda: list(self.sources),
                                       restarts=self._supervisor.restarts, lag_degraded_us=us_of(cfg.ingest.lag_degraded),
                                       started_at=self.started_at),
               "performance": PerformanceService(core, self.store), "partitions": PartitionService(core, self.store)}
        built: dict = {}
        self._on_start: list = []
        self._on_stop: list = []
        self._on_model: list = []
        self._source_hooks: dict = {}
        audit = LogAudit()
        for cap in capabilities.registered():
            if cap.name in skip or cap.build is None:
                continue
            ctx = Context(name=cap.name, config=cfg.section(cap.name) if cap.section is not None else None, model=cfg,
                          index=lambda: self.index, points=self.registry, bus=self.bus, clock=self.clock,
                          store=store_view(self.store, cap.stores), audit=built.get("audit") or audit,
                          data_dir=Path(cfg.storage.data_dir), key_dir=Path(cfg.storage.key_dir) if cfg.storage.key_dir else None,
                          services=frozen({**own, **built}), sink=self.pipeline, add_source=self.add_source, submit=telemetry.submit,
                          ingest_lag_us=self.pipeline.current_lag_us, write_point=self.write_point,
                          writable=self.writable)
            parts = cap.build(ctx)
            for proc in parts.processors:
                self.pipeline.add_processor(proc)
            if parts.diverter is not None:
                if self.pipeline.diverter is not None:
                    raise ValueError(f"capability {cap.name!r} sets a diverter; another capability already did")
                self.pipeline.diverter = parts.diverter
            dup = set(parts.services) & set(built)
            if dup:
                raise ValueError(f"capability {cap.name!r} returns service {sorted(dup)[0]!r}, which another returned")
            built.update(parts.services)
            for name, hook in parts.source_hooks.items():
                if name in self._source_hooks:
                    raise ValueError(f"two capabilities set the source hook {name!r}")
                self._source_hooks[name] = hook
            self._on_start += parts.on_start
            self._on_stop += parts.on_stop
            self._on_model += parts.on_model
        # one audit path: the operator actions, model edits and device writes the platform publishes, recorded by
        # one subscriber into the security capability's log (or the log file without it)
        self._audit = AuditTrail(built.get("audit") or audit)
        self._audit.subscribe(self.bus)
        self.services = Services.assemble(own, built, defaults={
            "alarms": AlarmService(None, self.store), "analytics": AnalyticsService(core, self.store)})

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> "Platform":
        self.pipeline.start()
        for hook in self._on_start:
            hook()
        from plantguard.connectors.registry import validate as validate_connectors

        for cls, ccfg in validate_connectors(self.cfg.connectors):
            if ccfg.enabled:
                self.add_source(cls(ccfg, self.pipeline, clock=self.clock))
        return self

    def add_source(self, source) -> None:
        # the composition root wires its sources: the hooks capabilities declared (the security capability's
        # write gate and security signal) on a source that has them, and writes to devices into the audit trail
        for name, hook in self._source_hooks.items():
            if hasattr(source, name):
                setattr(source, name, hook)
        if callable(getattr(source, "write", None)) and callable(getattr(source, "audit", None)):
            own, trail = source.audit, self._audit.device_write  # the connector's own record (its log), then the trail

            def audit_write(rec: dict) -> None:
                own(rec)
                trail(rec)

            source.audit = audit_write
        self.sources.append(source)
        source.start()
        self._supervisor.ensure_running()

    def write_point(self, point: str, value: float, actor: str) -> dict:
        """A write to a device through the source that owns the point: gated (quarantine, write windows) and
        audited by that source like any other write."""
        import asyncio

        for s in list(self.sources):
            owns = getattr(s, "writes_point", None)
            if callable(owns) and owns(point):
                return asyncio.run(s.write(point, value, actor))
        raise ConfigError([ConfigProblem("", f"no running source writes {point}")])

    def writable(self, point: str) -> str | None:
        """Why the configuration does not allow writes to this tag, or None."""
        from plantguard.connectors.registry import writable_tags

        if self.index.point(point) is None:
            return f"{point} is not a point of the plant model"
        return None if point in writable_tags(self.cfg.connectors) else "no connector configures it writable (writable: true)"

    def stop(self) -> None:
        """Sources first (nothing new arrives), then the pipeline drains what is queued, then the store closes."""
        self._supervisor.stop()
        for s in reversed(self.sources):
            try:
                s.stop()
            except Exception:  # noqa: BLE001
                log.exception("source failed to stop")
        self.sources.clear()
        self.pipeline.stop(drain=True)
        if self._spill is not None:
            self._spill.close()  # what is left replays at the next start
        self.bus.close()
        for hook in reversed(self._on_stop):
            try:
                hook()
            except Exception:  # noqa: BLE001 - one capability failing to stop must not keep the store open
                log.exception("a capability failed to stop")
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
        for reload in self._on_model:  # in capability order: the alarm engine before analytics declares rules
            reload(cfg)

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
            self.bus.publish(ModelChanged(self.model_version(), "api", actor))
        return cfg

    def model_version(self) -> int:
        cur = self.store.load_model()
        return cur[0] if cur else 0

    @property
    def index(self) -> PlantIndex:
        """O(1) lookups by path in the current plant model (rebuilt when the model changes)."""
        idx = self._index
        if idx is None or idx.cfg is not self.cfg:
            idx = self._index = PlantIndex(self.cfg)
        return idx

    @property
    def supervisor_restarts(self) -> dict:
        return self._supervisor.restarts
