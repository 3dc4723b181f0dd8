"""The connector framework. A connector is one folder (manifest.yaml, config.py with its pydantic schema,
client.py: the only module importing the protocol library, the connector itself, tests/), registered as a
plug-in under the entry-point group ``plantguard.connectors`` so third parties can add their own.

A connector delivers readings to a ReadingSink (the ingest pipeline, or the edge gateway's disk queue) as
RawBatches whose names are relative to a plant-model device path (``RawBatch.prefix``). It runs its own asyncio
loop in a thread; every device link is a supervised task: an exception in one device's poll never stops the
others, and a failed link reconnects by itself with exponential backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from plantguard.domain.readings import DeadLetter, RawBatch
from plantguard.errors import Overloaded
from plantguard.timeutil import Clock, now_us

log = logging.getLogger(__name__)


class ReadingSink(Protocol):
    """Where connectors deliver readings: Pipeline.submit has this signature, and so does the gateway's queue."""

    def submit(self, batch: RawBatch, dead_letters: list[DeadLetter] | None = None, *, timeout: float | None = None,
               on_done: Callable[[Future], None] | None = None) -> Future: ...


class ConnectorConfig(BaseModel):
    """Fields every connector configuration has; each connector's schema extends it."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="connector type, e.g. modbus, opcua, sparkplug, replay")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$", description="unique name of this connector instance")
    enabled: bool = True
    reconnect_min: float = Field(0.5, gt=0, description="first reconnect delay, seconds")
    reconnect_max: float = Field(30.0, gt=0, description="longest reconnect delay, seconds")


# -- supervision ---------------------------------------------------------------------------------------------
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog's 'full jitter'): spreads reconnect storms."""

    def __init__(self, minimum: float, maximum: float, rand: random.Random | None = None) -> None:
        self.minimum, self.maximum = minimum, max(minimum, maximum)
        self.attempt = 0
        self._rand = rand or random.Random()

    def next(self) -> float:
        cap = min(self.maximum, self.minimum * (2 ** self.attempt))
        self.attempt += 1
        return self.minimum + self._rand.random() * (cap - self.minimum) if cap > self.minimum else self.minimum

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class LinkHealth:
    """State of one device link, shown in the API and /metrics."""

    name: str
    state: str = "starting"  # starting, online, backoff, stopped
    since: int = 0
    last_ok: int | None = None
    last_error: str | None = None
    errors: int = 0
    reconnects: int = 0
    requests: int = 0
    readings: int = 0
    bad_readings: int = 0
    latency_ms: float | None = None  # moving average of request round trips

    def as_dict(self) -> dict:
        return asdict(self)

    def observe_latency(self, seconds: float) -> None:
        ms = seconds * 1000
        self.latency_ms = ms if self.latency_ms is None else 0.9 * self.latency_ms + 0.1 * ms


async def supervise(health: LinkHealth, body: Callable[[], Awaitable[None]], backoff: Backoff, clock: Clock = now_us) -> None:
    """Runs body() forever: when it raises, logs (the first failure loudly, repeats quietly, then the recovery),
    waits with backoff, and runs it again. body() is expected to run until cancelled; it resets the backoff by
    calling mark_online(health, backoff) once its link works."""
    while True:
        try:
            await body()
            return
        except asyncio.CancelledError:
            health.state = "stopped"
            raise
        except Exception as e:  # noqa: BLE001 - the point of supervision: nothing stops the other links
            health.errors += 1
            health.last_error = f"{type(e).__name__}: {e}"
            if health.state != "backoff":
                log.warning("%s: link failed: %s (retrying with backoff)", health.name, health.last_error)
            else:
                log.debug("%s: still failing: %s", health.name, health.last_error)
            health.state = "backoff"
            health.since = clock()
            health.reconnects += 1
            await asyncio.sleep(backoff.next())


def mark_online(health: LinkHealth, backoff: Backoff, clock: Clock = now_us) -> None:
    if health.state != "online":
        if health.state == "backoff":
            log.info("%s: link recovered after %d attempt(s)", health.name, backoff.attempt)
        health.state = "online"
        health.since = clock()
    health.last_ok = clock()
    backoff.reset()


# -- non-disruption controls ---------------------------------------------------------------------------------
class PollBudget:
    """At most `max_rps` requests per second (token bucket, burst 1) and `max_concurrent` requests at once towards
    one device, so plantguard can never load a PLC beyond what was agreed with its owner."""

    def __init__(self, max_rps: float, max_concurrent: int = 1) -> None:
        self.interval = 1.0 / max_rps if max_rps > 0 else 0.0
        self._next = 0.0
        self._sem = asyncio.Semaphore(max_concurrent)
        self._lock = asyncio.Lock()
        self.waited_s = 0.0

    async def __aenter__(self) -> "PollBudget":
        await self._sem.acquire()
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            if wait > 0:
                self.waited_s += wait
                await asyncio.sleep(wait)
                now = time.monotonic()
            self._next = max(now, self._next) + self.interval
        return self

    async def __aexit__(self, *exc) -> None:
        self._sem.release()


