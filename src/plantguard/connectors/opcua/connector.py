"""OPC UA connector: one session per endpoint, one subscription per plant device, one monitored item per node.
The server pushes changes (no polling); each publish response becomes one RawBatch per device.

Recovery: the session is one supervised link. A lost connection, a subscription the server ended, or a server
that sends neither data nor keep-alives ends the link with SessionLost; supervise() waits with backoff and
jitter and the link starts over with a new client, a new session and the subscriptions recreated. Nothing of
the dead session is kept, so repeated restarts do not grow memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from plantguard.connectors.base import Backoff, Connector, LinkHealth, ProbeItem, ProbeResult, device_batch, mark_online, supervise
from plantguard.connectors.opcua.client import Change, ItemSpec, OpcUaError, Session
from plantguard.connectors.opcua.config import OpcUaConfig, OpcUaDevice, check
from plantguard.domain.readings import NO_TS, DeadLetter, RawBatch
from plantguard.errors import ConfigProblem
from plantguard.timeutil import iso

log = logging.getLogger(__name__)


@dataclass
class OpcUaLinkHealth(LinkHealth):
    notifications: int = 0  # publish responses that carried data changes
    non_numeric: int = 0  # values that could not be stored as numbers (sent as dead letters)
    dropped: int = 0  # changes dropped because the sink was slower than the server (bounded queue)
    backfilled: int = 0  # values recovered from the server's history after a reconnect (HistoryRead)
    gaps: int = 0  # outages of a node that could not be recovered (no history on the server)
    last_gap: str | None = None
    subscriptions: int = 0
    failed_nodes: list[str] = field(default_factory=list)  # "device/point node_id: status" of items the server refused
    client_deadband: list[str] = field(default_factory=list)  # items whose deadband the server refused; applied here


def quality_of(status: int) -> int:
    """StatusCode severity (top two bits): 00 Good -> 0, 01 Uncertain -> 1, 10/11 Bad -> 2."""
    sev = (status >> 30) & 3
    return 0 if sev == 0 else 1 if sev == 1 else 2


def to_number(v) -> float | None:
    """bool -> 0/1, finite int/float -> float, anything else (text, arrays, structures, NaN) -> None."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


class _Device:
    """Per-device state across reconnects: the point order of the items and the last value sent per point."""

    def __init__(self, d: OpcUaDevice) -> None:
        self.path = d.device
        self.cfg = d
        self.points = [n.point for n in d.nodes]
        n = len(self.points)
        self.deadband = np.array([x.deadband for x in d.nodes], np.float64)
        self.last_ts = np.full(n, NO_TS, np.int64)  # newest value time delivered per point: where a recovery starts
        self.client_deadband = np.zeros(n, bool)
        self.last_value = np.full(n, np.nan)
        self.last_quality = np.full(n, 255, np.int16)


