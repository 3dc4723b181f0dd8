"""Gateway recovery: a gateway process fed at a steady rate, the central side stopped for N seconds and started
again; measures the time to drain the backlog and counts lost and duplicated readings (both must be 0).

    python bench/gateway_recovery.py [--outage 60] [--rate 10000] [--compare-sqlite]

--compare-sqlite also times the queue's append path (one fsynced record per batch) against SQLite in WAL mode
with synchronous=FULL, the alternative storage for the queue.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_machine, record  # noqa: E402

from plantguard.connectors.gateway import codec  # noqa: E402
from plantguard.connectors.gateway.feeder import expected_count, make_batch  # noqa: E402
from plantguard.connectors.gateway.queue import GatewayQueue  # noqa: E402
from plantguard.connectors.gateway.testing import CentralServer, count_per_key  # noqa: E402
from plantguard.testing.factories import small_plant  # noqa: E402


def compare_sqlite(n: int = 1000, points: int = 100, per_batch: int = 10) -> dict:
    batches = [make_batch(k, points, per_batch) for k in range(1, n + 1)]
    with tempfile.TemporaryDirectory() as d:
        q = GatewayQueue(Path(d) / "seg", min_free_bytes=0)
        t0 = time.perf_counter()
        for b in batches:
            q.append(b)
        seg_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(20):  # replay reads
            q.read(0, max_bytes=4 << 20)
        seg_read = (time.perf_counter() - t0) / 20
        q.close()
        con = sqlite3.connect(Path(d) / "q.sqlite", isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("CREATE TABLE q (seq INTEGER PRIMARY KEY, at INTEGER, crc INTEGER, payload BLOB)")
        t0 = time.perf_counter()
        for k, b in enumerate(batches, 1):  # same encoding for both: only the storage differs
            p = codec.encode_batch(b)
            con.execute("INSERT INTO q VALUES (?, ?, ?, ?)", (k, 0, codec.crc(k, 0, p), p))
        sql_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(20):
            con.execute("SELECT seq, payload FROM q WHERE seq > 0 ORDER BY seq LIMIT 200").fetchall()
        sql_read = (time.perf_counter() - t0) / 20
        con.close()
    res = {"records": n, "readings_per_record": points * per_batch,
           "segments_append_us": seg_s / n * 1e6, "sqlite_wal_full_append_us": sql_s / n * 1e6,
           "segments_read_4MB_ms": seg_read * 1000, "sqlite_read_200_ms": sql_read * 1000}
    print(f"append incl. encoding, fsync per record: segments {res['segments_append_us']:.0f} us, "
          f"SQLite WAL synchronous=FULL {res['sqlite_wal_full_append_us']:.0f} us per record")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--outage", type=float, default=60.0, help="seconds the central side is down")
    ap.add_argument("--rate", type=int, default=10_000, help="readings per second")
    ap.add_argument("--before", type=float, default=5.0, help="seconds of feeding before the outage")
    ap.add_argument("--after", type=float, default=5.0, help="seconds of feeding after the restart")
    ap.add_argument("--compare-sqlite", action="store_true")
    a = ap.parse_args()
    m = print_machine()
    if a.compare_sqlite:
        record("gateway_queue_storage", {**compare_sqlite(), "machine": m})
    points, per_batch = 100, 10
    batches_per_s = a.rate / (points * per_batch)
    n_batches = int(round(batches_per_s * (a.before + a.outage + a.after)))
    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "store"
        store.mkdir()
        cfg = small_plant(points, data_dir=str(store), alarms=False)
        central = CentralServer(cfg).start()
        port = central.port
        cmd = [sys.executable, "-m", "plantguard.connectors.gateway.feeder", "--dir", f"{d}/gwq", "--url", central.url,
               "--batches", str(n_batches), "--points", str(points), "--per-batch", str(per_batch),
               "--rate", str(batches_per_s), "--backoff-max", "2"]
        gw = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=central.env())
        state = {"next": 1, "confirmed": 0}

        def poll_until(cond, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = gw.stdout.readline()
                if not line:
                    raise RuntimeError(f"feeder exited with {gw.wait()}")
                if "=" in line:
                    state.update({k: int(v) for k, v in (kv.split("=") for kv in line.split())})
                if cond():
                    return
            raise RuntimeError("timed out")

        try:
            t_end = time.monotonic() + a.before
            poll_until(lambda: time.monotonic() >= t_end, a.before + 30)
            print(f"stopping the central side for {a.outage:g} s ...", flush=True)
            central.stop()
            t_end = time.monotonic() + a.outage
            poll_until(lambda: time.monotonic() >= t_end, a.outage + 30)
            backlog_seq = state["next"] - 1
            backlog_readings = (backlog_seq - state["confirmed"]) * points * per_batch
            central = CentralServer(cfg, port=port).start()
            t0 = time.monotonic()
            print(f"central back; backlog {backlog_readings:,} readings", flush=True)
            poll_until(lambda: state["confirmed"] >= backlog_seq, 600)
            drain_s = time.monotonic() - t0
            poll_until(lambda: state["confirmed"] >= n_batches, 600)
            gw.wait(30)
        finally:
            if gw.poll() is None:
                gw.kill()
            central.stop()
        rows, distinct, worst = count_per_key(str(store))
    expected = expected_count(n_batches, points, per_batch)
    lost = expected - distinct
    duplicated = rows - distinct
    print(f"outage {a.outage:g} s at {a.rate:,} readings/s: backlog {backlog_readings:,} readings drained in {drain_s:.2f} s "
          f"({backlog_readings / drain_s:,.0f} readings/s while live input continued); lost {lost}, duplicated {duplicated}")
    record("gateway_recovery", {"outage_s": a.outage, "rate_readings_per_s": a.rate, "backlog_readings": backlog_readings,
                                "drain_s": drain_s, "expected": expected, "stored": rows, "lost": lost, "duplicated": duplicated,
                                "max_copies": worst, "machine": m})
    if lost or duplicated:
        sys.exit(1)


if __name__ == "__main__":
    main()
