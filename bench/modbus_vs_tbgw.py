"""Side by side with thingsboard-gateway 3.8.5: 10 Modbus TCP devices x 1000 holding registers, offered every
100 ms (100 k points/s) and every 10 ms (1 M points/s), the same simulator (../shared/peers/modbus_sim.py).

- thingsboard-gateway: ../shared/peers/run_tbgw.sh gateway (its own network namespace, simulator and Mosquitto);
  delivered = points published to the broker, CPU and RSS of the gateway process.
- plantguard: the Modbus connector polling into the platform; delivered = points durably stored (a stricter
  destination than a broker), CPU and RSS of the whole plantguard process (polling, pipeline, alarms, store).
  Report by exception off (every polled value is delivered, as the peer does by default) and, separately, on
  (values unchanged since the last poll are only resent by the heartbeat).

    python bench/modbus_vs_tbgw.py [--window 30] [--no-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time

import psutil

from common import PEERS, print_machine, record
from modbus_poll import REGS, UNITS, free_port, start_sim
from plantguard.config import parse_config
from plantguard.runtime import Platform

WARMUP_S = 5.0


def plantguard_run(port: int, poll_ms: int, rbe: bool, window: float, connections: int = 1) -> dict:
    devices = [{"id": f"u{u}", "protocol": "modbus", "points": [{"id": f"r{i}"} for i in range(REGS)]} for u in range(1, UNITS + 1)]
    with tempfile.TemporaryDirectory() as d:
        doc = {"sites": [{"id": "b", "areas": [{"id": "a", "lines": [{"id": "l", "assets": [{"id": "plc", "devices": devices}]}]}]}],
               "storage": {"backend": "embedded", "data_dir": d},
               "connectors": [{"type": "modbus", "name": "plc", "transport": {"kind": "tcp", "host": "127.0.0.1", "port": port, "connections": connections},
                               "timeout_ms": 1000, "max_block": 125, "devices": [
                                   {"device": f"b/a/l/plc/u{u}", "unit": u, "poll": f"{poll_ms}ms", "max_rps": 100000,
                                    "report": {"heartbeat": "60s" if rbe else "0s"},
                                    "points": [{"id": f"r{i}", "address": i} for i in range(REGS)]} for u in range(1, UNITS + 1)]}]}
        me = psutil.Process(os.getpid())
        platform = Platform(parse_config(doc)).start()
        st = platform.pipeline.stats
        conn = platform.sources[-1]
        rss: list[float] = []
        try:
            time.sleep(WARMUP_S)
            me.cpu_percent()
            a0, t0 = st.accepted, time.perf_counter()
            r0 = sum(h.readings for h in conn.links.values())
            stop = threading.Event()

            def sample():
                while not stop.wait(1.0):
                    rss.append(me.memory_info().rss / 2**20)

            th = threading.Thread(target=sample, daemon=True)
            th.start()
            time.sleep(window)
            a1, t1 = st.accepted, time.perf_counter()
            r1 = sum(h.readings for h in conn.links.values())
            cpu = me.cpu_percent()
            stop.set()
        finally:
            platform.stop()
    dt = t1 - t0
    return {"poll_ms": poll_ms, "report_by_exception": rbe, "connections": connections, "offered_points_per_s": UNITS * REGS * 1000 / poll_ms,
            "polled_points_per_s": round((r1 - r0) / dt), "stored_points_per_s": round((a1 - a0) / dt),
            "cpu_percent": round(cpu, 1), "rss_mb_start": round(rss[0], 1) if rss else None, "rss_mb_end": round(rss[-1], 1) if rss else None}


def peer(window: int) -> list[dict]:
    script = PEERS / "run_tbgw.sh"
    if not script.exists():
        print(f"peer scripts not found at {PEERS}")
        return []
    env = {**os.environ, "SCENARIOS": "10:1000:100 10:1000:10", "REPEATS": "1", "WINDOW": str(window)}
    print("running peer: thingsboard-gateway 3.8.5 (run_tbgw.sh gateway) ...", flush=True)
    out = subprocess.run(["bash", str(script), "gateway"], env=env, capture_output=True, text=True, timeout=1800)
    rows = []
    for line in out.stdout.splitlines():
        if line.startswith("{\"scenario\""):
            rows.append(json.loads(line))
    if not rows:
        print(f"peer run failed: {out.stderr[-600:]}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--no-peer", action="store_true")
    a = ap.parse_args()
    m = print_machine()
    port = free_port()
    sim = start_sim(port)
    try:
        for poll_ms, rbe, conns in ((100, False, 1), (100, False, 10), (100, True, 10), (10, False, 10)):
            r = plantguard_run(port, poll_ms, rbe, a.window, conns)
            print(f"plantguard {UNITS}x{REGS}@{poll_ms}ms rbe={'on' if rbe else 'off'} sockets={conns}: polled {r['polled_points_per_s']:,}/s, "
                  f"stored {r['stored_points_per_s']:,}/s, CPU {r['cpu_percent']}% of a core, RSS {r['rss_mb_start']} -> {r['rss_mb_end']} MB")
            record("modbus_vs_tbgw", {"system": "plantguard", **r, "machine": m})
    finally:
        sim.terminate()
        sim.wait(10)
    if not a.no_peer:
        for row in peer(a.window):
            print(f"thingsboard-gateway {row['scenario']}: {json.dumps(row['result'])}")
            record("modbus_vs_tbgw", {"system": "thingsboard-gateway 3.8.5", **row, "machine": m})


if __name__ == "__main__":
    main()