class OpcUaConnector(Connector):
    type = "opcua"
    config_model = OpcUaConfig

    def __init__(self, cfg: OpcUaConfig, sink, **kw) -> None:
        super().__init__(cfg, sink, **kw)
        self.cfg: OpcUaConfig = cfg
        self._devices = [_Device(d) for d in cfg.devices]
        self._source = f"opcua:{cfg.name}"
        # One link: the session to the endpoint. Created here so health() shows it before the first connect.
        self._health = OpcUaLinkHealth(cfg.endpoint, since=self.clock())
        self.links[cfg.endpoint] = self._health

    @classmethod
    def check(cls, cfg: OpcUaConfig) -> list[ConfigProblem]:
        return check(cfg)

    # -- running ----------------------------------------------------------------------------------------------
    async def run(self) -> None:
        h = self._health
        backoff = Backoff(self.cfg.reconnect_min, self.cfg.reconnect_max)
        await supervise(h, partial(self._session, h, backoff), backoff, self.clock)

    async def _session(self, h: OpcUaLinkHealth, backoff: Backoff) -> None:
        session = await Session.open(self.cfg)
        try:
            by_path = await self._subscribe(session, h)
            await self._recover(session, h)
            mark_online(h, backoff, self.clock)
            while True:
                item = await session.next(1.0)
                h.dropped = session.stats.dropped
                if item is None:
                    continue
                key, changes = item
                h.notifications += 1
                h.requests = session.stats.publish_responses
                batch, dead = self._convert(by_path[key], changes, h)
                await self.deliver(batch, dead)
                h.last_ok = self.clock()
        finally:
            await session.close()

    async def _subscribe(self, session: Session, h: OpcUaLinkHealth) -> dict[str, _Device]:
        failed: list[str] = []
        client_db: list[str] = []
        dead: list[DeadLetter] = []
        for dev in self._devices:
            items = [ItemSpec(n.node_id, n.sampling_interval, n.deadband, n.queue_size) for n in dev.cfg.nodes]
            _, results = await session.subscribe(dev.path, dev.cfg.publishing_interval, self.cfg.keepalive, items)
            for i, (n, r) in enumerate(zip(dev.cfg.nodes, results)):
                dev.client_deadband[i] = r.ok and n.deadband > 0 and not r.server_deadband
                if dev.client_deadband[i]:
                    client_db.append(f"{dev.path}/{n.point}")
                if not r.ok:
                    failed.append(f"{dev.path}/{n.point} {n.node_id}: {r.status}")
                    dead.append(DeadLetter(self._source, f"the server refused to monitor {n.node_id}: {r.status}",
                                           point=f"{dev.path}/{n.point}", ts=self.clock(), code="protocol"))
        if failed and failed != h.failed_nodes:
            log.warning("%s: %d node(s) cannot be monitored: %s", self.name, len(failed), "; ".join(failed))
        h.failed_nodes, h.client_deadband, h.subscriptions = failed, client_db, len(self._devices)
        if dead:
            await self.deliver(RawBatch.build([], [], []), dead)
        return {d.path: d for d in self._devices}

    async def _recover(self, session: Session, h: OpcUaLinkHealth) -> None:
        """After a reconnect, what changed while no session was open: a new session cannot Republish the old
        subscription's notifications (they belonged to the dead session), so every point that had delivered
        values asks the server's history (HistoryRead) from its newest delivered value to now. Recovered values
        are stored as from the source '<source>:backfill'; a node without history is a gap, counted in health and
        kept as a dead letter that says which values are missing."""
        now = self.clock()
        for dev in self._devices:
            for i, node in enumerate(dev.cfg.nodes):
                since = int(dev.last_ts[i])
                if since == NO_TS or now - since <= 2 * max(1, int(node.sampling_interval * 1000)):
                    continue  # nothing delivered yet, or no time for a change to be missed
                changes = await session.history(node.node_id, since, now)
                point = f"{dev.path}/{dev.points[i]}"
                if changes is None:
                    h.gaps += 1
                    h.last_gap = f"{point}: {iso(since)} to {iso(now)}"
                    await self.deliver(RawBatch.build([], [], []), [DeadLetter(
                        self._source, f"values of {point} between {iso(since)} and {iso(now)} may be missing: the session was "
                        f"down and the server keeps no history of {node.node_id}", point=point, ts=now, code="gap")])
                    continue
                if changes:
                    changes = [Change(i, c.value, c.status, c.source_us, c.server_us) for c in changes]
                    batch, dead = self._convert(dev, changes, h)
                    batch.source = f"{self._source}:backfill"
                    h.backfilled += len(batch)
                    await self.deliver(batch, dead)

    def _convert(self, dev: _Device, changes: list[Change], h: OpcUaLinkHealth) -> tuple[RawBatch, list[DeadLetter]]:
        """One publish response of one device -> one batch (source timestamps kept) and its dead letters."""
        now = self.clock()
        pts, ts, val, qual, src = [], [], [], [], []
        dead: list[DeadLetter] = []
        for c in changes:
            i = c.handle
            if not 0 <= i < len(dev.points):
                continue
            q = quality_of(c.status)
            t = c.source_us or c.server_us or now
            v = to_number(c.value)
            if v is None:
                if q == 0:
                    h.non_numeric += 1
                    dead.append(DeadLetter(self._source, f"value is not numeric ({type(c.value).__name__})",
                                           point=f"{dev.path}/{dev.points[i]}", ts=t, value=repr(c.value)[:200], code="bad_value"))
                    continue
                # A bad/uncertain status often carries no value; keep the fault visible with the last value.
                last = dev.last_value[i]
                v = 0.0 if math.isnan(last) else float(last)
            if dev.client_deadband[i] and q == dev.last_quality[i] and abs(v - dev.last_value[i]) <= dev.deadband[i]:
                continue
            dev.last_value[i], dev.last_quality[i] = v, q
            if t > dev.last_ts[i]:
                dev.last_ts[i] = t
            pts.append(dev.points[i])
            ts.append(t)
            val.append(v)
            qual.append(q)
            src.append(c.source_us if c.source_us is not None else NO_TS)
        h.readings += len(pts)
        h.bad_readings += sum(1 for q in qual if q == 2)
        return device_batch(dev.path, pts, ts, val, qual, src, source=self._source), dead

    def health(self) -> dict:
        out = super().health()
        out["endpoint"] = self.cfg.endpoint
        return out

    # -- assessment ---------------------------------------------------------------------------------------------
    @classmethod
    async def probe(cls, cfg: OpcUaConfig, *, max_rps: float = 50.0, duration_s: float = 5.0) -> list[ProbeResult]:
        """Connects once, reads every configured node once, checks the sampling intervals against what the
        server states, then measures read latency for duration_s (at most max_rps reads/s). Read-only."""
        res = ProbeResult(connector=cfg.name, link=cfg.endpoint, endpoint=cfg.endpoint, reachable=False)
        sec = cfg.security
        if sec.mode == "None":
            res.risks.append("security mode None: traffic is neither signed nor encrypted")
        elif not sec.server_certificate:
            res.risks.append("server certificate not trusted explicitly (security.server_certificate unset): "
                             "the certificate the server presents is accepted without check")
        if cfg.password is not None and sec.mode == "None":
            res.risks.append("a password is sent over a channel without security mode")
        t0 = time.perf_counter()
        try:
            session = await Session.open(cfg)
        except OpcUaError as e:
            res.notes.append(str(e))
            res.risks.append(f"cannot connect: {e}")
            return [res]
        res.reachable = True
        res.connect_ms = (time.perf_counter() - t0) * 1000
        try:
            min_rate = await session.server_min_sampling()
            good_nodes: list[str] = []
            lat: list[float] = []
            for d in cfg.devices:
                for n in d.nodes:
                    r = await session.read(n.node_id)
                    lat.append(r.latency_s * 1000)
                    name = r.status_name
                    ok = quality_of(r.status) < 2
                    res.items.append(ProbeItem(n.node_id, ok, f"{name}: {r.value!r}"[:200], r.latency_s * 1000))
                    if name in ("BadNodeIdUnknown", "BadNodeIdInvalid"):
                        res.risks.append(f"node {n.node_id} ({d.device}/{n.point}) does not exist on the server")
                        continue
                    if not ok:
                        res.risks.append(f"node {n.node_id} ({d.device}/{n.point}) reads with status {name}")
                    else:
                        good_nodes.append(n.node_id)
                    m = await session.read(n.node_id, "MinimumSamplingInterval")
                    floor = m.value if quality_of(m.status) == 0 and isinstance(m.value, (int, float)) and m.value > 0 else None
                    if min_rate and (floor is None or min_rate > floor):
                        floor = min_rate
                    if floor is not None and n.sampling_interval < floor:
                        res.risks.append(f"{d.device}/{n.point}: sampling_interval {n.sampling_interval:g} ms is below the "
                                         f"server's minimum {floor:g} ms (the server will sample slower)")
            deadline = time.monotonic() + duration_s
            gap = 1.0 / max_rps if max_rps > 0 else 0.0
            k = 0
            while good_nodes and time.monotonic() < deadline:
                r = await session.read(good_nodes[k % len(good_nodes)])
                lat.append(r.latency_s * 1000)
                k += 1
                await asyncio.sleep(max(0.0, gap - r.latency_s))
            if lat:
                res.latency_ms_p50, res.latency_ms_p95 = (float(x) for x in np.percentile(lat, [50, 95]))
            res.planned_rps = sum(1000.0 / d.publishing_interval for d in cfg.devices)
            res.notes.append(f"negotiated security mode {session.security_mode()}; subscriptions: the server pushes "
                             "changes, planned_rps counts publish responses per second at most")
        except OpcUaError as e:
            res.risks.append(f"the session failed during the probe: {e}")
        finally:
            await session.close()
        return [res]