class ExceptionReporter:
    """Report by exception: a value is sent when it moved more than its deadband from the last value sent, when
    its quality changed, or when `heartbeat_us` passed since it was last sent (so silence still means 'no
    change', never 'dead'). Timestamps are never altered: a value resent by the heartbeat keeps the time of the
    poll that read it."""

    def __init__(self, deadband: np.ndarray, heartbeat_us: int) -> None:
        n = len(deadband)
        self.deadband = np.asarray(deadband, np.float64)
        self.heartbeat_us = heartbeat_us
        self.last_value = np.full(n, np.nan)
        self.last_quality = np.full(n, 255, np.uint8)
        self.last_sent = np.full(n, np.iinfo(np.int64).min // 2, np.int64)

    def select(self, ts: np.ndarray, value: np.ndarray, quality: np.ndarray) -> np.ndarray:
        """Boolean mask of the readings (one per point, in point order) to send; remembers what is sent."""
        with np.errstate(invalid="ignore"):
            moved = ~(np.abs(value - self.last_value) <= self.deadband)  # NaN (first time) counts as moved
        send = moved | (quality != self.last_quality) | (ts - self.last_sent >= self.heartbeat_us)
        self.last_value[send] = value[send]
        self.last_quality[send] = quality[send]
        self.last_sent[send] = ts[send]
        return send


# -- pre-connection assessment (`plantguard assess`) ------------------------------------------------------------
@dataclass
class ProbeItem:
    """One configured register block, node or point, tried once."""

    target: str  # e.g. "holding 100-124" or "ns=2;s=Pump.Speed" or a point id
    ok: bool
    detail: str = ""  # the error, the exception code, or the value read
    latency_ms: float | None = None


@dataclass
class ProbeResult:
    """What `plantguard assess` learnt about one device link, without changing anything on the device."""

    connector: str
    link: str  # device path or endpoint
    endpoint: str  # host:port, serial port, or URL
    reachable: bool
    connect_ms: float | None = None
    items: list[ProbeItem] = field(default_factory=list)
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    safe_poll_rps: float | None = None  # requests/s the device sustained with latency still near its idle value
    planned_rps: float | None = None  # requests/s the configuration would send
    risks: list[str] = field(default_factory=list)  # plain sentences, e.g. "security mode None: traffic is not signed"
    notes: list[str] = field(default_factory=list)


# -- the connector ---------------------------------------------------------------------------------------------
class Connector(ABC):
    """Base of every connector. Subclasses set `type` and `config_model` and implement `run()`, a coroutine that
    starts one supervised task per device link and runs until cancelled."""

    type: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]

    def __init__(self, cfg: ConnectorConfig, sink: ReadingSink, *, clock: Clock = now_us) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.sink = sink
        self.clock = clock
        self.links: dict[str, LinkHealth] = {}
        self.rejected_batches = 0
        self.restarts = 0
        self._finished = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._main: asyncio.Task | None = None
        self._ready = threading.Event()

    @abstractmethod
    async def run(self) -> None:
        """Start the device tasks (see supervise) and wait until cancelled."""

    @classmethod
    async def probe(cls, cfg: ConnectorConfig, *, max_rps: float = 50.0, duration_s: float = 5.0) -> list[ProbeResult]:
        """Assesses every device link of a configuration before it is connected for real: reachability, response
        times, whether each configured item reads, and the poll rate the device sustains (never above max_rps).
        Read-only. Connectors that cannot be probed say so."""
        raise NotImplementedError(f"connector type {cls.type!r} has no probe")

    # -- lifecycle (called from the platform's thread) ----------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._ready.clear()
        self._finished = False
        self._thread = threading.Thread(target=self._thread_main, name=f"connector-{self.name}", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._main = loop.create_task(self.run())
        self._ready.set()
        try:
            loop.run_until_complete(self._main)
            self._finished = True  # run() returned: the connector has nothing more to do (a replay that ended)
        except asyncio.CancelledError:
            self._finished = True
        except BaseException:  # noqa: BLE001 - health must say the loop died; the supervisor restarts it
            log.exception("connector %s stopped on an error", self.name)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._main is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._main.cancel)
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def alive(self) -> bool:
        """False when the connector's loop thread ended although nobody stopped it (its links then read nothing)."""
        return self._thread is None or self._thread.is_alive() or self._finished

    def restart(self) -> None:
        """Called by the platform's supervisor when alive() is False."""
        self.restarts += 1
        self._thread = None
        self.start()

    def health(self) -> dict:
        links = {k: v.as_dict() for k, v in self.links.items()}
        alive = self.alive()
        return {"ok": alive and bool(links) and all(v["state"] == "online" for v in links.values()), "type": self.type,
                "thread_alive": alive, "restarts": self.restarts, "links": links, "rejected_batches": self.rejected_batches}

    # -- delivery -------------------------------------------------------------------------------------------------
    async def deliver(self, batch: RawBatch, dead: list[DeadLetter] | None = None) -> None:
        """Hands a batch to the sink without blocking the event loop; waits while the sink applies backpressure."""
        if not len(batch) and not dead:
            return
        try:
            fut = await asyncio.to_thread(self.sink.submit, batch, dead)
        except Overloaded as e:
            # The sink refused the batch (e.g. a full edge queue with overflow reject_new): counted and logged,
            # never a reason to drop the device link.
            self.rejected_batches += 1
            log.warning("%s: %d readings refused by the sink: %s", self.name, len(batch), e)
            return
        # shielded: cancelling this coroutine (stop()) must not cancel the sink's future under its writer
        await asyncio.shield(asyncio.wrap_future(fut))


def link(connector: Connector, name: str) -> LinkHealth:
    h = connector.links.get(name)
    if h is None:
        h = connector.links[name] = LinkHealth(name, since=connector.clock())
    return h


def device_batch(device_path: str, points: list[str], ts, value, quality=None, src_ts=None, source: str = "connector") -> RawBatch:
    """A batch of readings of one plant-model device, names relative to its path."""
    return RawBatch.build(points, ts, value, quality, src_ts, source=source, prefix=device_path)


Json = dict[str, Any]
