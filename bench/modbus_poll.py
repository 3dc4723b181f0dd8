"""Modbus polling: registers/s read by the Modbus connector and stored through the real Platform (pipeline, alarms
on, embedded store), from a simulated PLC with 10 unit ids x 1000 holding registers (../shared/peers/modbus_sim.py,
pymodbus 3.16 server), next to the raw pymodbus client ceiling measured in the same run on the same simulator
(../shared/peers/modbus_ceiling.py: 100 registers per read, 1 connection sequential and 10 concurrent).

The connector polls as fast as its budget allows (poll 1 ms: cycles overrun and are skipped, never queued),
heartbeat 0 so every value read is stored, 125-register blocks (8 reads per unit). Rate = readings stored per
second over the measuring window, after a warm-up.

    python bench/modbus_poll.py [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from common import PEERS, print_machine, record
from plantguard.config import parse_config
from plantguard.runtime import Platform
from plantguard.connectors.modbus.config import ModbusConfig
from plantguard.connectors.modbus.connector import ModbusConnector

UNITS, REGS = 10, 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(port: int) -> subprocess.Popen:
    sim = PEERS / "modbus_sim.py"
    p = subprocess.Popen([sys.executable, str(sim), "--port", str(port), "--units", str(UNITS), "--registers", str(REGS)],
                         stdout=subprocess.PIPE, text=True)
    assert "modbus sim" in p.stdout.readline()
    time.sleep(0.3)
    return p


def ceiling(port: int, seconds: float, repeats: int) -> dict:
    out = subprocess.run([sys.executable, str(PEERS / "modbus_ceiling.py"), "--port", str(port), "--units", str(UNITS),
                          "--count", "100", "--seconds", str(seconds), "--repeats", str(repeats)],
                         capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.split("SUMMARY ", 1)[1])


def run_once(port: int, seconds: float, connections: int, data_dir: str) -> dict:
    devices = [{"id": f"u{u}", "protocol": "modbus", "points": [{"id": f"r{i}", "data_type": "float"} for i in range(REGS)]}
               for u in range(1, UNITS + 1)]
    doc = {"sites": [{"id": "b", "areas": [{"id": "a", "lines": [{"id": "l", "assets": [{"id": "plc", "devices": devices}]}]}]}],
           "storage": {"backend": "embedded", "data_dir": data_dir}}
    cdoc = {"type": "modbus", "name": "bench", "transport": {"kind": "tcp", "host": "127.0.0.1", "port": port, "connections": connections},
            "timeout_ms": 1000, "max_block": 125, "devices": [
                {"device": f"b/a/l/plc/u{u}", "unit": u, "poll": "1ms", "max_rps": 100000, "report": {"heartbeat": "0s"},
                 "points": [{"id": f"r{i}", "address": i} for i in range(REGS)]} for u in range(1, UNITS + 1)]}
    platform = Platform(parse_config(doc)).start()
    conn = ModbusConnector(ModbusConfig.model_validate(cdoc), platform.pipeline)
    platform.add_source(conn)
    st = platform.pipeline.stats
    try:
        time.sleep(2.0)  # warm-up: connect, first batches, store tables warm
        a0, t0 = st.accepted, time.perf_counter()
        time.sleep(seconds)
        a1, t1 = st.accepted, time.perf_counter()
        reqs = sum(h.requests for h in conn.links.values())
        errors = sum(h.errors for h in conn.links.values()) + st.rejected
    finally:
        platform.stop()
    return {"regs_per_s": (a1 - a0) / (t1 - t0), "errors": errors, "requests": reqs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    m = print_machine()
    port = free_port()
    sim = start_sim(port)
    try:
        ceil = ceiling(port, a.seconds, a.repeats)
        c1, c10 = ceil["1conn_100regs"]["regs_per_s_median"], ceil[f"{UNITS}conn_100regs"]["regs_per_s_median"]
        print(f"ceiling (raw pymodbus, 100 registers/read): 1 connection {c1:,} regs/s, {UNITS} connections {c10:,} regs/s")
        for conns, ref in ((1, c1), (UNITS, c10)):
            runs = []
            for r in range(a.repeats):
                with tempfile.TemporaryDirectory() as d:
                    runs.append(run_once(port, a.seconds, conns, d))
                print(f"  {conns} socket(s) run {r + 1}: {runs[-1]['regs_per_s']:,.0f} registers/s read and stored, errors {runs[-1]['errors']}")
            rates = [x["regs_per_s"] for x in runs]
            out = {"units": UNITS, "registers": REGS, "sockets": conns, "seconds": a.seconds, "repeats": a.repeats,
                   "regs_per_s_median": round(statistics.median(rates)), "regs_per_s_min": round(min(rates)),
                   "regs_per_s_max": round(max(rates)), "errors": sum(x["errors"] for x in runs),
                   "ceiling_regs_per_s": ref, "ceiling_1conn": c1, f"ceiling_{UNITS}conn": c10,
                   "ratio_to_ceiling": round(statistics.median(rates) / ref, 2), "machine": m}
            print(f"{conns} socket(s): median {out['regs_per_s_median']:,} registers/s = {out['ratio_to_ceiling']} x the "
                  f"{'1-connection' if conns == 1 else f'{UNITS}-connection'} ceiling measured in this run")
            record("modbus_poll", out)
    finally:
        sim.kill()
        sim.wait()


if __name__ == "__main__":
    main()
