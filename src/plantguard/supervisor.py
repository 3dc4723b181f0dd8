"""Supervision of sources: a source whose thread or loop died is restarted (health says it is down meanwhile). A
source that keeps dying is restarted with a growing pause (0.5 s doubling up to 60 s), so a crash loop cannot eat
the machine."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)

SUPERVISE_EVERY_S = 1.0


class Supervisor:
    def __init__(self, sources: Callable[[], list], every_s: float = SUPERVISE_EVERY_S) -> None:
        self._sources = sources
        self.every_s = every_s
        self.restarts: dict[str, int] = {}  # per source name
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def ensure_running(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="plantguard-supervisor", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        pause: dict[int, float] = {}
        due: dict[int, float] = {}
        while not self._stop.wait(self.every_s):
            for src in list(self._sources()):
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
                self.restarts[name] = self.restarts.get(name, 0) + 1
                try:
                    src.restart()
                except Exception:  # noqa: BLE001
                    log.exception("restarting source %s failed; will retry", name)
                pause[key] = min(60.0, pause.get(key, 0.5) * 2)
                due[key] = now + pause[key]
