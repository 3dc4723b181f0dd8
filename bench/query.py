"""Dashboard queries, both backends:
  - 30 days of one 1 Hz point (2,592,000 readings) downsampled to 500 buckets (avg), served from the rollups,
    and, for comparison, the same query forced onto the raw table;
  - the latest value of 10,000 points at once: from the platform (in-memory state kept by the pipeline) and
    from the store's latest table.
Median of 20 timed runs after a warm-up.

    python bench/query.py [--backend embedded|postgres|both]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from common import print_machine, record
from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.runtime import Platform
from plantguard.timeutil import now_us

DAY = 86_400_000_000
N_LATEST = 10_000


def plant(storage: dict) -> dict:
    pts = [{"id": "hist", "unit": "bar", "period": "1s"}] + [{"id": f"p{i:05d}", "period": "1s"} for i in range(N_LATEST)]
    return {"sites": [{"id": "b", "areas": [{"id": "a", "lines": [{"id": "l", "assets": [{"id": "x", "devices": [
        {"id": "d", "points": pts}]}]}]}]}], "storage": storage}


def timed(fn, n=20):
    fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)


def run(storage: dict) -> dict:
    cfg = parse_config(plant(storage))
    p = Platform(cfg, alarms=False)
    end = now_us() // 1_000_000 * 1_000_000
    start = end - 30 * DAY
    ts = np.arange(start, end, 1_000_000, dtype=np.int64)
    rng = np.random.default_rng(7)
    vals = 5 + np.cumsum(rng.normal(0, 0.01, len(ts)))
    hist = "b/a/l/x/d/hist"
    t0 = time.perf_counter()
    for i in range(0, len(ts), 200_000):
        n = len(ts[i:i + 200_000])
        p.pipeline.process_now(RawBatch.build([hist] * n, ts[i:i + 200_000], vals[i:i + 200_000]))
    load_s = time.perf_counter() - t0
    p.store.compact_rollups(start - start % 3_600_000_000)
    tags = [f"b/a/l/x/d/p{i:05d}" for i in range(N_LATEST)]
    for k in range(3):
        p.pipeline.process_now(RawBatch.build(tags, np.full(N_LATEST, end - (3 - k) * 1_000_000), rng.normal(size=N_LATEST)))
    series, tier, width = p.services.telemetry.query_downsample(hist, start, end, buckets=500, agg="avg")
    assert 495 <= len(series.ts) <= 505, len(series.ts)
    pid = p.services.telemetry.pid_of(hist)
    down_ms = timed(lambda: p.services.telemetry.query_downsample(hist, start, end, buckets=500, agg="avg"))
    raw_width = -(-(end - start) // 500)
    raw_ms = timed(lambda: p.store.downsample(pid, start, end, raw_width, "avg", "raw"), n=5)
    pids = np.array([p.services.telemetry.pid_of(t) for t in tags], dtype=np.int32)
    assert len(p.store.latest(pids)[0]) == N_LATEST
    latest_mem_ms = timed(lambda: p.services.telemetry.latest(tags))
    latest_db_ms = timed(lambda: p.store.latest(pids))
    p.stop()
    return {"load_points_per_s": round(len(ts) / load_s), "downsample_500_of_30d_ms": round(down_ms, 2), "tier": tier,
            "bucket_width_s": width / 1e6, "same_on_raw_ms": round(raw_ms, 1),
            "latest_10k_platform_ms": round(latest_mem_ms, 2), "latest_10k_store_ms": round(latest_db_ms, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["embedded", "postgres", "both"], default="both")
    a = ap.parse_args()
    m = print_machine()
    for backend in (["embedded", "postgres"] if a.backend == "both" else [a.backend]):
        if backend == "embedded":
            with tempfile.TemporaryDirectory() as d:
                r = run({"backend": "embedded", "data_dir": d})
        else:
            from plantguard.testing.pg import PostgresServer

            with PostgresServer() as pg:
                r = run({"backend": "postgres", "postgres_dsn": pg.dsn})
        print(f"{backend}: 30 d -> 500 buckets {r['downsample_500_of_30d_ms']} ms ({r['tier']} tier; raw table {r['same_on_raw_ms']} ms); "
              f"latest of 10k points {r['latest_10k_platform_ms']} ms (platform), {r['latest_10k_store_ms']} ms (store)")
        record("query", {"backend": backend, **r, "machine": m})


if __name__ == "__main__":
    main()
