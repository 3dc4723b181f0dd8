"""The simulator: RawBatches of simulated readings, paced against a clock, delivered to sinks.

    sim = Simulator(demo_config("./data"), seed=42, start_us=now - 6 * 3600 * US, speed=math.inf)
    sim.inject(BearingWear(asset="filler-feed-pump", start_us=..., time_to_failure_s=36000))
    sim.add_sink(PipelineSink(platform.pipeline))      # or MqttSink("127.0.0.1", 1883)
    sim.run(until_us=...)                               # blocking; or sim.start() ... sim.stop()

Pacing: simulated time advances at `speed` simulated seconds per wall second (math.inf: as fast as sinks take
it), but never past `clock()`: a simulation started in the past backfills, then follows the clock in real time.
No reading is ever stamped in the future.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from plantguard.domain.model import PlantConfig
from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.sim import faults as F
from plantguard.sim.signals import _BLOCK, _FLOOD, _SPIKE, PlantModel, SignalSpec, _Blocks, keyed_rng
from plantguard.timeutil import US, Clock, now_us

log = logging.getLogger(__name__)


class Simulator:
    def __init__(self, config: dict | PlantConfig, seed: int = 0, start_us: int | None = None, speed: float = 1.0, *,
                 clock: Clock = now_us, specs: dict[str, SignalSpec] | None = None, chunk_ticks: int = 300,
                 source: str = "sim") -> None:
        if speed <= 0:
            raise ValueError("speed must be positive (math.inf: as fast as possible)")
        self.cfg = config if isinstance(config, PlantConfig) else parse_config(config)
        if specs is None:
            from plantguard.sim.plant import demo_signals

            specs = demo_signals()  # matched by asset/device/point; other plants get inferred specs
        self.seed = seed
        self.speed = speed
        self.clock = clock
        self.chunk_ticks = chunk_ticks
        self.source = source
        self.model = PlantModel(self.cfg, seed, specs)
        self.tick_us = self.model.tick_us
        start = clock() if start_us is None else int(start_us)
        self._k = -(-start // self.tick_us)  # first tick at or after start, on the absolute tick grid
        self.start_us = self._k * self.tick_us
        self._y: np.ndarray | None = None
        self.faults: list[F.Fault] = []
        self._targets: list[int] = []
        self._stuck: dict[int, float] = {}
        self._spike_rows: dict[int, _Blocks] = {}
        self.sinks: list = []
        self.readings = 0
        self.ticks = 0
        self.gen_seconds = 0.0
        self.caught_up_wall_us: int | None = None  # clock() when the simulation first reached it
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- set-up ---------------------------------------------------------------------------------------------
    @property
    def time_us(self) -> int:
        """Timestamp of the newest generated tick (simulated 'now')."""
        return (self._k - 1) * self.tick_us

    def now(self) -> int:
        """A Clock that follows the simulation, for a Platform fed by it faster than real time."""
        return self.time_us

    def end_fault(self, fault: F.Fault, at_us: int | None = None) -> F.Fault:
        """Ends an injected fault now (or at `at_us`): the rollback of a drill."""
        from dataclasses import replace

        n = self.faults.index(fault)
        end = max(fault.start_us + 1, self.time_us + self.tick_us if at_us is None else int(at_us))
        self.faults[n] = replace(fault, end_us=end if fault.end_us is None else min(fault.end_us, end))
        return self.faults[n]

    def add_sink(self, sink) -> "Simulator":
        """A sink has send(batch, live) (and optionally flush(), close()), or is a callable taking a batch."""
        self.sinks.append(sink)
        return self

    def inject(self, fault: F.Fault | str, **kw) -> F.Fault:
        """inject(StuckSensor(point=..., start_us=t)) or inject('stuck', at_us=t, duration_s=600, point=...)."""
        if isinstance(fault, str):
            fault = F.make_fault(fault, **kw)
        if isinstance(fault, F.BearingWear):
            target = self.model.find(fault.asset, "asset")
        elif isinstance(fault, (F.StuckSensor, F.Spikes, F.Drift)):
            target = self.model.find(fault.point, "point")
        elif isinstance(fault, (F.DeviceOffline, F.MessageFlood)):
            target = self.model.find(fault.device, "device")
        elif isinstance(fault, F.LineStop):
            target = self.model.lines.index(next(x for x in self.model.lines if x == fault.line or x.endswith("/" + fault.line)))
        else:
            raise TypeError(f"not a fault: {fault!r}")
        self.faults.append(fault)
        self._targets.append(target)
        return fault

    # -- generation -----------------------------------------------------------------------------------------
    def generate(self, n_ticks: int = 1) -> RawBatch:
        """The next n ticks as one batch, regardless of the clock (tests, benchmarks, custom pacing). The result
        does not depend on how the ticks are split into calls."""
        t0 = time.perf_counter()
        idx, ts, vals = self._chunk(self._k, n_ticks)
        self._k += n_ticks
        batch = RawBatch.build(self.model.tag_arr[idx].tolist(), ts, vals, source=self.source)
        self.ticks += n_ticks
        self.readings += len(batch)
        self.gen_seconds += time.perf_counter() - t0
        return batch

    def _chunk(self, k0: int, n: int):
        m = self.model
        k = np.arange(k0, k0 + n, dtype=np.int64)
        t = k * self.tick_us
        wear = np.zeros((n, len(m.assets)))
        failed = np.zeros((n, len(m.assets)), bool)
        stopped = np.zeros((n, len(m.lines)), bool)
        off = np.zeros((n, len(m.devices)), bool)
        floods = []
        for f, tg in zip(self.faults, self._targets):
            if isinstance(f, F.BearingWear):
                wear[:, tg] = np.maximum(wear[:, tg], f.wear(t))
                failed[:, tg] |= f.failed(t)
                continue
            act = f.active(t)
            if not act.any():
                continue
            if isinstance(f, F.LineStop):
                stopped[:, tg] |= act
            elif isinstance(f, F.DeviceOffline):
                off[:, tg] |= act
            elif isinstance(f, F.MessageFlood):
                floods.append((tg, f.factor, act))
        state = m.machine_state(t, failed, stopped)
        if self._y is None:
            self._y = m.initial(int(t[0]), state, wear)
        vals = m.block(k0, t, state, wear, self._y)
        self._value_faults(k0, t, vals)

        emit = (k[:, None] % m.period_ticks[None, :]) == 0
        extra = []
        for dev, factor, act in floods:
            extra.extend(self._flood(dev, factor, act, k, t, vals, emit))
        if off.any():
            emit &= ~off[:, m.device_of]
        r, c = np.nonzero(emit)
        idx, ts, v = c, t[r], vals[r, c]
        if extra:
            ei, et, ev = (np.concatenate(x) for x in zip(*extra))
            keep = ~off[(et - t[0] + self.tick_us - 1) // self.tick_us, m.device_of[ei]]
            idx, ts, v = np.concatenate([idx, ei[keep]]), np.concatenate([ts, et[keep]]), np.concatenate([v, ev[keep]])
            o = np.argsort(ts, kind="stable")
            idx, ts, v = idx[o], ts[o], v[o]
        return idx, ts, v

    def _flood(self, dev: int, factor: int, act: np.ndarray, k: np.ndarray, t: np.ndarray, vals: np.ndarray, emit: np.ndarray):
        """A flooding device samples every period/factor: on ticks in between, and between ticks, stamped
        (t - tick, t] so nothing is ever ahead of the simulated time."""
        m = self.model
        out = []
        for i in np.flatnonzero(m.device_of == dev).tolist():
            s = max(1000, int(m.period_us[i]) // factor // 1000 * 1000)  # whole ms: MQTT carries ms timestamps
            if s >= self.tick_us:
                s = s // self.tick_us * self.tick_us
                emit[act, i] |= (t[act] % s) == 0
                continue
            emit[act, i] = True
            j = np.arange(1, self.tick_us // s)[::-1]
            if not len(j):
                continue
            for r in np.flatnonzero(act).tolist():
                v = np.full(len(j), vals[r, i])
                if m.is_analog[i]:
                    z = keyed_rng(self.seed, _FLOOD, int(k[r]), i).standard_normal(len(j))
                    v = np.round(np.clip(v + (m.noise[i] + m.noise_rel[i] * abs(vals[r, i])) * z, m.low[i], m.high[i]),
                                 int(m.decimals[i]))
                out.append((np.full(len(j), i), t[r] - j * s, v))
        return out

    def _value_faults(self, k0: int, t: np.ndarray, vals: np.ndarray) -> None:
        m = self.model
        for n, (f, i) in enumerate(zip(self.faults, self._targets)):
            if isinstance(f, F.StuckSensor):
                act = f.active(t)
                if act.any():
                    first = int(np.argmax(act))
                    held = self._stuck.setdefault(n, float(vals[first, i]))
                    vals[act, i] = held
                if not act[-1]:
                    self._stuck.pop(n, None)
            elif isinstance(f, F.Drift):
                act = f.active(t)
                if act.any():
                    off = (t[act] - f.start_us) / (3600.0 * US) * f.per_hour * m.span[i]
                    vals[act, i] = np.clip(vals[act, i] + off, m.low[i], m.high[i])
            elif isinstance(f, F.Spikes):
                act = f.active(t)
                if not act.any():
                    continue
                rows = self._spike_rows.get(n)
                if rows is None:
                    rows = self._spike_rows[n] = _Blocks(self.seed, _SPIKE * 1000 + n, lambda r: r.uniform(size=(_BLOCK, 2)))
                u = rows.rows(k0, len(t))
                p = f.per_hour * (m.period_us[i] / US) / 3600.0  # per emitted reading
                hit = act & (u[:, 0] < p) & ((np.arange(k0, k0 + len(t)) % m.period_ticks[i]) == 0)
                for r in np.flatnonzero(hit).tolist():
                    jump = f.magnitude * m.span[i] * (1 if u[r, 1] < 0.5 else -1)
                    if not m.low[i] <= vals[r, i] + jump <= m.high[i]:
                        jump = -jump  # spike the other way rather than out of the range
                    v = float(np.clip(vals[r, i] + jump, m.low[i], m.high[i]))
                    vals[r, i] = round(v) if m.integer[i] else round(v, int(m.decimals[i]))

    # -- pacing ---------------------------------------------------------------------------------------------
    def run(self, until_us: int | None = None, duration_s: float | None = None) -> int:
        """Runs until simulated time `until_us`, or `duration_s` simulated seconds from now, or stop().
        Returns the number of readings produced by this call."""
        end = until_us
        if duration_s is not None:
            d_end = self._k * self.tick_us + int(duration_s * US) - 1
            end = d_end if end is None else min(end, d_end)
        produced0 = self.readings
        anchor_wall, anchor_sim = time.monotonic(), self._k * self.tick_us
        self._stop.clear()
        try:
            while not self._stop.is_set():
                nxt = self._k * self.tick_us
                if end is not None and nxt > end:
                    break
                cap = self.clock()
                target = cap
                if not math.isinf(self.speed):
                    target = min(cap, anchor_sim + int((time.monotonic() - anchor_wall) * self.speed * US))
                if end is not None:
                    target = min(target, end)
                if nxt <= target:
                    n = int(min(self.chunk_ticks, (target - nxt) // self.tick_us + 1))
                    batch = self.generate(n)
                    live = cap - self.time_us < 2 * self.tick_us
                    if live and self.caught_up_wall_us is None:
                        self.caught_up_wall_us = cap
                    self._send(batch, live)
                    continue
                wait = (nxt - cap) / US
                if not math.isinf(self.speed):
                    wait = max(wait, (nxt - anchor_sim) / (self.speed * US) - (time.monotonic() - anchor_wall))
                self._stop.wait(min(max(wait, 0.001), 0.25))
        finally:
            self._flush()
        return self.readings - produced0

    def _send(self, batch: RawBatch, live: bool) -> None:
        if not len(batch):
            return
        for s in self.sinks:
            if hasattr(s, "send"):
                s.send(batch, live)
            else:
                s(batch)

    def _flush(self) -> None:
        for s in self.sinks:
            fl = getattr(s, "flush", None)
            if fl is not None:
                try:
                    fl()
                except Exception:  # noqa: BLE001 - a sink failing on the way out must not hide the run's result
                    log.exception("sink %s failed to flush", type(s).__name__)

    # -- background mode ------------------------------------------------------------------------------------
    def start(self, until_us: int | None = None, duration_s: float | None = None) -> "Simulator":
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the simulator is already running")

        def go():
            try:
                self.run(until_us, duration_s)
            except BaseException as e:  # noqa: BLE001 - kept for the owner to inspect; the thread just ends
                self.error = e
                log.exception("simulator stopped on an error")

        self._stop.clear()
        self._thread = threading.Thread(target=go, name="plantguard-sim", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        self.stop()
        for s in self.sinks:
            c = getattr(s, "close", None)
            if c is not None:
                c()

    def rate(self) -> float:
        """Readings generated per second of generation time."""
        return self.readings / self.gen_seconds if self.gen_seconds else 0.0


# -- sinks ------------------------------------------------------------------------------------------------------
class PipelineSink:
    """In-process delivery: Pipeline.submit, which blocks while the ingest queue is full (backpressure). With
    max_in_flight, at most that many batches wait to be written, keeping the simulation close to the store."""

    def __init__(self, pipeline, timeout: float | None = None, max_in_flight: int | None = None) -> None:
        self.pipeline = pipeline
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self._futures: deque = deque()

    def send(self, batch: RawBatch, live: bool) -> None:
        self._futures.append(self.pipeline.submit(batch, timeout=self.timeout))
        while self._futures and (self._futures[0].done() or
                                 (self.max_in_flight is not None and len(self._futures) > self.max_in_flight)):
            self._futures.popleft().result(self.timeout)

    def flush(self, timeout: float | None = 60.0) -> None:
        """Waits until everything sent so far is durably written."""
        while self._futures:
            self._futures.popleft().result(timeout)


class MqttSink:
    """Publishes per-device JSON messages ({"readings": [{"p", "t" (ms), "v"}]}, QoS 1) on
    `{prefix}/dev/<site>/<area>/<line>/<asset>/<device>`. Live: one message per device and sampling instant, as a
    device publishing every scan would; backfill: one message per device and chunk (store and forward)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, *, topic_prefix: str = "plantguard/v1", qos: int = 1,
                 client_id: str = "plantguard-sim", username: str | None = None, password: str | None = None,
                 max_readings_per_message: int = 5000, connect_timeout: float = 10.0, publish_timeout: float = 30.0) -> None:
        self.host, self.port = host, port
        self.topic_prefix = topic_prefix.rstrip("/")
        self.qos = qos
        self.client_id = client_id
        self.username, self.password = username, password
        self.max_readings = max_readings_per_message
        self.connect_timeout = connect_timeout
        self.publish_timeout = publish_timeout
        self.messages = 0
        self._client = None
        self._connected = threading.Event()
        self._split: dict[str, tuple[str, str]] = {}
        self._last = None
        self._warned = False

    def start(self) -> "MqttSink":
        import paho.mqtt.client as mqtt  # the only protocol import of the simulator

        c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                        protocol=mqtt.MQTTv311)
        if self.username:
            c.username_pw_set(self.username, self.password)
        c.max_inflight_messages_set(200)
        c.on_connect = lambda cl, ud, flags, rc, props=None: self._connected.set() if not rc.is_failure else None
        c.on_disconnect = lambda *a: self._connected.clear()
        c.reconnect_delay_set(0.5, 10)
        c.connect_async(self.host, self.port, keepalive=30)
        c.loop_start()
        self._client = c
        if not self._connected.wait(self.connect_timeout):
            self.close()
            raise ConnectionError(f"cannot reach the MQTT broker at {self.host}:{self.port}")
        return self

    def _parts(self, tag: str) -> tuple[str, str]:
        p = self._split.get(tag)
        if p is None:
            dev, _, pid = tag.rpartition("/")
            p = self._split[tag] = (f"{self.topic_prefix}/dev/{dev}", pid)
        return p

    def messages_for(self, batch: RawBatch, live: bool) -> list[tuple[str, bytes]]:
        import orjson

        groups: dict[tuple, list] = {}
        ms = (batch.ts // 1000).tolist()
        for tag, t, v in zip(batch.points, ms, batch.value.tolist()):
            topic, pid = self._parts(tag)
            key = (topic, t) if live else (topic,)
            groups.setdefault(key, []).append({"p": pid, "t": t, "v": int(v) if v.is_integer() else v})
        out = []
        for key, rows in groups.items():
            for i in range(0, len(rows), self.max_readings):
                out.append((key[0], orjson.dumps({"readings": rows[i:i + self.max_readings]})))
        return out

    def send(self, batch: RawBatch, live: bool) -> None:
        if self._client is None:
            self.start()
        for topic, payload in self.messages_for(batch, live):
            self._last = self._client.publish(topic, payload, qos=self.qos)
            self.messages += 1
        self.flush()  # bounded in flight: the broker has the last message of this batch before the next one

    def flush(self) -> None:
        if self._last is None:
            return
        try:
            self._last.wait_for_publish(self.publish_timeout)
        except (RuntimeError, ValueError) as e:  # disconnected: paho keeps QoS 1 messages for the reconnect
            if not self._warned:
                log.warning("MQTT publish to %s:%s pending (%s); will resend on reconnect", self.host, self.port, e)
                self._warned = True

    def close(self) -> None:
        if self._client is not None:
            self.flush()
            self._last = None
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None


Sink = Callable[[RawBatch], None] | PipelineSink | MqttSink
