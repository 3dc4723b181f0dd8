"""SparkplugConnector: Sparkplug B edge nodes and devices -> plant points, at least once, in order.

    broker --PUBLISH--> paho thread --call_soon_threadsafe--> connector loop: decode, node/device state, seq check
                        -> RawBatch per plant device -> sink.submit -> writer thread: durable write
                        -> future done -> PUBACK every finished message, in arrival order

All Sparkplug state (births, aliases, sequence numbers, online/offline) lives on the connector's event loop, so it
needs no locks; paho callbacks only hand events over. A message is acknowledged only after its readings (or its
dead letter) are durably written; a failed write drops the connection so the broker redelivers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from plantguard.connectors.acks import REFUSED, OrderedAcks
from plantguard.connectors.base import Backoff, Connector, device_batch, link, mark_online
from plantguard.connectors.sparkplug import codec
from plantguard.connectors.sparkplug.client import SparkplugClient
from plantguard.connectors.sparkplug.config import (CONTROL_PREFIXES, NAMESPACE, DeviceMapping, SparkplugConfig, check_config,
                                                    sanitize)
from plantguard.domain.readings import DeadLetter, RawBatch
from plantguard.errors import ConfigProblem, Overloaded, PlantguardError

log = logging.getLogger(__name__)
SOURCE = "sparkplug"
REPLAY_WINDOW = 32  # a seq this far behind the last one is a redelivery after a reconnect, not a gap
REBIRTH = "Node Control/Rebirth"
BDSEQ = "bdSeq"
NODE_TYPES = {"NBIRTH", "NDATA", "NDEATH", "NCMD"}
DEVICE_TYPES = {"DBIRTH", "DDATA", "DDEATH", "DCMD"}


def rebirth_payload(ts_ms: int) -> bytes:
    return codec.encode_payload(codec.Payload(timestamp=ts_ms, metrics=[
        codec.Metric(name=REBIRTH, timestamp=ts_ms, datatype=codec.DataType.Boolean, value=True)]))


def _quality(props: dict) -> int:
    """Quality property as sent by common edge software (OPC-style code: 192 good, 64-191 uncertain, <64 bad)."""
    q = props.get("Quality")
    if not isinstance(q, int) or isinstance(q, bool):
        return 0
    return 0 if q >= 192 else 1 if q >= 64 else 2


@dataclass
class _MetricState:
    name: str
    alias: int | None
    datatype: int
    point: str | None  # None: not stored (unmapped entity, ignored or control metric)
    last_value: float | None = None
    last_ts: int | None = None  # us
    bad: bool = False  # the last reading stored was bad quality (e.g. marked stale by a death)


@dataclass
class _Entity:
    """An edge node's own metrics, or one of its devices."""

    key: str
    mapping: DeviceMapping | None
    online: bool = False
    since: int | None = None
    births: int = 0
    deaths: int = 0
    last_message: int | None = None
    by_name: dict[str, _MetricState] = field(default_factory=dict)
    by_alias: dict[int, _MetricState] = field(default_factory=dict)

    def state(self) -> dict:
        return {"online": self.online, "since": self.since, "births": self.births, "deaths": self.deaths,
                "last_message": self.last_message, "metrics": len(self.by_name),
                "path": self.mapping.path if self.mapping else None}


@dataclass
class _Node(_Entity):
    group: str = ""
    node: str = ""
    born: bool = False
    bd_seq: int | None = None
    last_seq: int | None = None
    gaps: int = 0
    replays: int = 0
    rebirths_requested: int = 0
    rebirth_sent_at: int | None = None
    bad_payloads: int = 0
    unknown_aliases: int = 0
    before_birth: int = 0
    stale_deaths: int = 0
    devices: dict[str, _Entity] = field(default_factory=dict)

    def state(self) -> dict:
        return {**super().state(), "bd_seq": self.bd_seq, "last_seq": self.last_seq, "gaps": self.gaps,
                "replays": self.replays, "rebirths_requested": self.rebirths_requested, "bad_payloads": self.bad_payloads,
                "unknown_aliases": self.unknown_aliases, "before_birth": self.before_birth, "stale_deaths": self.stale_deaths,
                "devices": {k: d.state() for k, d in list(self.devices.items())}}


