"""The simulated plant behind the dashboard tests and the dashboard benchmark.

LivePlant builds the demo bottling line in a data directory, seeds it, and serves it:

- 30 days of 1 Hz history for one charted point (the pump discharge pressure, `SEEDED`), synthesised with numpy
  and written through the pipeline in day-sized chunks before the platform starts;
- a few hours of the whole line from the simulator (every page has data, and the pump bearing wear has raised
  its vibration HI alarm by the time the history catches up);
- then the simulator follows the wall clock (1 simulated second per second), so live values change every second;
- the HTTP API and the dashboard (create_app) on a free loopback port, uvicorn on a thread.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from pathlib import Path

import numpy as np

from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.runtime import Platform
from plantguard.sim.demo import DemoClock, demo_fault
from plantguard.sim.plant import LINE_PATH, PUMP, PUMP_PRESSURE, demo_config
from plantguard.sim.runner import PipelineSink, Simulator
from plantguard.timeutil import US, now_us

SEEDED = PUMP_PRESSURE
SEED_DAYS = 30
DAY = 86400 * US


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pressure_history(start_us: int, end_us: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """1 Hz discharge pressure: 4.2 bar with a daily swing, slow drift and sensor noise (whole seconds)."""
    ts = np.arange(-(-start_us // US) * US, end_us, US, dtype=np.int64)
    t = (ts - ts[0]) / US
    rng = np.random.default_rng(seed)
    v = 4.2 + 0.08 * np.sin(2 * np.pi * t / 86400) + 0.03 * np.sin(2 * np.pi * t / (7 * 86400)) + rng.normal(0, 0.04, len(ts))
    return ts, np.round(v, 3)


class LivePlant:
    """start() -> the platform is live and served at `base_url`; stop() tears everything down."""

    def __init__(self, data_dir: str | Path, *, history_h: float = 2.0, seed_days: int = SEED_DAYS, seed: int = 42) -> None:
        self.data_dir = Path(data_dir)
        self.history_h = history_h
        self.seed_days = seed_days
        self.seed = seed
        self.platform: Platform | None = None
        self.sim: Simulator | None = None
        self.server = None
        self.thread: threading.Thread | None = None
        self.port = 0
        self.timings: dict[str, float] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LivePlant":
        t0 = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        now = now_us()
        self.port = free_port()
        d = demo_config(str(self.data_dir), api_port=self.port)
        d["storage"]["retention_raw"] = f"{self.seed_days + 5}d"  # the oldest seeded day stays raw for the whole run
        cfg = parse_config(d)
        sim_start = now - int(self.history_h * 3600 * US)
        seed_start = now - self.seed_days * DAY
        # The long history of one point goes in first, through a platform without the streaming analytics (they
        # would take minutes over 2.6 M readings); the platform that goes live opens the same store afterwards.
        seeder = Platform(cfg, clock=lambda: sim_start, alarms=False, analytics=False)
        try:
            ts, v = pressure_history(seed_start, sim_start)
            for i in range(0, len(ts), 86400):
                seeder.pipeline.process_now(RawBatch.build([SEEDED] * len(ts[i:i + 86400]), ts[i:i + 86400],
                                                           v[i:i + 86400], source="seed"))
            seeder.pipeline.compact()
        finally:
            seeder.stop()
        self.timings["seed_point_s"] = time.monotonic() - t0

        clock = DemoClock(sim_start)
        platform = self.platform = Platform(cfg, clock=clock)
        clock.pipeline = platform.pipeline
        pipe = platform.pipeline

        t1 = time.monotonic()
        # two simulated minutes per chunk: the platform's clock (the newest written reading, until the history has
        # caught up) must stay within ingest.max_future (5 min) of every reading of the next chunk
        sim = self.sim = Simulator(cfg, seed=self.seed, start_us=sim_start, speed=math.inf, clock=now_us, chunk_ticks=120)
        fault, self.timeline = demo_fault(now)
        sim.inject(fault)
        clock.sim = sim
        while sim.time_us < now_us() - 120 * US:  # the history of the whole line, as fast as it is written
            n = min(sim.chunk_ticks, (now_us() - 60 * US - sim.time_us) // sim.tick_us)
            res = pipe.process_now(sim.generate(max(1, int(n))))
            if res.rejected:
                raise RuntimeError(f"seeding the line: {res.rejected} readings rejected, e.g. {res.errors[:1]}")
        self.timings["seed_line_s"] = time.monotonic() - t1

        platform.start()
        sim.add_sink(PipelineSink(pipe, max_in_flight=2))
        sim.start()  # catches up the last minute or two, then follows the wall clock at 1 s per s
        deadline = time.monotonic() + 60
        while sim.caught_up_wall_us is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if sim.caught_up_wall_us is None:
            raise RuntimeError("the simulator did not catch up with the clock")
        self._serve(platform)
        self.timings["start_s"] = time.monotonic() - t0
        return self

    def _serve(self, platform: Platform) -> None:
        import uvicorn

        from plantguard.api.app import create_app

        self.server = uvicorn.Server(uvicorn.Config(create_app(platform.services), host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, name="plantguard-e2e-http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError(f"the HTTP server did not start on port {self.port}")

    def inject(self, kind: str, **params):
        """A simulator fault starting now (e.g. inject('stop', line=LINE_PATH))."""
        return self.sim.inject(kind, at_us=now_us(), **params)

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            if self.thread is not None:
                self.thread.join(10)
        if self.sim is not None:
            self.sim.stop()
        if self.platform is not None:
            self.platform.stop()


__all__ = ["LINE_PATH", "PUMP", "SEEDED", "LivePlant", "free_port"]
