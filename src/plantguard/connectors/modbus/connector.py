"""The Modbus connector: one bus (TCP endpoint or serial line) and the devices (unit ids) behind it.

Each device is a supervised task polling its planned blocks once per period; all devices on a socket or serial
line share one `Bus`, whose lock makes it the only owner of the line (one request in flight, RTU silence
between frames). A device that stops answering raises out of its poll; supervise() backs it off with jitter,
so it costs the others at most one timeout per backoff step, never a stalled bus.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from typing import Callable

import numpy as np

from plantguard.connectors.base import (Backoff, Connector, ExceptionReporter, LinkHealth, PollBudget, ProbeItem,
                                        ProbeResult, device_batch, link, mark_online, supervise)
from plantguard.connectors.modbus.client import EXCEPTION_NAMES, ModbusClient, ModbusLinkError, ModbusTimeout, Reply
from plantguard.connectors.modbus.config import DeviceConfig, ModbusConfig, RtuTransport, check_config
from plantguard.connectors.modbus.planner import Block, BlockDecoder, PointSpec, encode_value, plan, specs_of
from plantguard.errors import ConfigProblem, InvalidInput
from plantguard.timeutil import now_us

log = logging.getLogger(__name__)
audit_log = logging.getLogger("plantguard.audit")

GATEWAY_SILENT = (10, 11)  # a gateway answering for a unit that does not: the unit is offline, not the data bad
_CLOSE_AFTER_TIMEOUTS = 3  # consecutive unanswered requests (any unit) before a TCP socket is presumed dead

_claimed_lines: dict[str, str] = {}  # serial port -> connector name: a line has one owner in the process
_claims_lock = threading.Lock()


class WriteRefused(InvalidInput):
    """A write to an unknown or non-writable point, or a value it cannot hold."""


class WriteFailed(ModbusLinkError):
    """The device refused the write (exception response) or did not answer."""


def default_audit(record: dict) -> None:
    audit_log.info("modbus write %s", record)


def _endpoint(cfg: ModbusConfig) -> str:
    t = cfg.transport
    return t.serial_port if isinstance(t, RtuTransport) else f"{t.host}:{t.port}"


def _make_client(cfg: ModbusConfig) -> ModbusClient:
    t = cfg.transport
    if isinstance(t, RtuTransport):
        return ModbusClient(kind="rtu", timeout_s=cfg.timeout_ms / 1000, serial_port=t.serial_port, baudrate=t.baudrate,
                            parity=t.parity, stopbits=t.stopbits, bytesize=t.bytesize)
    return ModbusClient(kind=t.kind, timeout_s=cfg.timeout_ms / 1000, host=t.host, port=t.port)


class Bus:
    """The single owner of one socket or serial line, shared by every unit id behind it."""

    def __init__(self, name: str, make_client: Callable[[], ModbusClient], *, frame_gap_s: float, serial: bool,
                 reconnect_min: float, reconnect_max: float, clock=now_us) -> None:
        self.name = name
        self.health = LinkHealth(name, since=clock())
        self._make = make_client
        self._client: ModbusClient | None = None
        self._lock = asyncio.Lock()
        self._gap = frame_gap_s
        self._serial = serial
        self._last_end = 0.0
        self._timeouts = 0
        self._backoff = Backoff(reconnect_min, reconnect_max)
        self._retry_at = 0.0
        self._clock = clock

    async def _ensure(self) -> ModbusClient:
        if self._client is not None and self._client.connected:
            return self._client
        now = time.monotonic()
        if now < self._retry_at:
            raise ModbusLinkError(f"{self.name}: not connected (next attempt in {self._retry_at - now:.1f} s)")
        if self._client is not None:
            self._client.close()
        self._client = self._make()
        t0 = time.perf_counter()
        try:
            await self._client.connect()
        except ModbusLinkError as e:
            self._fail(e)
            self._retry_at = time.monotonic() + self._backoff.next()
            raise
        self.health.observe_latency(time.perf_counter() - t0)
        self._timeouts = 0
        return self._client

    def _fail(self, e: Exception) -> None:
        h = self.health
        h.errors += 1
        h.last_error = f"{type(e).__name__}: {e}"
        if h.state != "backoff":
            log.warning("%s: bus down: %s", self.name, h.last_error)
        else:
            log.debug("%s: bus still down: %s", self.name, h.last_error)
        if h.state != "backoff":
            h.since = self._clock()
        h.state = "backoff"
        h.reconnects += 1

    def _ok(self) -> None:
        self._timeouts = 0
        mark_online(self.health, self._backoff, self._clock)

    async def call(self, op: Callable[[ModbusClient], object]) -> Reply:
        """Runs one request with the line to itself; transport failures raise ModbusLinkError."""
        async with self._lock:
            client = await self._ensure()
            if self._gap:
                wait = self._last_end + self._gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                reply = await op(client)
            except ModbusTimeout:
                self._timeouts += 1
                if self._timeouts >= _CLOSE_AFTER_TIMEOUTS and not self._serial:
                    self._fail(ModbusLinkError(f"{self._timeouts} requests in a row unanswered; reconnecting"))
                    client.close()
                raise
            except ModbusLinkError as e:
                self._fail(e)
                client.close()
                raise
            finally:
                self._last_end = time.monotonic()
            self.health.requests += 1
            self._ok()
            return reply

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _Device:
    """Runtime state of one polled device."""

    def __init__(self, cfg: DeviceConfig, gap: int, block: int, block_bits: int, bus: Bus) -> None:
        self.cfg = cfg
        self.path = cfg.device
        self.unit = cfg.unit
        self.bus = bus
        self.points: list[PointSpec] = specs_of(cfg)
        self.by_id = {p.id: p for p in self.points}
        self.blocks: list[Block] = plan(self.points, max_gap=gap, max_block=block, max_block_bits=block_bits)
        self.decoders = [BlockDecoder(b, self.points) for b in self.blocks]
        hb = cfg.report.heartbeat
        from plantguard.timeutil import parse_duration_us

        hb_us = parse_duration_us(hb)
        self.reporters = [ExceptionReporter(np.array([self.points[i].deadband for i in d.numeric]), hb_us) for d in self.decoders]
        self.ids = np.array([p.id for p in self.points], dtype=object)
        self.last_good = np.zeros(len(self.points))  # bad readings carry the last good value: the pipeline refuses NaN
        self.last_value: dict[str, tuple[int, float]] = {}  # point -> (ts, value) of the last good read
        self.strings: dict[str, str] = {}
        self.exceptions: dict[str, int] = {}  # "code name" -> count
        self.block_errors: dict[str, int] = {}  # block -> last exception code (to log changes only)
        self.skipped_cycles = 0
        self.budget: PollBudget | None = None  # created inside the connector's loop


class ModbusConnector(Connector):
    type = "modbus"
    config_model = ModbusConfig

    def __init__(self, cfg: ModbusConfig, sink, *, clock=now_us, audit: Callable[[dict], None] | None = None) -> None:
        super().__init__(cfg, sink, clock=clock)
        self.audit = audit or default_audit
        # (device path, point, user) -> why a write is refused now, or None (the security capability: quarantine,
        # write windows)
        self.write_gate: Callable[..., str | None] = lambda device, point=None, user=None: None
        self.endpoint = _endpoint(cfg)
        t = cfg.transport
        serial = isinstance(t, RtuTransport)
        n_sockets = 1 if serial else t.connections
        gap_s = t.frame_gap_s() if serial else 0.0
        self.buses = [Bus(f"{self.name}:{self.endpoint}" + (f"#{k}" if n_sockets > 1 else ""), lambda: _make_client(cfg),
                          frame_gap_s=gap_s, serial=serial, reconnect_min=min(cfg.reconnect_min, 1.0),
                          reconnect_max=cfg.reconnect_max, clock=clock) for k in range(n_sockets)]
        self.devices = [_Device(d, *cfg.gap_block(d), self.buses[i % n_sockets]) for i, d in enumerate(cfg.devices)]
        self._by_path = {d.path: d for d in self.devices}

    @classmethod
    def check(cls, cfg: ModbusConfig) -> list[ConfigProblem]:
        return check_config(cfg)

    # -- polling ------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        t = self.cfg.transport
        claimed = None
        if isinstance(t, RtuTransport):
            with _claims_lock:
                owner = _claimed_lines.get(t.serial_port)
                if owner is not None and owner != self.name:
                    raise RuntimeError(f"serial line {t.serial_port} is already owned by connector {owner!r}")
                _claimed_lines[t.serial_port] = claimed = self.name
        tasks = []
        try:
            for d in self.devices:
                d.budget = PollBudget(d.cfg.max_rps, d.cfg.max_concurrent)
                h = link(self, d.path)
                backoff = Backoff(self.cfg.reconnect_min, self.cfg.reconnect_max)
                tasks.append(asyncio.create_task(supervise(h, lambda d=d, h=h, b=backoff: self._poll_forever(d, h, b), backoff, self.clock)))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for b in self.buses:
                b.close()
            if claimed:
                with _claims_lock:
                    _claimed_lines.pop(t.serial_port, None)

    async def _poll_forever(self, d: _Device, h: LinkHealth, backoff: Backoff) -> None:
        period = d.cfg.poll_us / 1e6
        nxt = time.monotonic()
        while True:
            await self.poll_once(d, h)
            mark_online(h, backoff, self.clock)
            nxt += period
            now = time.monotonic()
            if now > nxt:  # overran: skip the missed cycles rather than firing them back to back
                missed = int((now - nxt) // period) + 1
                d.skipped_cycles += missed
                nxt += missed * period
            await asyncio.sleep(nxt - now)

    async def poll_once(self, d: _Device, h: LinkHealth) -> None:
        """Reads every block once and delivers what changed; a transport failure raises after delivering the
        blocks already read (never dropped)."""
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        err: Exception | None = None
        if d.cfg.max_concurrent > 1 and len(d.blocks) > 1:
            res = await asyncio.gather(*(self._read_block(d, h, k) for k in range(len(d.blocks))), return_exceptions=True)
            for r in res:
                if isinstance(r, BaseException):
                    if isinstance(r, asyncio.CancelledError):
                        raise r
                    err = err or r
                elif r is not None:
                    parts.append(r)
        else:
            for k in range(len(d.blocks)):
                try:
                    r = await self._read_block(d, h, k)
                except ModbusLinkError as e:
                    err = e
                    break
                if r is not None:
                    parts.append(r)
        if parts:
            idx = np.concatenate([p[0] for p in parts])
            if len(idx):
                batch = device_batch(d.path, d.ids[idx].tolist(), np.concatenate([p[1] for p in parts]),
                                     np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts]),
                                     source=f"modbus:{self.name}")
                h.readings += len(batch)
                await self.deliver(batch)
        if err is not None:
            raise err

    async def _read_block(self, d: _Device, h: LinkHealth, k: int):
        block, dec, rep = d.blocks[k], d.decoders[k], d.reporters[k]
        async with d.budget:
            t0 = time.perf_counter()
            reply = await d.bus.call(lambda c: c.read(block.table, d.unit, block.start, block.count))
            ts = self.clock()  # the time of the answer, never of the delivery
            h.observe_latency(time.perf_counter() - t0)
        h.requests += 1
        code = reply.exception_code
        if code in GATEWAY_SILENT:
            raise ModbusTimeout(f"unit {d.unit}: gateway reports exception {code} ({EXCEPTION_NAMES.get(code)})")
        idx = dec.numeric
        n = len(idx)
        if code is None:
            idx, values = dec.decode(reply.values)
            quality = np.zeros(n, np.uint8)
            d.last_good[idx] = values
            if dec.strings:
                d.strings.update(dec.decode_strings(reply.values))
            if d.block_errors.pop(str(block), None) is not None:
                log.info("%s: %s reads again", d.path, block)
        else:
            values = d.last_good[idx]
            quality = np.full(n, 2, np.uint8)
            name = f"{code} {EXCEPTION_NAMES.get(code, 'unknown')}"
            d.exceptions[name] = d.exceptions.get(name, 0) + 1
            h.bad_readings += n
            if d.block_errors.get(str(block)) != code:
                log.warning("%s: unit %d answers %s with exception %s: its points are stored with bad quality",
                            d.path, d.unit, block, name)
            d.block_errors[str(block)] = code
        if not n:
            return None
        tsa = np.full(n, ts, np.int64)
        send = rep.select(tsa, values, quality)
        if code is None:
            for i, v in zip(idx.tolist(), values.tolist()):
                d.last_value[d.points[i].id] = (ts, v)
        if not send.all():
            idx, tsa, values, quality = idx[send], tsa[send], values[send], quality[send]
        return idx, tsa, values, quality

    async def deliver(self, batch, dead=None) -> None:
        # Shielded: cancelling a poll at stop() must not cancel the sink's future, which the pipeline's writer
        # thread resolves later (an InvalidStateError there would stop the writer).
        if not len(batch) and not dead:
            return
        fut = await asyncio.to_thread(self.sink.submit, batch, dead)
        await asyncio.shield(asyncio.wrap_future(fut))

    def health(self) -> dict:
        out = super().health()
        for d in self.devices:
            ln = out["links"].get(d.path)
            if ln is not None:
                ln.update(unit=d.unit, blocks=len(d.blocks), modbus_exceptions=dict(d.exceptions),
                          skipped_cycles=d.skipped_cycles, strings=dict(d.strings))
        out["buses"] = {b.name: b.health.as_dict() for b in self.buses}
        return out

    # -- writes ---------------------------------------------------------------------------------------------------
    @classmethod
    def writable_points(cls, cfg: ModbusConfig) -> set[str]:
        """Tags this configuration allows writes to (`writable: true`)."""
        return {f"{d.device}/{p.id}" for d in cfg.devices for p in d.points if p.writable}

    def writes_point(self, point: str) -> bool:
        dev_path, _, pid = point.rpartition("/")
        d = self._by_path.get(dev_path)
        spec = d.by_id.get(pid) if d else None
        return spec is not None and spec.writable

    async def write(self, point: str, value: float, user: str) -> dict:
        """Writes `value` to `point` ('site/area/line/asset/device/point'). Refused (WriteRefused) unless the point
        is configured writable; every attempt, accepted or not, is handed to the audit callback."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop and self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._write(point, value, user), self._loop)
            return await asyncio.wrap_future(fut)
        return await self._write(point, value, user)

    async def _write(self, point: str, value: float, user: str) -> dict:
        dev_path, _, pid = point.rpartition("/")
        d = self._by_path.get(dev_path)
        spec = d.by_id.get(pid) if d else None
        old = d.last_value.get(pid) if d else None
        rec = {"ts": now_us(), "user": user, "connector": self.name, "point": point, "value": value,
               "old_value": old[1] if old else None, "old_ts": old[0] if old else None}

        def done(result: str, **extra) -> dict:
            rec.update(result=result, **extra)
            try:
                self.audit(dict(rec))
            except Exception:  # noqa: BLE001 - a broken audit sink must be visible, and must not hide the write
                log.exception("audit callback failed for a write to %s", point)
            return rec

        blocked = self.write_gate(dev_path, point=point, user=user) if d is not None else None
        if blocked:
            done(f"refused: {blocked}")
            raise WriteRefused(f"{point}: {blocked}")
        if spec is None:
            done("refused: unknown point")
            raise WriteRefused(f"{point}: not a point of modbus connector {self.name!r}")
        if not spec.writable:
            done("refused: point is not writable")
            raise WriteRefused(f"{point}: not writable (set writable: true in the connector configuration)")
        try:
            regs = encode_value(spec, value)
        except ValueError as e:
            done(f"refused: {e}")
            raise WriteRefused(f"{point}: {e}") from None
        try:
            reply = await d.bus.call(lambda c: c.write(spec.table, d.unit, spec.address, regs))
        except ModbusLinkError as e:
            done(f"failed: {e}", registers=regs)
            raise WriteFailed(f"{point}: {e}") from None
        if not reply.ok:
            code = reply.exception_code
            done(f"failed: exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})", registers=regs)
            raise WriteFailed(f"{point}: device answered exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")
        return done("ok", registers=regs)

    # -- assessment -----------------------------------------------------------------------------------------------
    @classmethod
    async def probe(cls, cfg: ModbusConfig, *, max_rps: float = 50.0, duration_s: float = 5.0) -> list[ProbeResult]:
        """Read-only: connects, reads each planned block once, then steps the request rate up (bounded by max_rps,
        the device's max_rps and duration_s) and reports the highest rate whose latency stayed near idle."""
        endpoint = _endpoint(cfg)
        results = []
        client = _make_client(cfg)
        t0 = time.perf_counter()
        try:
            await client.connect()
            connect_ms = (time.perf_counter() - t0) * 1000
            reachable = True
        except ModbusLinkError as e:
            client.close()
            return [ProbeResult("modbus", d.device, endpoint, False, risks=[f"cannot connect to {endpoint}: {e}"]) for d in cfg.devices]
        gap_s = cfg.transport.frame_gap_s() if isinstance(cfg.transport, RtuTransport) else 0.0
        try:
            for dc in cfg.devices:
                results.append(await cls._probe_device(cfg, dc, client, endpoint, connect_ms, reachable, max_rps, duration_s / max(1, len(cfg.devices)), gap_s))
        finally:
            client.close()
        return results

    @classmethod
    async def _probe_device(cls, cfg, dc: DeviceConfig, client: ModbusClient, endpoint, connect_ms, reachable, max_rps, duration_s, gap_s) -> ProbeResult:
        res = ProbeResult("modbus", dc.device, endpoint, reachable, connect_ms=round(connect_ms, 2))
        points = specs_of(dc)
        blocks = plan(points, **dict(zip(("max_gap", "max_block", "max_block_bits"), cfg.gap_block(dc))))
        res.planned_rps = round(len(blocks) / (dc.poll_us / 1e6), 2) if dc.poll_us else None
        lat: list[float] = []
        silent = 0
        for b in blocks:
            t = time.perf_counter()
            try:
                r = await client.read(b.table, dc.unit, b.start, b.count)
            except ModbusLinkError as e:
                silent += 1
                res.items.append(ProbeItem(str(b), False, f"{type(e).__name__}: {e}"))
                if not client.connected:
                    await client.connect()
                continue
            ms = (time.perf_counter() - t) * 1000
            lat.append(ms)
            if r.ok:
                res.items.append(ProbeItem(str(b), True, f"{len(b.points)} point(s)", round(ms, 2)))
            else:
                res.items.append(ProbeItem(str(b), False, f"exception {r.exception_code} ({EXCEPTION_NAMES.get(r.exception_code, 'unknown')})", round(ms, 2)))
            await asyncio.sleep(gap_s)
        if silent == len(blocks):
            res.risks.append(f"unit id {dc.unit} does not answer (timeout {cfg.timeout_ms:g} ms on every block)")
            return res
        bad = [i for i in res.items if not i.ok]
        if bad:
            res.risks.append(f"{len(bad)} of {len(blocks)} block(s) return errors: their points would be stored with bad quality ({', '.join(i.target for i in bad)})")
        # rate steps: the first block that reads, sent at increasing rates; safe = latency still near idle
        probe_block = next((blocks[k] for k, it in enumerate(res.items) if it.ok), blocks[0])
        limit = min(max_rps, dc.max_rps)
        steps = [r for r in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if r < limit] + [limit]
        idle = statistics.median(lat) if lat else None
        safe = None
        per_step = max(0.2, duration_s / len(steps))
        all_lat = list(lat)
        for rate in steps:
            got: list[float] = []
            errors = 0
            t_end = time.perf_counter() + per_step
            nxt = time.perf_counter()
            while time.perf_counter() < t_end:
                t = time.perf_counter()
                try:
                    r = await client.read(probe_block.table, dc.unit, probe_block.start, probe_block.count)
                    got.append((time.perf_counter() - t) * 1000)
                except ModbusLinkError:
                    errors += 1
                    if not client.connected:
                        break
                nxt += 1 / rate
                await asyncio.sleep(max(gap_s, nxt - time.perf_counter()))
            if not got:
                break
            all_lat += got
            med = statistics.median(got)
            achieved = len(got) / per_step
            if idle is None:
                idle = med
            if errors or med > max(2 * idle, idle + 5) or achieved < 0.8 * rate:
                break
            safe = rate
        if all_lat:
            s = sorted(all_lat)
            res.latency_ms_p50 = round(s[len(s) // 2], 2)
            res.latency_ms_p95 = round(s[min(len(s) - 1, int(len(s) * 0.95))], 2)
        res.safe_poll_rps = safe
        if safe is None:
            res.risks.append("the device did not sustain even 1 request/s with latency near idle")
        elif res.planned_rps and res.planned_rps > safe:
            res.risks.append(f"planned rate {res.planned_rps:g} requests/s is above the rate sustained with idle latency ({safe:g}/s)")
        res.notes.append(f"{len(blocks)} block(s) for {len(points)} point(s); rate stepped up to {limit:g}/s for about {per_step * len(steps):.1f} s")
        return res
