"""Drill scenarios on the simulated bottling line: a real platform (store, pipeline, alarms, analytics, security,
continuity) fed by the seeded simulator, its clock the simulation's, advanced in steps by the drill.

    plant = DrillPlant(tmp_dir)
    journal = plant.drill("gateway-outage")          # the journal; plant.report(journal, out_dir) writes .md/.html/.json
    plant.close()

Scenarios (all intrusive: they inject a failure, so they are refused against a real plant):
    device-failure     the pump's PLC I/O goes silent for 20 min
    sensor-drift       the pump discharge-pressure transmitter drifts for 30 min
    device-flood       the pump's wireless sensor floods 50 times its rate for 10 min (a compromised device)
    gateway-outage     the wireless gateway loses its network for 30 min; it buffers, then forwards
    database-outage    the store refuses writes for 10 min (PostgreSQL: stopped and started by `db`)
    platform-restart   the platform stops for 2 min and starts again; the edge buffers meanwhile
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from plantguard.config import parse_config
from plantguard.connectors.gateway.codec import decode_record
from plantguard.connectors.gateway.queue import GatewayQueue
from plantguard.continuity import drills as D
from plantguard.domain.readings import RawBatch
from plantguard.errors import StoreUnavailable
from plantguard.runtime import Platform
from plantguard.sim import faults as F
from plantguard.sim.plant import LINE_PATH, PUMP, PUMP_SENSOR, demo_config
from plantguard.sim.runner import Simulator
from plantguard.timeutil import US, now_us

log = logging.getLogger(__name__)

SCENARIOS = {
    "device-failure": "the pump's PLC I/O goes silent for 20 min",
    "sensor-drift": "the pump discharge-pressure transmitter drifts down (a full span per hour) for 30 min",
    "device-flood": "the pump's wireless sensor floods 50 times its rate for 10 min (a compromised device)",
    "gateway-outage": "the wireless gateway loses its network for 30 min, buffers, then forwards",
    "database-outage": "the store refuses writes for 10 min, then answers again",
    "platform-restart": "the platform stops for 2 min and starts again while the edge buffers",
}
WSN = (f"{PUMP_SENSOR}/", f"{LINE_PATH}/conveyor/wsn/")


class OutageStore:
    """The embedded store with a switch: while `down`, writes fail as a lost database connection would."""

    def __init__(self, inner) -> None:
        self._inner, self.down = inner, False

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name in ("write", "execute") and callable(attr):
            def guarded(*a, **kw):
                if self.down:
                    raise StoreUnavailable("the database is unreachable (drill)")
                return attr(*a, **kw)
            return guarded
        return attr


@dataclass
class DbControl:
    """How the database-outage drill stops and starts the store (PostgreSQL in the suite: pg_ctl)."""
    stop: Callable[[], None]
    start: Callable[[], None]


def _take(b: RawBatch, mask: np.ndarray) -> RawBatch:
    idx = np.flatnonzero(mask)
    return RawBatch([b.points[i] for i in idx.tolist()], b.ts[idx], b.value[idx], b.quality[idx], b.src_ts[idx], b.source, b.prefix)


class DrillPlant:
    def __init__(self, data_dir: str | Path, *, seed: int = 7, warmup_s: float = 3900, config: dict | None = None,
                 db: DbControl | None = None) -> None:
        self.dir = Path(data_dir)
        cfg = config or demo_config(str(self.dir / "store"))
        cfg = {**cfg, "ingest": {**cfg.get("ingest", {}), "spill": "on"},
               # the platform's answer to a flooding device: quarantine (its readings are held, not analysed)
               "security": {**cfg.get("security", {}), "quarantine_on": ["behaviour.flood"]}}
        self.cfg = parse_config(cfg)
        start = now_us() - 6 * 3600 * US  # the drill's hours stay in the past: no reading lies in the future
        self.sim = Simulator(self.cfg, seed=seed, start_us=start, speed=math.inf)
        self.db = db
        self._outage_store: OutageStore | None = None
        self.platform = self._open()
        self.edge = GatewayQueue(self.dir / "edge", min_free_bytes=16 << 20)
        self.hold_wsn = False          # the gateway's network is down: wireless readings wait at the edge
        self.platform_down = False     # everything waits at the edge
        self.generated: dict[str, int] = {}
        self.window_start = 0
        self.disrupted: dict[str, float] = {}
        for _ in range(int(warmup_s // 60)):  # live, a minute at a time: the platform learns the plant's rhythm
            self.step(60)

    def _open(self) -> Platform:
        store = None
        if self.cfg.storage.backend == "embedded" and self.db is None:
            from plantguard.store import open_store

            store = self._outage_store = OutageStore(open_store(self.cfg.storage))
        return Platform(self.cfg, clock=self.sim.now, store=store).start()

    @property
    def services(self):
        return self.platform.services

    # -- time ------------------------------------------------------------------------------------------------
    def step(self, seconds: float) -> None:
        n = max(1, int(seconds * US // self.sim.tick_us))
        batch = self.sim.generate(n)
        if self.window_start:
            for tag, k in zip(*np.unique(np.asarray(batch.points, dtype=object), return_counts=True)):
                self.generated[tag] = self.generated.get(tag, 0) + int(k)
        if self.platform_down:
            self.edge.append(batch)
            return
        if self.hold_wsn:
            wsn = np.fromiter((p.startswith(WSN) for p in batch.points), bool, len(batch))
            if wsn.any():
                self.edge.append(_take(batch, wsn))
            batch = _take(batch, ~wsn)
        self._submit(batch)
        self.settle()

    def _submit(self, batch: RawBatch) -> None:
        if len(batch):
            self.platform.pipeline.submit(batch, timeout=60).result(timeout=120)

    def settle(self) -> None:
        """Waits until what was submitted is written and its consequences (alarm ticks, events, incidents) done:
        an empty batch goes through the writer after the previous turn's housekeeping."""
        pl = self.platform.pipeline
        pl.submit(RawBatch.build([], np.zeros(0, np.int64), np.zeros(0)), timeout=60).result(timeout=120)
        self.platform.bus.drain(10)
        c = self.services.continuity
        c.drain()
        c.tick()
        with c._lock:
            pass

    def forward_edge(self) -> int:
        """The edge's buffer to the platform, in order, each record confirmed after its durable write."""
        n = 0
        while True:
            recs = self.edge.read(self.edge.confirmed_seq, max_records=256)
            if not recs:
                return n
            for seq, _k, payload in recs:
                batch, _dead = decode_record(payload)
                self._submit(batch)
                self.edge.confirm(seq)
                n += len(batch)

    # -- what the drill looks at -----------------------------------------------------------------------------
    def services_ok(self) -> bool:
        return all(s["status"] == "ok" for s in self.services.continuity.services_status())

    def ingest_ok(self) -> bool:
        return self.services.status.health()["status"] == "ok"

    def devices_online(self) -> bool:
        return not any(a.condition == "OFFLINE" for a in self.services.alarms.list(active=True))

    def incident_at(self, root: str, category: str = "outage") -> bool:
        return any(i.root == root and i.category == category and i.is_open for i in self.services.continuity.incidents(open_only=True))

    def observe(self) -> None:
        for s in self.services.continuity.services_status():
            if s["status"] in ("down", "below_mbco"):
                self.disrupted[s["id"]] = self.disrupted.get(s["id"], 0.0) + self._step_s
        self._since_obs = self.sim.time_us

    def lost(self, exclude: tuple[str, ...] = ()) -> dict:
        """Readings generated since the drill began against those stored, per point: the data lost, also as a
        time (lost readings times the point's period, the worst point)."""
        end = self.sim.time_us + 1
        tel = self.services.telemetry
        missing, worst = 0, 0.0
        for tag, k in self.generated.items():
            if tag.startswith(exclude):
                continue
            got = len(tel.query_raw(tag, self.window_start, end, limit=1_000_000).ts)
            gap = max(0, k - got)
            missing += gap
            ref = self.platform.index.point(tag)
            period = (ref.point.period.us if ref is not None and hasattr(ref.point.period, "us") else US) / US
            worst = max(worst, gap * period)
        return {"generated": sum(v for t, v in self.generated.items() if not t.startswith(exclude)),
                "lost_readings": missing, "lost_s": worst}

    # -- the drill -------------------------------------------------------------------------------------------
    def drill(self, scenario: str, *, step_s: float = 10.0, plant: str = "simulated") -> D.Journal:
        if scenario not in SCENARIOS:
            raise D.DrillRefused(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
        self._step_s = step_s
        self.generated, self.disrupted = {}, {}
        self.window_start = self.sim.time_us + self.sim.tick_us
        exp = getattr(self, "_" + scenario.replace("-", "_"))()
        exp.title = scenario
        exp.hypothesis = [D.Probe("ingest healthy", self.ingest_ok), D.Probe("every device online", self.devices_online),
                          D.Probe("every business service ok", self.services_ok)]
        exclude = getattr(exp, "exclude", ())

        def judge(j: D.Journal) -> None:
            j.data = self.lost(exclude)
            graph = self.services.continuity.graph
            for sid, s in graph.services.items():
                disrupted = self.disrupted.get(sid, 0.0)
                if sid not in exp.targets and not disrupted:
                    continue
                ok = disrupted <= s.rto and j.data["lost_s"] <= max(s.rpo, 0.0)
                j.services.append({"service": sid, "disrupted_s": disrupted, "rto_s": s.rto, "lost_s": j.data["lost_s"],
                                   "rpo_s": s.rpo, "passed": ok})
        return D.run(exp, clock=self.sim.now, advance=self.step, step_s=step_s, observe=self.observe, judge=judge, plant=plant)

    def _fault(self, fault) -> tuple[D.Action, D.Action]:
        holder = {}

        def inject():
            holder["f"] = self.sim.inject(fault)

        def end():
            if "f" in holder:
                self.sim.end_fault(holder["f"])
        return D.Action(f"inject {type(fault).__name__}", inject), D.Action(f"end {type(fault).__name__}", end)

    def _device_failure(self) -> D.Experiment:
        inj, end = self._fault(F.DeviceOffline(device=f"{PUMP}/plc", start_us=self.sim.time_us + self.sim.tick_us))
        return D.Experiment("", SCENARIOS["device-failure"], [], [inj], [end], hold_s=1200,
                            detect=lambda: self.incident_at("pump-io"), targets={"line1-output": {}})

    def _sensor_drift(self) -> D.Experiment:
        tag = f"{PUMP}/plc/discharge-pressure"
        inj, end = self._fault(F.Drift(point=tag, per_hour=-1.0, start_us=self.sim.time_us + self.sim.tick_us))
        return D.Experiment("", SCENARIOS["sensor-drift"], [], [inj], [end], hold_s=1800,
                            detect=lambda: any(a.tag == tag and a.condition != "STALE" for a in self.services.alarms.list(active=True)))

    def _device_flood(self) -> D.Experiment:
        inj, end = self._fault(F.MessageFlood(device=PUMP_SENSOR, factor=50, start_us=self.sim.time_us + self.sim.tick_us))

        def release():
            from plantguard.domain.actor import Actor

            q = self.services.quarantine
            if any(r.device == PUMP_SENSOR for r in q.list()):  # the flood's held readings are discarded
                q.release(PUMP_SENSOR, Actor.user("drill-officer"), "drill over: the device is clean again", "discard")
            self.settle()
        exp = D.Experiment("", SCENARIOS["device-flood"], [], [inj], [end, D.Action("release the device", release)], hold_s=600,
                           detect=lambda: any(r.device == PUMP_SENSOR for r in self.services.quarantine.list()))
        exp.exclude = (PUMP_SENSOR + "/",)  # the flood's own surplus is refused on purpose; every other point must be whole
        return exp

    def _gateway_outage(self) -> D.Experiment:
        def cut():
            self.hold_wsn = True

        def restore():
            self.hold_wsn = False
            self.forward_edge()
            self.settle()
        return D.Experiment("", SCENARIOS["gateway-outage"], [], [D.Action("cut the gateway's network", cut)],
                            [D.Action("restore the network; the gateway forwards its buffer", restore)], hold_s=1800,
                            detect=lambda: self.incident_at("wsn-gateway"), targets={"condition-monitoring": {}})

    def _database_outage(self) -> D.Experiment:
        def stop():
            if self.db is not None:
                self.db.stop()
            elif self._outage_store is not None:
                self._outage_store.down = True

        def start():
            if self.db is not None:
                self.db.start()
            elif self._outage_store is not None:
                self._outage_store.down = False
            import time

            self.platform.pipeline.spill_retry_s = 0.2
            # the writer replays the disk buffer once the database answers (a real server may take a while to
            # accept connections again): wait for that in wall time, bounded, without advancing the plant's clock
            deadline = time.monotonic() + 180
            while self.platform.pipeline.spill_pending() and time.monotonic() < deadline:
                self.settle()
                time.sleep(0.05)
        return D.Experiment("", SCENARIOS["database-outage"], [], [D.Action("stop the database", stop)],
                            [D.Action("start the database", start)], hold_s=600,
                            detect=lambda: self.services.status.health()["pipeline"]["spill"]["pending_batches"] > 0,
                            targets={"condition-monitoring": {}})

    def _platform_restart(self) -> D.Experiment:
        def stop():
            self.platform.stop()
            self.platform_down = True

        def start():
            self.platform = self._open()
            self.platform_down = False
            self.forward_edge()
            self.settle()
        return D.Experiment("", SCENARIOS["platform-restart"], [], [D.Action("stop the platform", stop)],
                            [D.Action("start the platform; the edge forwards its buffer", start)], hold_s=120,
                            targets={"condition-monitoring": {}})

    def close(self) -> None:
        try:
            if not self.platform_down:
                self.platform.stop()
        finally:
            self.edge.close()


def write_report(journal: D.Journal, out_dir: str | Path) -> dict[str, Path]:
    """The journal as JSON, Markdown and self-contained HTML, named by scenario and start."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{journal.started}-{journal.scenario}"
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "html": out / f"{stem}.html"}
    paths["json"].write_text(json.dumps(journal.as_dict(), indent=1, default=str))
    paths["md"].write_text(D.markdown(journal))
    paths["html"].write_text(D.html_report(journal))
    return paths
