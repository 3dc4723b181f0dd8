"""Sends the queued batches, in seq order, to a central plantguard over HTTP; a batch is confirmed (and may be
deleted from the disk queue) only when the central side answers after its durable write.

One request at a time carries as many consecutive records as fit in max_request_bytes, so a backlog drains at
the central store's write rate, not at one round trip per batch. Failures are retried forever with exponential
backoff and full jitter: the records stay on disk meanwhile, and the connectors never wait for the forwarder
(they only append to the queue).
"""

from __future__ import annotations

import logging
import random
import threading
import time

import httpx

from plantguard.connectors.base import Backoff
from plantguard.connectors.gateway import codec
from plantguard.connectors.gateway.queue import GatewayQueue
from plantguard.timeutil import now_us

log = logging.getLogger(__name__)
MIN_REQUEST_BYTES = 64 << 10


class Forwarder:
    def __init__(self, queue: GatewayQueue, central_url: str, gateway_id: str, *, max_request_bytes: int = 4 << 20,
                 timeout_s: float = 60.0, backoff_min: float = 0.5, backoff_max: float = 30.0,
                 headers: dict[str, str] | None = None, rand: random.Random | None = None) -> None:
        self.queue = queue
        self.url = central_url.rstrip("/") + f"/api/gateway/{gateway_id}/batches"
        self.gateway_id = gateway_id
        self.max_request_bytes = max_request_bytes
        self.timeout_s = timeout_s
        self.backoff = Backoff(backoff_min, backoff_max, rand)
        self.headers = {"content-type": codec.CONTENT_TYPE, **(headers or {})}
        self._buffer_hdr, self._buffer_at = "", None
        self.state = "starting"  # starting, online, backoff, stopped
        self.last_error: str | None = None
        self.last_ok: int | None = None
        self.requests = 0
        self.failures = 0
        self.sent_batches = 0
        self.duplicates = 0  # readings the central side already had: resends after a lost answer or a restart
        self.rejected = 0
        self.rtt_ms: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Forwarder":
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"gateway-forwarder-{self.gateway_id}", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        with self.queue.changed:
            self.queue.changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.state = "stopped"

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                recs = self.queue.read(self.queue.confirmed_seq, self.max_request_bytes)
                if not recs:
                    self.queue.wait(self.queue.confirmed_seq, 1.0)
                    continue
                try:
                    self._send(client, recs)
                except Exception as e:  # noqa: BLE001 - whatever failed, the records stay queued and are retried
                    self._failed(f"{type(e).__name__}: {e}")

    def _send(self, client: httpx.Client, recs: list[tuple[int, int, bytes]]) -> None:
        headers = dict(self.headers)
        ranges = self.queue.stats.dropped_ranges[-20:]
        if ranges:
            headers[codec.DROPPED_HEADER] = ",".join(f"{a}-{b}" for a, b in ranges)
        headers[codec.BUFFER_HEADER] = self._buffer_report()
        t0 = time.perf_counter()
        self.requests += 1
        resp = client.post(self.url, content=b"".join(r[2] for r in recs), headers=headers)
        if resp.status_code == 413 and self.max_request_bytes > MIN_REQUEST_BYTES:
            self.max_request_bytes = max(MIN_REQUEST_BYTES, self.max_request_bytes // 2)
            log.warning("central refused %d bytes as too large; sending at most %d bytes per request", len(resp.request.content), self.max_request_bytes)
            return
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        body = resp.json()
        seq = int(body["seq"])
        if seq != recs[-1][0]:
            raise RuntimeError(f"central confirmed seq {seq}, expected {recs[-1][0]}")
        self.queue.confirm(seq)
        ms = (time.perf_counter() - t0) * 1000
        self.rtt_ms = ms if self.rtt_ms is None else 0.8 * self.rtt_ms + 0.2 * ms
        self.sent_batches += len(recs)
        self.duplicates += int(body.get("duplicates", 0))
        self.rejected += int(body.get("rejected", 0))
        if int(body.get("rejected", 0)):
            log.warning("central rejected %d reading(s) of seq %d..%d (kept in its dead letters)", body["rejected"], recs[0][0], seq)
        if self.state != "online":
            if self.state == "backoff":
                log.info("central %s reachable again after %d attempt(s); forwarding the backlog", self.url, self.backoff.attempt)
            self.state = "online"
        self.backoff.reset()
        self.last_ok = now_us()

    def _buffer_report(self) -> str:
        """The buffer header, computed at most once a second: queue.health() takes the queue lock and asks the
        file system for free space, too much to repeat for every request of a backlog drain."""
        now = time.monotonic()
        if self._buffer_at is None or now - self._buffer_at >= 1.0:
            self._buffer_hdr, self._buffer_at = codec.buffer_header(self.queue.health()), now
        return self._buffer_hdr

    def _failed(self, error: str) -> None:
        self.failures += 1
        self.last_error = error
        if self.state != "backoff":
            log.warning("forwarding to %s failed: %s (batches stay queued; retrying with backoff)", self.url, error)
        else:
            log.debug("still failing: %s", error)
        self.state = "backoff"
        self._stop.wait(self.backoff.next())

    def health(self) -> dict:
        return {"ok": self.state == "online", "state": self.state, "url": self.url, "last_error": self.last_error,
                "last_ok": self.last_ok, "requests": self.requests, "failures": self.failures, "sent_batches": self.sent_batches,
                "duplicates": self.duplicates, "rejected": self.rejected, "rtt_ms": self.rtt_ms,
                "confirmed_seq": self.queue.confirmed_seq}