class SparkplugConnector(Connector):
    type = "sparkplug"
    config_model = SparkplugConfig

    def __init__(self, cfg: SparkplugConfig, sink, **kw) -> None:
        super().__init__(cfg, sink, **kw)
        self.cfg: SparkplugConfig = cfg
        self._maps = {(d.group, d.edge_node, d.device): d for d in cfg.devices}
        # (device, rule, message, evidence) -> None: a security signal (set by the security capability)
        self.security_signal = None
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._queue: asyncio.Queue | None = None
        self._acks = OrderedAcks()  # PUBACKs after the durable write, in arrival order (shared with the MQTT source)
        self._stopping = False
        self._client: SparkplugClient | None = None
        self._backoff = Backoff(cfg.reconnect_min, cfg.reconnect_max)
        self._link = link(self, f"{cfg.host}:{cfg.port}")
        self._ever_connected = False
        self._state_ts = 0
        self.messages = 0
        self.bad_payloads = 0
        self.bad_metrics = 0
        self.ignored = 0
        self.write_failures = 0
        self.session_lost = 0

    @classmethod
    def check(cls, cfg: SparkplugConfig) -> list[ConfigProblem]:
        return check_config(cfg)

    # -- health (any thread) ------------------------------------------------------------------------------
    def health(self) -> dict:
        h = super().health()
        nodes = list(self._nodes.values())
        connected = bool(self._client is not None and self._client.connected and self._acks.live and h["thread_alive"])
        h.update({
            "ok": connected,
            "connected": connected,
            "broker": f"{self.cfg.host}:{self.cfg.port}",
            "client_id": self.cfg.client_id,
            "messages": self.messages,
            "acked": self._acks.acked,
            "in_flight": self._acks.in_flight,
            "bad_payloads": self.bad_payloads,
            "bad_metrics": self.bad_metrics,
            "ignored": self.ignored,
            "write_failures": self.write_failures,
            "session_lost": self.session_lost,
            "gaps": sum(n.gaps for n in nodes),
            "rebirths_requested": sum(n.rebirths_requested for n in nodes),
            "nodes": {n.key: n.state() for n in nodes},
        })
        return h

    # -- lifecycle ----------------------------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> None:
        super().stop(self.cfg.stop_timeout + 10.0 if timeout is None else timeout)

    def _state_topic(self) -> str:
        return f"{NAMESPACE}/STATE/{self.cfg.primary_host_id}"

    def _state_payload(self, online: bool) -> bytes:
        return json.dumps({"online": online, "timestamp": self._state_ts}).encode()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._state_ts = self.clock() // 1000
        will = (self._state_topic(), self._state_payload(False)) if self.cfg.primary_host_id else None

        def post(*item) -> None:  # paho thread -> loop; events stay in arrival order
            try:
                loop.call_soon_threadsafe(self._queue.put_nowait, item)
            except RuntimeError:
                pass  # loop closed during shutdown: the broker keeps the message

        self._client = SparkplugClient(
            host=self.cfg.host, port=self.cfg.port, client_id=self.cfg.client_id,
            subscriptions=[(f"{NAMESPACE}/{g}/#", self.cfg.qos) for g in self.cfg.groups],
            on_message=lambda t, p, mid, qos, dup: post("msg", t, p, mid, qos),
            on_connected=lambda present: post("up", present),
            on_disconnected=lambda reason: post("down", reason),
            next_delay=lambda attempt: self._backoff.next(),
            username=self.cfg.username, password=self.cfg.password, keepalive=self.cfg.keepalive, will=will,
            tls=self.cfg.tls.kwargs() if self.cfg.tls else None,
        )
        self._client.start()
        try:
            while True:
                item = await self._queue.get()
                try:
                    if item[0] == "msg":
                        await self._on_message(*item[1:])
                    elif item[0] == "up":
                        self._on_connected(item[1])
                    else:
                        self._on_disconnected(item[1])
                except Exception:  # noqa: BLE001 - one bad message must never stop the connector
                    log.exception("sparkplug %s: failed to handle %s", self.name, item[0])
        finally:
            self._stopping = True
            deadline = time.monotonic() + self.cfg.stop_timeout
            self._acks.stop_taking()
            while self._acks.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # completions arrive on this loop: poll, never block it
            if self._acks.in_flight:
                log.warning("sparkplug %s: stopping with %d message(s) not yet stored; the broker will redeliver them", self.name, self._acks.in_flight)
            last = (self._state_topic(), self._state_payload(False)) if self.cfg.primary_host_id else None
            await asyncio.to_thread(self._client.stop, 5.0, last)
            self._acks.poison()
            self._link.state = "stopped"

    # -- connection events (loop) ---------------------------------------------------------------------------
    def _on_connected(self, session_present: bool) -> None:
        self._acks.connected(self._client.ack, live=not self._stopping)
        if self._ever_connected and not session_present:
            self.session_lost += 1
            log.warning("sparkplug %s: the broker kept no session; messages sent meanwhile are lost (gaps will trigger rebirths)", self.name)
        self._ever_connected = True
        mark_online(self._link, self._backoff, self.clock)
        if self.cfg.primary_host_id:
            self._client.publish(self._state_topic(), self._state_payload(True), qos=1, retain=True)
        log.info("sparkplug %s: connected to %s:%d", self.name, self.cfg.host, self.cfg.port)

    def _on_disconnected(self, reason: str) -> None:
        self._acks.lost()  # acks queued for the old connection must never go out on a new one
        if self._stopping:
            return
        lk = self._link
        lk.last_error = reason
        lk.errors += 1
        if lk.state != "backoff":
            log.warning("sparkplug %s: %s (broker %s:%d); reconnecting with backoff", self.name, reason, self.cfg.host, self.cfg.port)
            lk.state, lk.since = "backoff", self.clock()
        lk.reconnects += 1

    # -- messages (loop) ------------------------------------------------------------------------------------
    async def _on_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        self.messages += 1
        rec = self._acks.track(mid, qos)
        if rec is REFUSED:
            rec = None  # the state machine still sees the message; it is not acknowledged (the broker redelivers)
        try:
            out = self.handle(topic, payload)
        except Exception as e:  # noqa: BLE001 - turn anything unexpected into a dead letter, never a redelivery loop
            log.exception("sparkplug %s: %s", self.name, topic)
            out = [(RawBatch.build([], [], [], source=SOURCE), [DeadLetter(SOURCE, f"{topic}: {type(e).__name__}: {e}", payload=payload[:64].hex(), code="handler_error")])]
        out = [(b, d) for b, d in out if len(b) or d]
        if rec is None:
            for b, d in out:
                await self._submit(None, b, d)
            return
        self._acks.expect(rec, len(out))  # acknowledged once each of its writes is durable (at once if none)
        for b, d in out:
            await self._submit(rec, b, d)

    async def _submit(self, rec, batch: RawBatch, dead: list[DeadLetter]) -> None:
        loop = asyncio.get_running_loop()

        def on_done(fut: Future) -> None:  # writer thread
            try:
                loop.call_soon_threadsafe(self._done, rec, fut)
            except RuntimeError:
                pass  # loop closed: left unacknowledged, the broker redelivers

        while True:
            try:
                await asyncio.to_thread(self.sink.submit, batch, dead, timeout=0.5, on_done=on_done)
                return
            except Overloaded:
                if self._stopping:
                    self._poison("stopping while the ingest queue is full")
                    return
            except PlantguardError as e:
                self._poison(f"ingest pipeline refused the batch: {e}")
                return

    def _done(self, rec, fut: Future) -> None:
        exc = fut.exception()
        if exc is not None:
            self.write_failures += 1
            self._poison(f"write failed, messages will be redelivered: {exc}")
            return
        self._acks.done(rec)

    @property
    def acked(self) -> int:
        return self._acks.acked

    def _poison(self, reason: str) -> None:
        self.rejected_batches += 1
        self._acks.poison()
        if self._stopping:
            return
        self._link.last_error = reason
        log.error("sparkplug %s: %s", self.name, reason)
        if self._client is not None:
            self._client.drop()

    # -- Sparkplug state machine (loop; no I/O except rebirth requests) -----------------------------------------
    def handle(self, topic: str, payload: bytes) -> list[tuple[RawBatch, list[DeadLetter]]]:
        """One message -> the batches to store (one per plant device) with their dead letters."""
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
            self.ignored += 1
            return []
        group, mtype, node_id = parts[1], parts[2], parts[3]
        device_id = parts[4] if len(parts) == 5 else None
        if (mtype in NODE_TYPES and device_id is not None) or (mtype in DEVICE_TYPES and device_id is None) \
                or mtype not in NODE_TYPES | DEVICE_TYPES or mtype in ("NCMD", "DCMD"):
            self.ignored += 1  # commands (including our own rebirth requests) and foreign topics
            return []
        node = self._node(group, node_id)
        now = self.clock()
        node.last_message = now
        try:
            p = codec.parse_payload(payload)
        except codec.CodecError as e:
            node.bad_payloads += 1
            self.bad_payloads += 1
            log.warning("sparkplug %s: %s: %s", self.name, topic, e)
            return [(RawBatch.build([], [], [], source=SOURCE), [DeadLetter(SOURCE, f"{topic}: {e}", ts=now, payload=payload[:64].hex(), code="protocol")])]
        pts_ms = p.timestamp if p.HasField("timestamp") else None
        seq = p.seq if p.HasField("seq") else None

        if mtype == "NBIRTH":
            return self._nbirth(node, p, seq, pts_ms, now)
        if mtype == "NDEATH":
            return self._ndeath(node, p, pts_ms, now)
        if not node.born:
            node.before_birth += 1
            self._request_rebirth(node, f"{mtype} before NBIRTH")
            return []
        self._check_seq(node, seq, mtype)
        if mtype == "NDATA":
            return self._data(node, node, p, pts_ms, now)
        dev = node.devices.get(device_id)
        if dev is None:
            dev = node.devices[device_id] = _Entity(f"{node.key}/{device_id}", self._maps.get((group, node_id, device_id)))
        if mtype == "DBIRTH":
            return self._birth(node, dev, p, pts_ms, now)
        if mtype == "DDEATH":
            return self._death(dev, pts_ms, now)
        if not dev.online:
            node.before_birth += 1
            self._request_rebirth(node, f"DDATA from {device_id} before its DBIRTH")
            return []
        return self._data(node, dev, p, pts_ms, now)

    def _node(self, group: str, node_id: str) -> _Node:
        n = self._nodes.get((group, node_id))
        if n is None:
            n = self._nodes[(group, node_id)] = _Node(f"{group}/{node_id}", self._maps.get((group, node_id, None)), group=group, node=node_id)
        return n

    def _check_seq(self, node: _Node, seq: int | None, mtype: str) -> None:
        if seq is None or not 0 <= seq <= 255:
            node.gaps += 1
            log.warning("sparkplug %s: %s from %s has no valid seq (%s); requesting rebirth", self.name, mtype, node.key, seq)
            self._signal(node, f"{mtype} from {node.key} has no valid seq ({seq})", {"seq": seq, "message": mtype})
            self._request_rebirth(node, "invalid seq")
            return
        if node.last_seq is None:
            node.last_seq = seq
            return
        expected = (node.last_seq + 1) % 256
        if seq == expected:
            node.last_seq = seq
            return
        if (node.last_seq - seq) % 256 < REPLAY_WINDOW:
            node.replays += 1  # redelivered after a reconnect: readings are deduplicated downstream
            return
        node.gaps += 1
        log.warning("sparkplug %s: seq gap from %s: expected %d, got %d in %s; requesting rebirth", self.name, node.key, expected, seq, mtype)
        node.last_seq = seq
        self._signal(node, f"{mtype} from {node.key} has seq {seq}, expected {expected}: messages lost, injected or replayed "
                           "out of order, or the node restarted without a birth", {"expected": expected, "seq": seq, "message": mtype})
        self._request_rebirth(node, "seq gap")

    def _signal(self, node: _Node, message: str, evidence: dict) -> None:
        """A sequence reset as a security event, on the plant devices the node feeds (or the node itself)."""
        if self.security_signal is None:
            return
        paths = sorted({m.path for (g, n, _), m in self._maps.items() if (g, n) == (node.group, node.node)})
        for target in paths[:20] or [f"sparkplug:{node.key}"]:
            try:
                self.security_signal(target, "behaviour.sequence_reset", message, {"node": node.key, **evidence})
            except Exception:  # noqa: BLE001 - a signal must never disturb the connector's loop
                log.exception("raising a security event for %s failed", node.key)

    def _request_rebirth(self, node: _Node, reason: str) -> None:
        now = self.clock()
        if node.rebirth_sent_at is not None and now - node.rebirth_sent_at < self.cfg.rebirth_interval * 1e6:
            return  # one outstanding request per node: a burst of bad messages must not become an NCMD storm
        node.rebirth_sent_at = now
        node.rebirths_requested += 1
        log.info("sparkplug %s: requesting rebirth of %s (%s)", self.name, node.key, reason)
        if self._client is not None:
            self._client.publish(f"{NAMESPACE}/{node.group}/NCMD/{node.node}", rebirth_payload(now // 1000), qos=0)

    def _point_for(self, ent: _Entity, name: str) -> str | None:
        m = ent.mapping
        if m is None:
            return None
        if name in m.metrics:
            return m.metrics[name]
        if m.unmapped_metrics == "ignore" or name == BDSEQ or name.startswith(CONTROL_PREFIXES):
            return None
        return sanitize(name)

    def _nbirth(self, node: _Node, p, seq, pts_ms, now) -> list:
        node.born = True
        node.last_seq = seq if seq is not None and 0 <= seq <= 255 else None
        node.rebirth_sent_at = None
        node.bd_seq = next((int(m.long_value or m.int_value) for m in p.metrics if m.name == BDSEQ), None)
        for dev in node.devices.values():  # a new session: devices must be born again; their aliases are void
            dev.online, dev.by_alias = False, {}
        return self._birth(node, node, p, pts_ms, now)

    def _birth(self, node: _Node, ent: _Entity, p, pts_ms, now) -> list:
        old = ent.by_name
        ent.by_name, ent.by_alias = {}, {}
        for m in p.metrics:
            if not m.HasField("name"):
                continue
            prev = old.get(m.name)
            ms = _MetricState(m.name, m.alias if m.HasField("alias") else None, m.datatype, self._point_for(ent, m.name))
            if prev is not None:  # keep the last value so a later death can still mark it stale
                ms.last_value, ms.last_ts, ms.bad = prev.last_value, prev.last_ts, prev.bad
            ent.by_name[m.name] = ms
            if ms.alias is not None:
                ent.by_alias[ms.alias] = ms
        ent.online, ent.since = True, now
        ent.births += 1
        return self._data(node, ent, p, pts_ms, now)

    def _data(self, node: _Node, ent: _Entity, p, pts_ms, now) -> list:
        points, ts, values, quality, dead = [], [], [], [], []
        unknown = 0
        for m in p.metrics:
            ms = ent.by_name.get(m.name) if m.HasField("name") else ent.by_alias.get(m.alias) if m.HasField("alias") else None
            if ms is None:
                unknown += 1
                continue
            if ms.point is None:
                continue
            try:
                metric = codec.decode_metric(m, ms.datatype)
            except codec.CodecError as e:
                self.bad_metrics += 1
                dead.append(DeadLetter(SOURCE, f"{ent.key}: metric {ms.name!r}: {e}", point=ms.point, ts=now, code="bad_value"))
                continue
            t_ms = metric.timestamp if metric.timestamp is not None else pts_ms
            t = t_ms * 1000 if t_ms is not None else now
            v = codec.numeric(metric)
            q = _quality(metric.properties)
            if v is None:
                if not metric.is_null or ms.last_value is None:
                    continue  # text, bytes, data sets: not a numeric reading
                v, q = ms.last_value, 2  # an explicit null: the last value, marked bad
            points.append(ms.point)
            ts.append(t)
            values.append(v)
            quality.append(q)
            if not metric.is_historical:
                ms.last_value = v
                ms.last_ts = t if ms.last_ts is None else max(ms.last_ts, t)
                ms.bad = q == 2
        if unknown:
            node.unknown_aliases += unknown
            log.warning("sparkplug %s: %d metric(s) from %s were never born; requesting rebirth", self.name, unknown, ent.key)
            self._request_rebirth(node, "unknown metric alias")
        if ent.mapping is None or not (points or dead):
            return []
        return [(device_batch(ent.mapping.path, points, ts, values, quality, source=SOURCE), dead)]

    def _ndeath(self, node: _Node, p, pts_ms, now) -> list:
        bd = next((int(m.long_value or m.int_value) for m in p.metrics if m.name == BDSEQ), None)
        if node.bd_seq is not None and bd is not None and bd != node.bd_seq:
            node.stale_deaths += 1  # the will of an older session: the node is already back
            log.info("sparkplug %s: ignoring NDEATH of %s with bdSeq %d (current %d)", self.name, node.key, bd, node.bd_seq)
            return []
        node.born = False
        node.last_seq = None
        out = []
        for dev in node.devices.values():
            out += self._death(dev, pts_ms, now)
        return self._death(node, pts_ms, now) + out

    def _death(self, ent: _Entity, pts_ms, now) -> list:
        """Offline, and every stored metric's latest value becomes a bad-quality reading at the death time."""
        was_online = ent.online
        ent.online, ent.since = False, now
        ent.by_alias = {}
        if was_online:
            ent.deaths += 1
            log.info("sparkplug %s: %s offline", self.name, ent.key)
        if ent.mapping is None:
            return []
        death = pts_ms * 1000 if pts_ms is not None else now
        stale = [ms for ms in ent.by_name.values() if ms.point is not None and ms.last_value is not None and not ms.bad]
        if not stale:
            return []
        # never before the last reading: the latest value must turn bad, not a reading in the past
        ts = [max(death, ms.last_ts + 1) if ms.last_ts is not None else death for ms in stale]
        for ms, t in zip(stale, ts):
            ms.last_ts, ms.bad = t, True
        batch = device_batch(ent.mapping.path, [ms.point for ms in stale], ts, [ms.last_value for ms in stale],
                             np.full(len(stale), 2, np.uint8), source=SOURCE)
        return [(batch, [])]
