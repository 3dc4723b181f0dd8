"""Webhook notifications for alarm transitions.

notify() only appends to a bounded queue, so the pipeline's writer thread never waits on the network; a
background thread delivers each notification to every webhook whose min_priority the alarm meets, retrying
connection errors and 5xx answers with exponential backoff and jitter. A 4xx is the receiver refusing the
payload: sending it again would not help, so it is not retried.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict

import httpx

from plantguard.domain.addresses import check_url
from plantguard.domain.alarms import PRIORITY_RANK, AlarmEvent, AlarmRecord
from plantguard.domain.settings import Webhook

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 1


def payload(record: AlarmRecord, event: AlarmEvent) -> dict:
    """The JSON body POSTed to a webhook (documented in docs/alarms.md)."""
    return {"version": PAYLOAD_VERSION, "alarm": record.as_dict(), "event": asdict(event)}


class WebhookNotifier:
    def __init__(self, webhooks: list[Webhook], *, queue_size: int = 10_000, backoff_base: float = 0.5,
                 backoff_max: float = 30.0, drain_timeout: float = 5.0, allowed_networks: list[str] | tuple = ()) -> None:
        self.webhooks = list(webhooks)
        self.allowed_networks = tuple(allowed_networks)  # see plantguard.domain.addresses
        self.queue_size = queue_size
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.drain_timeout = drain_timeout
        self._q: deque[tuple[str, dict]] = deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None
        self._sent = self._failed = self._dropped = self._retries = 0

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> "WebhookNotifier":
        if self._thread is None:
            self._stopping.clear()
            self._deadline = float("inf")
            self._thread = threading.Thread(target=self._run, name="plantguard-webhooks", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Delivers what is queued for up to `timeout` (default drain_timeout) seconds, then exits;
        notifications still queued then are counted as dropped."""
        t = self.drain_timeout if timeout is None else timeout
        with self._cond:
            self._deadline = time.monotonic() + t
            self._stopping.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(t + 1.0)
            self._thread = None

    # -- producer ---------------------------------------------------------------------------------------
    def notify(self, record: AlarmRecord, event: AlarmEvent) -> None:
        """Queues a notification; never blocks. When the queue is full the oldest one is dropped."""
        if not self.webhooks:
            return
        body = payload(record, event)  # serialised now: the record keeps changing after this call
        with self._cond:
            if len(self._q) >= self.queue_size:
                self._q.popleft()
                self._dropped += 1
            self._q.append((record.priority, body))
            self._cond.notify()

    def on_event(self, event) -> None:
        """The event-bus subscription: an AlarmChanged becomes a queued notification."""
        self.notify(event.record, event.event)

    def stats(self) -> dict:
        with self._cond:
            return {"sent": self._sent, "failed": self._failed, "dropped": self._dropped, "retries": self._retries,
                    "queued": len(self._q)}

    # -- delivery ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        with httpx.Client(headers={"user-agent": "plantguard-alarms"}) as client:
            while True:
                with self._cond:
                    while not self._q and not self._stopping.is_set():
                        self._cond.wait()
                    if not self._q or self._past_deadline():
                        self._dropped += len(self._q)
                        self._q.clear()
                        return
                    priority, body = self._q.popleft()
                rank = PRIORITY_RANK.get(priority, 0)
                for wh in self.webhooks:
                    if rank >= PRIORITY_RANK[wh.min_priority]:
                        self._deliver(client, wh, body)

    def _past_deadline(self) -> bool:
        return self._stopping.is_set() and time.monotonic() >= self._deadline

    def _deliver(self, client: httpx.Client, wh: Webhook, body: dict) -> None:
        delivery = uuid.uuid4().hex  # the same id on every retry, so receivers can drop duplicates
        refused = check_url(wh.url, self.allowed_networks)  # resolved now: the name may point elsewhere since start
        if refused:
            with self._cond:
                self._failed += 1
            log.warning("webhook %s: not sent (%s; alarms.webhook_allowed_networks allows a network)", wh.url, refused)
            return
        for attempt in range(wh.retries + 1):
            if attempt:
                with self._cond:
                    self._retries += 1
                # exponential backoff with jitter, so receivers that come back are not hit by every sender at once
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                if self._stopping.is_set():  # draining: still back off, but not past the deadline
                    time.sleep(min(delay, max(0.0, self._deadline - time.monotonic())))
                else:
                    self._stopping.wait(delay)
                if self._past_deadline():
                    break
            try:
                r = client.post(wh.url, json=body, timeout=wh.timeout, headers={"x-plantguard-delivery": delivery})
            except httpx.HTTPError as e:
                why = f"{type(e).__name__}: {e}"
                continue
            if r.status_code < 400:
                with self._cond:
                    self._sent += 1
                return
            why = f"HTTP {r.status_code}"
            if r.status_code < 500:
                break
        with self._cond:
            self._failed += 1
        log.warning("webhook %s: giving up on alarm %s (%s)", wh.url, body["alarm"]["id"], why)
