"""Streaming analytics throughput and memory: SPC + robust z-score anomaly detection on every point.

Plant: N points (default 10,000), each with `analytics: {spc: {baseline: 100}, anomaly: {}}` (the default anomaly
wiring; `--detector robust_z` for the bare robust z-score), and the same plant with the anomaly wiring alone.
Stream: seeded, per point a random level and noise, occasional persistent level shifts (about one per 5,000
readings) and spikes (about one per 2,000 readings), 1 s apart, delivered as batches of 10 readings per point
(100,000 readings per batch at 10,000 points). The first batches are warm-up (the SPC baseline of 100 readings
and the anomaly detector's warm-up); the figures are the median readings/s over the timed batches that follow.

Measured, in one process pinned to one CPU (os.sched_setaffinity; OMP/MKL/OPENBLAS threads set to 1 before numpy
is imported):

  (a) processor only: AnalyticsProcessor.on_batch on PointBatch objects (pid-sorted, as the pipeline hands them
      over); the sink only counts the events and series rows it receives; no alarm engine;
  (b) end to end: Platform.pipeline.process_now(RawBatch) with an embedded store in a temp dir (validation,
      dedupe, storage, rollups, alarm engine, analytics, analytics rows stored), and the same platform without
      analytics, so the analytics' share of the end-to-end time shows;
  memory per monitored point: the banks' state bytes per slot (nbytes_per_slot), the RSS growth from building
      and warming the processor for N points, the heap that stays allocated (tracemalloc) after the same, and
      the pickled checkpoint size per point;
  peer in the same run: river's HalfSpaceTrees (MinMaxScaler -> HalfSpaceTrees, the pipeline of river's docs),
      one model per point for a subset of points, score_one + learn_one per reading on the same readings; and
      river's univariate StandardAbsoluteDeviation the same way. Our processor is also run on that subset alone.

    python bench/analytics_throughput.py [--points 10000] [--batches 10] [--hst-points 200] [--quick] [--profile]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"
CPU = sorted(os.sched_getaffinity(0))[-1]
os.sched_setaffinity(0, {CPU})

import argparse  # noqa: E402
import gc  # noqa: E402
import pickle  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from common import print_machine, record, rss_bytes  # noqa: E402
from plantguard.config import parse_config
from plantguard.domain.readings import NO_TS, PointBatch, Quality, RawBatch  # noqa: E402
from plantguard.plant_analytics.processor import AnalyticsProcessor  # noqa: E402
from plantguard.ingest.registry import PointRegistry, point_meta  # noqa: E402
from plantguard.runtime import Platform  # noqa: E402
from plantguard.store.base import PointRow  # noqa: E402
from plantguard.testing.factories import plant_dict  # noqa: E402

T0_US = 1_795_251_600_000_000  # 2026-11-21T09:00Z
S = 1_000_000
PER_BATCH = 10  # readings per point per batch
WARM_BATCHES = 12  # 120 readings per point: the SPC baseline (100) is complete and the anomaly detector warm


DETECTOR = "default"
WITH_SPC = True


def plant(n: int, data_dir: str) -> dict:
    d = plant_dict(n, data_dir=data_dir, alarms=False)
    for p in d["sites"][0]["areas"][0]["lines"][0]["assets"][0]["devices"][0]["points"]:
        p["analytics"] = {"anomaly": {"detector": DETECTOR}, **({"spc": {"baseline": 100}} if WITH_SPC else {})}
    return d


def stream(n: int, batches: int, seed: int = 42) -> np.ndarray:
    """Values, shape (batches * PER_BATCH, n): time-major."""
    rng = np.random.default_rng(seed)
    steps = batches * PER_BATCH
    level = rng.uniform(10, 100, n)
    sd = rng.uniform(0.2, 3.0, n)
    x = rng.standard_normal((steps, n))
    shift = (rng.random((steps, n)) < 1 / 5000) * rng.choice([-1.0, 1.0], (steps, n)) * rng.uniform(1, 4, (steps, n))
    shift[: WARM_BATCHES * PER_BATCH] = 0  # keep the baseline clean; shifts come during monitoring
    spike = (rng.random((steps, n)) < 1 / 2000) * rng.choice([-1.0, 1.0], (steps, n)) * rng.uniform(6, 12, (steps, n))
    return level + sd * (x + np.cumsum(shift, axis=0) + spike)


def point_batch(vals: np.ndarray, b: int, pids: np.ndarray) -> PointBatch:
    """Batch b as the pipeline hands it to processors: sorted by (pid, ts)."""
    blk = vals[b * PER_BATCH:(b + 1) * PER_BATCH]  # (PER_BATCH, n)
    n = blk.shape[1]
    ts = T0_US + (b * PER_BATCH + np.arange(PER_BATCH, dtype=np.int64)) * S
    pid = np.repeat(pids.astype(np.int32), PER_BATCH)
    return PointBatch(pid, np.tile(ts, n), np.ascontiguousarray(blk.T).ravel(), np.full(n * PER_BATCH, Quality.good, np.uint8),
                      np.full(n * PER_BATCH, NO_TS, np.int64))


def raw_batch(vals: np.ndarray, b: int, tags: list[str]) -> RawBatch:
    """Batch b as a source delivers it: time-major, by tag."""
    blk = vals[b * PER_BATCH:(b + 1) * PER_BATCH]
    n = blk.shape[1]
    ts = np.repeat(T0_US + (b * PER_BATCH + np.arange(PER_BATCH, dtype=np.int64)) * S, n)
    return RawBatch.build(tags * PER_BATCH, ts, blk.ravel(), source="bench")


class Counter:
    def __init__(self) -> None:
        self.writes = self.events = self.series = 0

    def __call__(self, w) -> None:
        self.writes += 1
        self.events += len(w.events)
        self.series += len(w.series)


def registry_for(cfg) -> PointRegistry:
    reg = PointRegistry()
    reg.load([PointRow(i, tag, point_meta(tag, *parts)) for i, (tag, *parts) in enumerate(cfg.iter_points())])
    return reg


def run_processor(n: int, vals: np.ndarray, timed: int, profile: bool = False) -> dict:
    cfg = parse_config(plant(n, "/nonexistent"))
    reg = registry_for(cfg)
    pids = np.array([reg.pid(t) for t, *_ in cfg.iter_points()])
    batches = [point_batch(vals, b, pids) for b in range(WARM_BATCHES + timed)]
    gc.collect()
    rss0 = rss_bytes()
    sink = Counter()
    now = [T0_US]
    proc = AnalyticsProcessor(cfg, reg, sink=sink, alarms=None, clock=lambda: now[0])
    for b in range(WARM_BATCHES):
        now[0] = int(batches[b].ts.max()) + S
        proc.on_batch(batches[b], now[0])
    gc.collect()
    rss1 = rss_bytes()
    warm_ev, warm_series = sink.events, sink.series
    rates = []
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    for b in range(WARM_BATCHES, WARM_BATCHES + timed):
        now[0] = int(batches[b].ts.max()) + S
        if prof:
            prof.enable()
        t = time.perf_counter()
        proc.on_batch(batches[b], now[0])
        dt = time.perf_counter() - t
        if prof:
            prof.disable()
        rates.append(len(batches[b]) / dt)
    # heap retained by a second processor built and warmed under tracemalloc (RSS also keeps the allocator's
    # high-water mark of the batch-sized temporaries; this does not)
    gc.collect()
    tracemalloc.start()
    p2 = AnalyticsProcessor(cfg, reg, sink=lambda w: None, alarms=None, clock=lambda: now[0])
    for b in range(WARM_BATCHES):
        p2.on_batch(batches[b], int(batches[b].ts.max()) + S)
    gc.collect()
    traced, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del p2
    st = proc._st
    spc_b, rz_b = st.spc.nbytes_per_slot(), st.rz.nbytes_per_slot()
    ckpt = len(pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL))
    out = {
        "points": n, "batch_readings": n * PER_BATCH, "timed_batches": timed,
        "readings_per_s_median": round(statistics.median(rates)), "readings_per_s_min": round(min(rates)),
        "readings_per_s_max": round(max(rates)),
        "events_timed": sink.events - warm_ev, "series_rows_timed": sink.series - warm_series,
        "spc_bytes_per_slot": round(spc_b), "rz_bytes_per_slot": round(rz_b), "bank_bytes_per_point": round(spc_b + rz_b),
        "rss_bytes_per_point": round((rss1 - rss0) / n), "checkpoint_bytes_per_point": round(ckpt / n),
        "heap_bytes_per_point": round(traced / n), "heap_peak_bytes_per_point": round(traced_peak / n),
    }
    if prof:
        import io
        import pstats

        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(12)
        print(s.getvalue())
    return out


def run_platform(n: int, vals: np.ndarray, timed: int, analytics: bool) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cfg = parse_config(plant(n, d))
        now = [T0_US]
        p = Platform(cfg, clock=lambda: now[0], analytics=analytics)
        tags = [t for t, *_ in cfg.iter_points()]
        batches = [raw_batch(vals, b, tags) for b in range(WARM_BATCHES + timed)]
        rates = []
        for b, batch in enumerate(batches):
            now[0] = T0_US + (b + 1) * PER_BATCH * S
            t = time.perf_counter()
            res = p.pipeline.process_now(batch)
            dt = time.perf_counter() - t
            assert res.accepted == len(batch), res
            if b >= WARM_BATCHES:
                rates.append(len(batch) / dt)
        out = {"analytics": analytics, "readings_per_s_median": round(statistics.median(rates)),
               "readings_per_s_min": round(min(rates)), "readings_per_s_max": round(max(rates))}
        if analytics:
            out["analytics_stats"] = dict(p.services.analytics.processor.stats)
            out["active_alarms"] = p.services.alarms.engine.active_count()
        p.stop()
    return out


def run_river(kind: str, vals: np.ndarray, n: int, timed: int) -> dict:
    from river import anomaly, compose, preprocessing, stats

    sad = kind == "sad"

    def make():
        if kind == "hst":
            return compose.Pipeline(preprocessing.MinMaxScaler(), anomaly.HalfSpaceTrees(seed=42))
        return anomaly.StandardAbsoluteDeviation(sub_stat=stats.Mean())

    def feed(models, rows):
        for row in rows:  # time-major, as the stream arrives
            for m, v in zip(models, row):
                if sad:  # river's univariate detectors score the target y
                    m.score_one(None, v)
                    m.learn_one(None, v)
                else:
                    x = {"x": v}
                    m.score_one(x)
                    m.learn_one(x)

    sub = vals[:, :n].tolist()
    models = [make() for _ in range(n)]
    feed(models, sub[: WARM_BATCHES * PER_BATCH])
    rates = []
    for b in range(WARM_BATCHES, WARM_BATCHES + timed):
        rows = sub[b * PER_BATCH:(b + 1) * PER_BATCH]
        t = time.perf_counter()
        feed(models, rows)
        rates.append(n * PER_BATCH / (time.perf_counter() - t))
    pick = statistics.median(len(pickle.dumps(m)) for m in models)
    # heap bytes of a model built and fed the warm-up readings (tracemalloc, 20 models)
    k = min(20, n)
    gc.collect()
    tracemalloc.start()
    m2 = [make() for _ in range(k)]
    feed(m2, [r[:k] for r in sub[: WARM_BATCHES * PER_BATCH]])
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] / k
    tracemalloc.stop()
    return {"model": "MinMaxScaler|HalfSpaceTrees(seed=42)" if kind == "hst" else "StandardAbsoluteDeviation(mean)",
            "points": n, "readings_per_s_median": round(statistics.median(rates)),
            "pickle_bytes_per_model": round(pick), "heap_bytes_per_model": round(heap)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--batches", type=int, default=10, help="timed batches (after %d warm-up batches)" % WARM_BATCHES)
    ap.add_argument("--hst-points", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="1,000 points, 5 timed batches, 50 HST points")
    ap.add_argument("--profile", action="store_true", help="cProfile the processor's timed batches")
    ap.add_argument("--no-platform", action="store_true", help="skip the end-to-end runs")
    ap.add_argument("--detector", default="default", help="point anomaly detector (default: the default wiring)")
    a = ap.parse_args()
    global DETECTOR, WITH_SPC
    DETECTOR = a.detector
    if a.quick:
        a.points, a.batches, a.hst_points = 1000, 5, 50
    m = print_machine()
    import river

    m["river"] = river.__version__
    print(f"pinned to CPU {CPU} of {os.cpu_count()}; OMP/MKL/OPENBLAS threads = 1; river {river.__version__}")
    n, timed = a.points, a.batches
    vals = stream(n, WARM_BATCHES + timed)

    proc = run_processor(n, vals, timed, a.profile)
    print(f"processor only, {n:,} points, batches of {n * PER_BATCH:,}: median {proc['readings_per_s_median']:,} readings/s "
          f"(min {proc['readings_per_s_min']:,}, max {proc['readings_per_s_max']:,}); "
          f"{proc['events_timed']:,} events and {proc['series_rows_timed']:,} series rows in {timed} timed batches")
    print(f"memory per point: banks {proc['bank_bytes_per_point']} B (SPC {proc['spc_bytes_per_slot']} + robust z "
          f"{proc['rz_bytes_per_slot']}), RSS growth {proc['rss_bytes_per_point']:,} B, heap retained {proc['heap_bytes_per_point']:,} B "
          f"(peak while processing {proc['heap_peak_bytes_per_point']:,} B), checkpoint {proc['checkpoint_bytes_per_point']:,} B")
    out = {"processor": proc, "machine": m, "cpu_pinned": CPU, "detector": DETECTOR}

    WITH_SPC = False
    alone = run_processor(n, vals, timed)
    WITH_SPC = True
    print(f"anomaly wiring '{DETECTOR}' alone, {n:,} points: median {alone['readings_per_s_median']:,} readings/s "
          f"(min {alone['readings_per_s_min']:,}); state {alone['rz_bytes_per_slot']} B per point, checkpoint "
          f"{alone['checkpoint_bytes_per_point']:,} B per point; {alone['events_timed']:,} events in {timed} timed batches")
    out["anomaly_alone"] = alone

    small = run_processor(a.hst_points, vals[:, :a.hst_points], timed)
    print(f"processor only on the peer's {a.hst_points} points (batches of {a.hst_points * PER_BATCH:,}): "
          f"median {small['readings_per_s_median']:,} readings/s")
    out["processor_peer_subset"] = {k: small[k] for k in ("points", "batch_readings", "readings_per_s_median")}

    if not a.no_platform:
        e2e = run_platform(n, vals, timed, analytics=True)
        base = run_platform(n, vals, timed, analytics=False)
        share = 1 - base["readings_per_s_median"] ** -1 / e2e["readings_per_s_median"] ** -1
        print(f"end to end (embedded store, alarms, analytics): median {e2e['readings_per_s_median']:,} readings/s "
              f"(min {e2e['readings_per_s_min']:,}, max {e2e['readings_per_s_max']:,}); without analytics "
              f"{base['readings_per_s_median']:,} readings/s -> analytics {share:.0%} of the end-to-end time")
        out.update(end_to_end=e2e, end_to_end_no_analytics=base, analytics_share=round(share, 3))

    for kind in ("hst", "sad"):
        r = run_river(kind, vals, a.hst_points, timed)
        r["ratio_ours_to_peer"] = round(proc["readings_per_s_median"] / r["readings_per_s_median"], 1)
        r["memory_ratio_peer_to_ours"] = round(r["heap_bytes_per_model"] / max(proc["heap_bytes_per_point"], 1), 1)
        print(f"river {r['model']}, {r['points']} points: median {r['readings_per_s_median']:,} readings/s; "
              f"per model: pickle {r['pickle_bytes_per_model']:,} B, heap {r['heap_bytes_per_model']:,} B -> "
              f"ours {r['ratio_ours_to_peer']}x the readings/s")
        out[f"peer_{kind}"] = r
    record("analytics_throughput", out)


if __name__ == "__main__":
    main()
