"""The running platform, the composition root: configuration, store, point registry, pipeline, event bus,
processors, sources and services, wired once, started and stopped in order.

The API, the dashboard and the CLI are thin shells over `platform.services` (plantguard.services).
"""

from __future__ import annotations

import logging
import threading
import time


from plantguard.domain.index import PlantIndex
from plantguard.events import EventBus
from plantguard.domain.model import PlantConfig
from plantguard.config import parse_config
from plantguard.errors import ConfigError, ConfigProblem
from plantguard.model_source import ModelFile, _has_file_version, model_document, resolve_model
from plantguard.ingest.pipeline import Pipeline
from plantguard.ingest.registry import PointRegistry
from plantguard.store import open_store
from plantguard.store.base import Series, Store
from plantguard.timeutil import Clock, now_us, parse_duration_us

log = logging.getLogger(__name__)

SUPERVISE_EVERY_S = 1.0


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

    @property
    def index(self) -> PlantIndex:
        """O(1) lookups by path in the current plant model (rebuilt when the model changes)."""
        idx = self._index
        if idx is None or idx.cfg is not self.cfg:
            idx = self._index = PlantIndex(self.cfg)
        return idx

    # -- health -----------------------------------------------------------------------------------------

    # -- queries most callers need (the rest: platform.services.<name>) ---------------------------------------
    def pid_of(self, tag: str) -> int:
        return self.services.telemetry.pid_of(tag)

    def query_raw(self, tag: str, start: int, end: int, limit: int = 10_000) -> Series:
        return self.services.telemetry.query_raw(tag, start, end, limit)

    def latest(self, tags: list[str]) -> dict[str, dict | None]:
        return self.services.telemetry.latest(tags)

    def analytics_live(self) -> dict:
        return self.services.analytics.live()

    def health(self) -> dict:
        return self.services.status.health()
