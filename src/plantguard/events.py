"""A typed, in-process event bus: producers publish frozen events, subscribers get them without ever holding the
producer up.

    bus = EventBus()
    bus.subscribe("webhooks", handler, AlarmChanged)                 # own bounded queue and thread (default)
    bus.subscribe("alarm-link", engine.on_conditions, ConditionsChanged, inline=True)
    bus.publish(AlarmChanged(record, event))
    bus.stats()["webhooks"]   # {"delivered": .., "dropped": .., "queued": .., "errors": ..}

Delivery. A queued subscriber has a bounded queue (`maxsize`, default 10,000) and its own thread, so a slow one
(a webhook receiver that hangs) never blocks the publisher, which is often the pipeline's writer thread. When its
queue is full the event is dropped for that subscriber, counted (`dropped`, the metric
plantguard_events_dropped_total{subscriber}) and logged at most once a minute. An inline subscriber is called in
the publisher's thread: it must see every event in order and be quick; its cost is backpressure on the
publisher, by design (the analytics-to-alarm link: a condition must never be lost). An exception in a handler is
logged and counted (`errors`) and never reaches the publisher or stops the subscriber's thread.

Events are frozen dataclasses; subscriptions are by type (a subscriber of a base class gets its subclasses).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from plantguard.domain.alarms import AlarmEvent, AlarmRecord

log = logging.getLogger(__name__)

DEFAULT_MAXSIZE = 10_000
_LOG_EVERY_S = 60.0


# -- events ------------------------------------------------------------------------------------------------
class Event:
    """Base of every event on the bus."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class AlarmChanged(Event):
    """An alarm record after a transition (raised, returned, acknowledged, shelved...) and the event itself."""
    record: AlarmRecord
    event: AlarmEvent


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """One externally judged alarm condition (SPC, ANOMALY, RUL) changing or refreshing its message."""
    alarm_id: str
    active: bool
    at: int                  # reading time, microseconds
    value: float | None
    message: str


@dataclass(frozen=True, slots=True)
class ConditionsChanged(Event):
    """The condition changes one analytics batch produced, in order."""
    changes: tuple[ConditionChange, ...]


@dataclass(frozen=True, slots=True)
class ExternalRule:
    """An alarm another processor drives: its id, tag, condition (SPC, ANOMALY, RUL), priority, limit and unit."""
    alarm_id: str
    tag: str
    condition: str
    priority: str
    limit: float | None
    unit: str


@dataclass(frozen=True, slots=True)
class ExternalRulesDeclared(Event):
    """The complete set of externally driven alarms (replaces the previous declaration)."""
    rules: tuple[ExternalRule, ...]


@dataclass(frozen=True, slots=True)
class ModelChanged(Event):
    """A new plant model was applied (version 0 when it was not stored)."""
    version: int
    origin: str
    actor: str | None


@dataclass(frozen=True, slots=True)
class DeviceWritten(Event):
    """A source tried to write a value to a device (done or refused): connector, point, user, value, result..."""
    record: dict


@dataclass(frozen=True, slots=True)
class ScopeViolation(Event):
    """A sender bound to a device (or a gateway bound to a path) tried to send readings outside it: refused."""
    bound_to: str
    point: str
    principal: str | None = None


# -- the bus -----------------------------------------------------------------------------------------------
class _Subscription:
    def __init__(self, name: str, handler: Callable[[Any], None], types: tuple[type, ...], inline: bool,
                 maxsize: int) -> None:
        self.name, self.handler, self.types, self.inline, self.maxsize = name, handler, types, inline, maxsize
        self.delivered = self.dropped = self.errors = 0
        self._q: deque = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._last_log = 0.0
        self._thread: threading.Thread | None = None
        if not inline:
            self._thread = threading.Thread(target=self._run, name=f"bus-{name}", daemon=True)
            self._thread.start()

    def offer(self, event: Any) -> None:
        if self.inline:
            self._call(event)
            return
        with self._cond:
            if self._stop:
                return
            if len(self._q) >= self.maxsize:
                self.dropped += 1
                now = time.monotonic()
                if now - self._last_log >= _LOG_EVERY_S:
                    self._last_log = now
                    log.warning("event bus: subscriber %s is behind (%d queued); dropping %s (%d dropped so far)",
                                self.name, len(self._q), type(event).__name__, self.dropped)
                return
            self._q.append(event)
            self._cond.notify()

    def _call(self, event: Any) -> None:
        try:
            self.handler(event)
            self.delivered += 1
        except Exception:  # noqa: BLE001 - a subscriber's failure must never reach the publisher
            self.errors += 1
            log.exception("event bus: subscriber %s failed on %s", self.name, type(event).__name__)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._q and not self._stop:
                    self._cond.wait()
                if not self._q:
                    return
                event = self._q.popleft()
                if not self._q:
                    self._cond.notify_all()  # wake drain()
            self._call(event)

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._q:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float) -> None:
        if self.inline:
            return
        self.drain(timeout)
        with self._cond:
            self._stop = True
            self.dropped += len(self._q)
            self._q.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict:
        return {"delivered": self.delivered, "dropped": self.dropped, "errors": self.errors,
                "queued": len(self._q), "inline": self.inline, "maxsize": self.maxsize}


class EventBus:
    def __init__(self) -> None:
        self._subs: list[_Subscription] = []
        self._lock = threading.Lock()

    def subscribe(self, name: str, handler: Callable[[Any], None], *types: type, inline: bool = False,
                  maxsize: int = DEFAULT_MAXSIZE) -> None:
        """Delivers events of `types` (default: every event) to `handler`; see the module for inline vs queued."""
        if not 1 <= maxsize <= 10_000_000:
            raise ValueError("maxsize must be between 1 and 10,000,000")
        with self._lock:
            if any(s.name == name for s in self._subs):
                raise ValueError(f"a subscriber named {name!r} exists")
            # copy on write: publish() iterates the list without a lock
            self._subs = [*self._subs, _Subscription(name, handler, types or (Event,), inline, maxsize)]

    def unsubscribe(self, name: str, timeout: float = 5.0) -> None:
        with self._lock:
            mine = [s for s in self._subs if s.name == name]
            self._subs = [s for s in self._subs if s.name != name]
        for s in mine:
            s.close(timeout)

    def publish(self, event: Event) -> None:
        for s in self._subs:  # a copy-on-write list: subscribe/unsubscribe replace it
            if isinstance(event, s.types):
                s.offer(event)

    def drain(self, timeout: float = 5.0) -> bool:
        """Waits (bounded) until every queued subscriber has handled what it has."""
        deadline = time.monotonic() + timeout
        return all(s.drain(max(0.0, deadline - time.monotonic())) for s in list(self._subs) if not s.inline)

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            subs, self._subs = self._subs, []
        for s in subs:
            s.close(timeout)

    def stats(self) -> dict[str, dict]:
        return {s.name: s.stats() for s in self._subs}
