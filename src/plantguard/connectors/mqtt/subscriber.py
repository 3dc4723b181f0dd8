"""MqttSource: JSON readings from an MQTT broker into the ingest pipeline, at least once, in order.

    broker --PUBLISH--> paho thread: parse (dead letter if unreadable) -> coalesce -> Pipeline.submit
                        writer thread: durable write -> future done -> PUBACK every finished message, in arrival order

A message is acknowledged only after the batch holding its readings (or its dead letter) is durably written, so
a crash loses nothing the broker was told was delivered; the broker redelivers the rest and the pipeline's
dedupe drops what was already stored. When a write fails, nothing more is acknowledged on that connection: it is
dropped so the broker redelivers everything unacknowledged after the reconnect.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import Future


from plantguard.connectors.mqtt.client import SubscriberClient
from plantguard.connectors.acks import REFUSED, OrderedAcks
from plantguard.connectors.mqtt.config import MqttConfig, MqttTuning, Topics, backoff_delay, check_config
from plantguard.domain.readings import DeadLetter, RawBatch
from plantguard.errors import Overloaded, PlantguardError
from plantguard.ingest.parse import Columns, columns_or_rows, concat_batches, parse_columns

log = logging.getLogger(__name__)
SOURCE = "mqtt"
FRAGMENT = 200


def _fragment(payload: bytes) -> str:
    s = payload[:FRAGMENT].decode("utf-8", errors="replace")
    return s if len(payload) <= FRAGMENT else s + "..."


def _merge(parts: list) -> tuple[RawBatch, list[DeadLetter]]:
    """Messages of one device prefix -> one batch. Columns are converted to arrays together (one numpy call per
    column for the whole group); messages parsed row by row join as they are."""
    cols = [p for p in parts if isinstance(p, Columns)]
    rows = [p for p in parts if not isinstance(p, Columns)]
    batches, dead = [], []
    if cols:
        b, dead = columns_or_rows(cols, SOURCE)
        batches.append(b)
    batches += rows
    return concat_batches(batches, SOURCE), dead


class MqttSource:
    name = "mqtt"

    def __init__(self, cfg: MqttConfig, pipeline, *, max_payload_bytes: int | None = None, tuning: MqttTuning | None = None,
                 rand: random.Random | None = None) -> None:
        check_config(cfg)
        self.cfg = cfg
        self.pipeline = pipeline
        self.max_payload_bytes = max_payload_bytes
        self.tuning = tuning or MqttTuning()
        self.topics = Topics(cfg.topic_prefix)
        self._rand = rand or random.Random()
        self._coalesce = self.tuning.coalesce_readings

        # PUBACKs after the durable write, in arrival order (shared with Sparkplug; thread-safe)
        self._acks = OrderedAcks()
        self._stopping = False

        # Messages parsed but not yet submitted (network thread and flusher; submit happens under this lock so
        # batches reach the pipeline in arrival order).
        self._acc_lock = threading.Lock()
        self._acc: list = []  # Columns or RawBatch per message
        self._acc_dead: list[DeadLetter] = []
        self._acc_recs: list = []
        self._acc_n = 0
        self._acc_wake = threading.Event()
        self._flusher: threading.Thread | None = None
        self._flusher_run = False

        self._client: SubscriberClient | None = None
        self._started = False
        self._ever_connected = False
        self._failing = False  # for log-once-then-quiet
        self._fail_streak = 0  # consecutive failed writes: a store that keeps failing must not cause a reconnect storm

        self.messages = 0
        self.rejected_payloads = 0
        self.reconnects = 0
        self.write_failures = 0
        self.session_lost = 0
        self.handler_errors = 0
        self.restarts = 0
        self.last_error: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> "MqttSource":
        if self._started:
            return self
        self._started = True
        self._stopping = False
        qos = int(self.cfg.qos)
        self._client = SubscriberClient(
            host=self.cfg.host, port=self.cfg.port, client_id=self.cfg.client_id,
            subscriptions=[(f, qos) for f in self.topics.filters],
            on_message=self._on_message, on_connected=self._on_connected, on_disconnected=self._on_disconnected,
            next_delay=self._next_delay, username=self.cfg.username, password=self.cfg.password,
            keepalive=self.tuning.keepalive, tls=self.cfg.tls.kwargs() if self.cfg.tls else None,
        )
        if self._coalesce > 0:
            self._flusher_run = True
            self._flusher = threading.Thread(target=self._flush_loop, name="mqtt-coalesce", daemon=True)
            self._flusher.start()
        self._client.start()
        return self

    def stop(self) -> None:
        """Stops taking messages, waits (bounded) until the ones taken are stored and acknowledged, disconnects.
        Anything not acknowledged by then stays with the broker and is redelivered on the next start."""
        if not self._started:
            return
        self._stopping = True
        self._acks.stop_taking()  # take no new messages; those already taken are still acknowledged below
        self._flush()
        left = self._acks.wait_drained(self.tuning.stop_timeout)
        if left:
            log.warning("mqtt: stopping with %d message(s) not yet stored; the broker will redeliver them", left)
        assert self._client is not None
        self._client.stop(timeout=max(1.0, self.tuning.stop_timeout))
        self._flusher_run = False
        self._acc_wake.set()
        if self._flusher is not None:
            self._flusher.join(5.0)
            self._flusher = None
        self._started = False

    def alive(self) -> bool:
        """False when the network thread (or the coalescing thread) died: nothing is received any more."""
        if not self._started or self._client is None:
            return True  # not started or stopped on purpose: nothing to restart
        if not self._client.thread_alive:
            return False
        return self._flusher is None or self._flusher.is_alive()

    def restart(self) -> None:
        """Called by the platform's supervisor when alive() is False. Unacknowledged messages are redelivered."""
        self.restarts += 1
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - a dead thread may leave stop() half done
            log.exception("mqtt: stopping the dead client failed")
            self._started = False
        self.start()

    def health(self) -> dict:
        alive = self.alive()
        connected = bool(self._client is not None and self._client.connected and self._acks.live and alive)
        return {
            "ok": connected,
            "connected": connected,
            "thread_alive": alive,
            "restarts": self.restarts,
            "handler_errors": self.handler_errors,
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "client_id": self.cfg.client_id,
            "messages": self.messages,
            "acked": self._acks.acked,
            "in_flight": self._acks.in_flight,
            "rejected_payloads": self.rejected_payloads,
            "reconnects": self.reconnects,
            "write_failures": self.write_failures,
            "session_lost": self.session_lost,
            "last_error": self.last_error,
        }

    # -- connection events (paho network thread) ------------------------------------------------------------
    def _next_delay(self, attempt: int) -> float:
        return backoff_delay(max(attempt, self._fail_streak), self.cfg.reconnect_min, self.cfg.reconnect_max, self._rand)

    def _on_connected(self, session_present: bool) -> None:
        self._acks.connected(self._client.ack, live=not self._stopping)
        if self._ever_connected:
            self.reconnects += 1
            if not session_present:
                # The broker forgot the session (no persistence, or it expired): messages sent meanwhile are gone.
                self.session_lost += 1
                log.warning("mqtt: %s:%d has no stored session for %r; messages published while disconnected were not kept",
                            self.cfg.host, self.cfg.port, self.cfg.client_id)
        self._ever_connected = True
        if self._failing:
            log.info("mqtt: connected to %s:%d again", self.cfg.host, self.cfg.port)
        else:
            log.info("mqtt: connected to %s:%d as %r", self.cfg.host, self.cfg.port, self.cfg.client_id)
        self._failing = False

    def _on_disconnected(self, reason: str) -> None:
        # acks queued for the old connection are discarded by paho on reconnect; never send them on the new one
        self._acks.lost()
        if self._stopping:
            return
        self.last_error = reason
        if not self._failing:
            log.warning("mqtt: %s (broker %s:%d); reconnecting with backoff", reason, self.cfg.host, self.cfg.port)
            self._failing = True
        else:
            log.debug("mqtt: %s", reason)

    # -- messages (paho network thread) -------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        """Never raises: an exception here would end paho's network thread, and with it all ingest over MQTT.
        Whatever goes wrong with one message makes it a dead letter that is stored and acknowledged."""
        self.messages += 1
        ticket = self._acks.track(mid, qos)
        if ticket is REFUSED:
            return  # connection lost, poisoned or stopping: leave it unacknowledged, the broker redelivers it
        try:
            self._handle(topic, payload, ticket)
        except Exception as e:  # noqa: BLE001 - the last line of defence; the message is kept as a dead letter
            self.handler_errors += 1
            self.last_error = f"handling a message on {topic[:200]!r} failed: {type(e).__name__}: {e}"
            log.exception("mqtt: %s", self.last_error)
            try:
                dead = [DeadLetter(SOURCE, f"{topic[:200]}: {type(e).__name__}: {e}", payload=_fragment(payload), code="handler_error")]
                self._submit([ticket], RawBatch.build([], [], [], source=SOURCE), dead)
            except Exception:  # noqa: BLE001
                log.exception("mqtt: could not even store the dead letter; the message stays unacknowledged")

    def _handle(self, topic: str, payload: bytes, rec) -> None:
        try:
            prefix = self.topics.point_prefix(topic)
        except ValueError as e:
            # A topic outside the scheme (an empty level, too many levels): a dead letter, acknowledged once stored.
            self.rejected_payloads += 1
            prefix = None
            parsed = (RawBatch.build([], [], [], source=SOURCE), [DeadLetter(SOURCE, str(e), payload=_fragment(payload), code="bad_topic")])
        else:
            try:
                parsed = parse_columns(payload, SOURCE, prefix, self.max_payload_bytes)
            except Exception as e:  # noqa: BLE001 - an unreadable payload must become a dead letter, never a redelivery loop
                self.rejected_payloads += 1
                parsed = (RawBatch.build([], [], [], source=SOURCE, prefix=prefix),
                          [DeadLetter(SOURCE, f"{topic}: {e}", payload=_fragment(payload), code=getattr(e, "code", "malformed"))])
        if isinstance(parsed, Columns):
            batch, dead, n = parsed, [], len(parsed.points)
        else:
            (batch, dead), n = parsed, len(parsed[0])
        if self._coalesce <= 0:
            merged, more = _merge([batch])
            self._submit([rec], merged, dead + more)
            return
        with self._acc_lock:
            first = not self._acc_recs
            self._acc.append(batch)
            if dead:
                self._acc_dead.extend(dead)
            self._acc_recs.append(rec)
            self._acc_n += n
            if self._acc_n >= self._coalesce:
                self._flush_locked()
            elif first:
                self._acc_wake.set()

    def _flush_loop(self) -> None:
        linger = self.tuning.linger
        while self._flusher_run:
            self._acc_wake.wait()
            self._acc_wake.clear()
            if linger:
                time.sleep(linger)
            self._flush()

    def _flush(self) -> None:
        with self._acc_lock:
            if self._acc_recs:
                self._flush_locked()

    def _flush_locked(self) -> None:
        # One submission per device prefix: names stay relative to their device (cheap to resolve). Acks still
        # go out in arrival order: _done only acknowledges the completed head of the pending queue.
        groups: dict[str | None, tuple[list, list]] = {}
        for b, r in zip(self._acc, self._acc_recs):
            bs, rs = groups.setdefault(b.prefix, ([], []))
            bs.append(b)
            rs.append(r)
        dead = self._acc_dead
        self._acc, self._acc_dead, self._acc_recs, self._acc_n = [], [], [], 0
        if not groups:
            groups[None] = ([RawBatch.build([], [], [], source=SOURCE)], [])
        for i, (bs, rs) in enumerate(groups.values()):
            merged, more = _merge(bs)
            self._submit(rs, merged, (dead if i == 0 else []) + more)

    def _submit(self, recs: list, batch: RawBatch, dead: list[DeadLetter]) -> None:
        def on_done(fut: Future) -> None:
            self._done(recs, fut)

        while True:
            try:
                self.pipeline.submit(batch, dead, timeout=self.tuning.submit_wait, on_done=on_done)
                return
            except Overloaded:
                if self._stopping:
                    self._poison("stopping while the ingest queue is full")
                    return
            except PlantguardError as e:  # the pipeline is stopped
                self._poison(f"ingest pipeline refused the batch: {e}")
                return

    # -- completions (pipeline writer thread) ---------------------------------------------------------------
    def _done(self, recs: list, fut: Future) -> None:
        exc = fut.exception()
        if exc is not None:
            self.write_failures += 1
            self._fail_streak += 1
            self._poison(f"write failed, messages will be redelivered: {exc}")
            return
        self._fail_streak = 0
        self._acks.done(recs)

    @property
    def acked(self) -> int:
        return self._acks.acked

    def _poison(self, reason: str) -> None:
        """Nothing more is acknowledged on this connection; dropping it makes the broker redeliver the rest."""
        self._acks.poison()
        if self._stopping:
            return
        self.last_error = reason
        log.error("mqtt: %s", reason)
        if self._client is not None:
            self._client.drop()
