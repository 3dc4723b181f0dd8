"""In-process pipeline throughput: validation, dedupe, alarms, durable write.

Workload = the peers' storage workload (../shared/peers/storage_bench.py): 1000 series x 2000 timestamps 1 s
apart, float64, seeded, time-major, fed in batches of 50,000 readings. Here they go through the whole pipeline
(submit -> writer thread: tag resolution, validation, watermark dedupe, rollups, one transaction, alarm engine
with limit rules on 100 of the 1000 points) and the timer stops when every batch is durably written.

Peers in the same run: InfluxDB 1.6 (line protocol over HTTP) and, for the PostgreSQL backend, plain COPY into a
keyed table, both from ../shared/peers/run_storage.sh.

    python bench/pipeline_ingest.py [--backend embedded|postgres|both] [--repeats 3] [--no-peers]
    python bench/pipeline_ingest.py --behaviour-ab --repeats 5    # behavioural detection on vs off, alternating
    python bench/pipeline_ingest.py --continuity-ab --repeats 5   # the continuity capability on vs off, alternating
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from common import ab_rounds, print_machine, record, run_peer_storage
from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.runtime import Platform

NS, NT, BATCH = 1000, 2000, 50_000
T0_US = 1_700_000_000_000_000


def plant(n: int, storage: dict, behaviour: bool = True) -> dict:
    storage = {**storage, "retention_raw": "3650d"}  # the peers' workload is dated 2023
    points = []
    for i in range(n):
        p = {"id": f"s{i:04d}", "unit": "degC", "range": {"low": -1000, "high": 1000}, "period": "1s"}
        if i % 10 == 0:  # 100 points carry limit rules, as a plant's critical tags would
            p["alarms"] = {"limits": {"hihi": 45, "hi": 40, "lo": 0, "lolo": -5, "deadband": 1}}
        points.append(p)
    from plantguard import capabilities

    doc = {"sites": [{"id": "b", "areas": [{"id": "a", "lines": [{"id": "l", "assets": [{"id": "x", "devices": [
        {"id": "d", "points": points}]}]}]}]}], "storage": storage, "ingest": {"max_future": "3650d"},
        "security": {"behaviour": {"enabled": behaviour}}}
    if "continuity" in capabilities.sections():
        # the continuity capability with a graph over the device: the alarms its limit rules raise become signals
        doc["continuity"] = {"services": [{"id": "out", "depends_on": ["b/a/l/x"], "mtpd": "8h", "rto": "1h"}]}
    return doc


def workload():
    rng = np.random.default_rng(42)
    ts = np.repeat(T0_US + np.arange(NT, dtype=np.int64) * 1_000_000, NS)
    series = np.tile(np.arange(NS, dtype=np.int32), NT)
    value = rng.normal(20.0, 5.0, NS * NT)
    return series, ts, value


def run_once(storage: dict, data, behaviour: bool = True) -> dict:
    series, ts, value = data
    cfg = parse_config(plant(NS, storage, behaviour))
    platform = Platform(cfg)
    tags = [t for t, *_ in cfg.iter_points()]
    names = [tags[i] for i in series.tolist()]  # tags as a source would send them; resolved inside the pipeline
    batches = [RawBatch.build(names[i:i + BATCH], ts[i:i + BATCH], value[i:i + BATCH], source="bench")
               for i in range(0, len(ts), BATCH)]
    platform.start()
    t = time.perf_counter()
    futs = [platform.pipeline.submit(b) for b in batches]
    res = [f.result() for f in futs]
    dt = time.perf_counter() - t
    accepted = sum(r.accepted for r in res)
    assert accepted == NS * NT, accepted
    # re-send one batch: it must be recognised as duplicates, nothing stored twice
    dup = platform.pipeline.submit(batches[7]).result()
    assert dup.duplicates == BATCH and dup.accepted == 0, dup
    counts = platform.store.counts()
    assert counts["raw"] == NS * NT, counts
    stats = platform.pipeline.stats
    alarms = platform.services.alarms.engine.active_count() if platform.services.alarms.engine is not None else None
    platform.stop()
    return {"seconds": dt, "points_per_s": NS * NT / dt, "writes": stats.writes, "active_alarms": alarms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["embedded", "postgres", "both"], default="both")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-peers", action="store_true", help="skip InfluxDB / plain COPY peers")
    ap.add_argument("--continuity-ab", action="store_true",
                    help="embedded only: the continuity capability on and off, alternating, per-round ratios")
    ap.add_argument("--behaviour-ab", action="store_true",
                    help="embedded only: the security capability's behavioural detection on and off, alternating, per-round ratios")
    a = ap.parse_args()
    m = print_machine()
    data = workload()
    if a.continuity_ab:
        from plantguard import capabilities
        from plantguard.continuity.capability import CAPABILITY

        def one_c(flag):
            if not flag:
                capabilities.unregister("continuity")
            try:
                with tempfile.TemporaryDirectory() as d:
                    return run_once({"backend": "embedded", "data_dir": d}, data)["points_per_s"]
            finally:
                capabilities.register(CAPABILITY)

        record("pipeline_ingest_continuity_ab", ab_rounds(one_c, a.repeats, "continuity capability", m))
        return
    if a.behaviour_ab:
        def one(flag):
            with tempfile.TemporaryDirectory() as d:
                return run_once({"backend": "embedded", "data_dir": d}, data, behaviour=flag)["points_per_s"]

        record("pipeline_ingest_behaviour_ab", ab_rounds(one, a.repeats, "behavioural detection", m))
        return
    backends = ["embedded", "postgres"] if a.backend == "both" else [a.backend]
    for backend in backends:
        runs = []
        for r in range(a.repeats):
            if backend == "embedded":
                with tempfile.TemporaryDirectory() as d:
                    runs.append(run_once({"backend": "embedded", "data_dir": d}, data))
            else:
                from plantguard.testing.pg import PostgresServer

                with PostgresServer() as pg:
                    runs.append(run_once({"backend": "postgres", "postgres_dsn": pg.dsn}, data))
            print(f"  {backend} run {r + 1}: {runs[-1]['points_per_s']:,.0f} points/s ({runs[-1]['writes']} transactions)")
        rates = [x["points_per_s"] for x in runs]
        out = {"backend": backend, "points": NS * NT, "repeats": a.repeats, "points_per_s_median": round(statistics.median(rates)),
               "points_per_s_min": round(min(rates)), "points_per_s_max": round(max(rates)), "machine": m}
        if not a.no_peers:
            peer = run_peer_storage("influx") if backend == "embedded" else run_peer_storage("postgres")
            if peer:
                out["peer"] = {"engine": peer["engine"], "rows_per_s": peer["rows_per_s_median"]}
                out["ratio_to_peer"] = round(out["points_per_s_median"] / peer["rows_per_s_median"], 2)
        print(f"{backend}: median {out['points_per_s_median']:,} points/s (min {out['points_per_s_min']:,}, max {out['points_per_s_max']:,})"
              + (f"; peer {out['peer']['engine']} {out['peer']['rows_per_s']:,} rows/s -> ratio {out['ratio_to_peer']}" if "peer" in out else ""))
        record("pipeline_ingest", out)


if __name__ == "__main__":
    main()
