"""`plantguard gateway`: the configured connectors run at the edge with the disk queue as their sink, and a
forwarder sends the queue to the central plantguard. Status: a periodic log line and, optionally, GET /health."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pydantic import ValidationError

from plantguard.connectors.gateway.config import TOKEN_ENV, GatewaySettings, central_token
from plantguard.connectors.gateway.forwarder import Forwarder
from plantguard.connectors.gateway.queue import GatewayQueue
from plantguard.domain.model import PlantConfig
from plantguard.config import parse_config, read_yaml_file, validation_problems
from plantguard.errors import ConfigError, ConfigProblem

log = logging.getLogger(__name__)


def load_gateway_config(path: str | Path) -> tuple[GatewaySettings, PlantConfig]:
    """The `gateway` section, and the rest of the file as a plant configuration (its connectors run here)."""
    path = Path(path)
    data = read_yaml_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("gateway"), dict):
        raise ConfigError([ConfigProblem("gateway", "a gateway configuration needs a 'gateway' section (id, central_url, ...)")], str(path))
    data = dict(data)
    section = data.pop("gateway")
    try:
        settings = GatewaySettings.model_validate(section)
    except ValidationError as e:
        raise ConfigError(validation_problems(e, "gateway"), str(path)) from None
    return settings, parse_config(data, str(path))


def status_line(h: dict) -> str:
    q = h["queue"]
    aut = q["autonomy_hours"]
    return (f"gateway {h['gateway_id']}: forwarder {h['forwarder']['state']}, queue {q['depth']['batches']} batches / "
            f"{q['depth']['readings']} readings / {q['depth']['bytes'] / 1e6:.1f} MB, oldest {q['oldest_age_s']:.0f} s, "
            f"in {q['input_rate']['readings_per_s']:.0f}/s, out {q['drain_rate']['readings_per_s']:.0f}/s, "
            f"autonomy {'unlimited (no input)' if aut is None else f'{aut:.1f} h'}, "
            f"dropped {q['dropped']['readings']}, rejected {q['rejected']['readings']}")


class Gateway:
    def __init__(self, settings: GatewaySettings, cfg: PlantConfig | None = None) -> None:
        self.settings = s = settings
        self.cfg = cfg
        self.queue = GatewayQueue(s.data_dir, max_bytes=s.max_bytes, overflow=s.overflow, fsync=s.fsync,
                                  fsync_interval_s=s.fsync_interval_s, min_free_bytes=s.min_free_bytes)
        token = central_token(s)
        if token is None:
            log.warning("gateway %s: no token for the central side (token_file or %s): it will refuse the batches, "
                        "which stay queued", s.id, TOKEN_ENV)
        self.forwarder = Forwarder(self.queue, s.central_url, s.id, max_request_bytes=s.max_request_bytes,
                                   timeout_s=s.request_timeout_s, backoff_min=s.backoff_min, backoff_max=s.backoff_max,
                                   headers={"Authorization": f"Bearer {token}"} if token else None)
        self.sources: list = []
        self._stop = threading.Event()
        self._status_thread: threading.Thread | None = None
        self._http: ThreadingHTTPServer | None = None

    def start(self) -> "Gateway":
        self.forwarder.start()
        if self.cfg is not None:
            from plantguard.connectors.registry import validate

            for cls, ccfg in validate(self.cfg.connectors):
                if ccfg.enabled:
                    self.add_source(cls(ccfg, self.queue))
        self._status_thread = threading.Thread(target=self._status_loop, name="gateway-status", daemon=True)
        self._status_thread.start()
        if self.settings.health_port is not None:
            self._serve_health()
        return self

    def add_source(self, source) -> None:
        self.sources.append(source)
        source.start()

    def stop(self) -> None:
        """Sources first (nothing new arrives), then the forwarder, then the queue is fsynced and closed."""
        self._stop.set()
        for src in reversed(self.sources):
            try:
                src.stop()
            except Exception:  # noqa: BLE001 - the queue must still be closed
                log.exception("source failed to stop")
        self.forwarder.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self.queue.close()

    def health(self) -> dict:
        sources = {}
        for src in self.sources:
            try:
                sources[getattr(src, "name", type(src).__name__)] = src.health()
            except Exception as e:  # noqa: BLE001
                sources[getattr(src, "name", type(src).__name__)] = {"ok": False, "error": str(e)}
        return {"gateway_id": self.settings.id, "queue": self.queue.health(), "forwarder": self.forwarder.health(), "sources": sources}

    def _status_loop(self) -> None:
        while not self._stop.wait(self.settings.status_interval_s):
            try:
                log.info("%s", status_line(self.health()))
            except Exception:  # noqa: BLE001 - a status line must never stop the gateway
                log.exception("status line failed")

    def _serve_health(self) -> None:
        gw = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                if self.path.rstrip("/") not in ("/health", ""):
                    self.send_error(404)
                    return
                body = json.dumps(gw.health()).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # the status line is enough; no access log
                pass

        self._http = ThreadingHTTPServer((self.settings.health_host, self.settings.health_port), Handler)
        threading.Thread(target=self._http.serve_forever, name="gateway-health", daemon=True).start()

