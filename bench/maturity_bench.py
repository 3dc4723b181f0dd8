"""Maturity: the alarm-performance report over one year of alarm history for 10,000 points (read from the store
and computed), the maturity assessment over the demo plant and over a plant of 100,000 points, and a rollout gate
over 50 KPIs with 10,000 samples a side. Each figure is the median of --repeats runs.

    python bench/maturity_bench.py [--points 10000] [--alarms-per-day 3000] [--big 100000] [--repeats 5]

The alarm history: one HI alarm per point; --alarms-per-day raises spread over the year with a daily rhythm
(Poisson per hour), each returning after an exponential time (mean 10 minutes), 1 % of them shelved; twenty bad
actors chatter. The big plant: 1,000 devices of 100 points (every tenth point critical with SPC limits, every
device with an inventory), an hour of readings at 1 per minute for every point.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_machine, record  # noqa: E402

from plantguard.config import parse_config  # noqa: E402
from plantguard.domain.alarms import AlarmEvent  # noqa: E402
from plantguard.domain.readings import NO_TS, RawBatch  # noqa: E402
from plantguard.runtime import Platform  # noqa: E402

US = 1_000_000
DAY = 86400 * US
T0 = 1_735_689_600 * US  # 2025-01-01


def median_s(fn, repeats: int) -> tuple[float, object]:
    out, res = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out), res


def plant(n_devices: int, per_device: int, data_dir: str, *, alarms: bool, spc_every: int = 0) -> dict:
    devices = []
    for d in range(n_devices):
        pts = []
        for i in range(per_device):
            p = {"id": f"p{i}", "unit": "degC", "range": {"low": -1000, "high": 1000}, "period": "60s"}
            if alarms:
                p["alarms"] = {"limits": {"hi": 80, "priority": ("low", "low", "low", "medium", "high")[i % 5]}}
            if spc_every and i % spc_every == 0:
                p["criticality"] = "high"
                p["analytics"] = {"spc": {"lsl": -100, "usl": 100}}
            pts.append(p)
        devices.append({"id": f"d{d}", "points": pts, "inventory": {"vendor": "acme", "criticality": "high" if d % 10 == 0 else "low"}})
    assets = [{"id": f"a{k}", "devices": devices[k * 10:(k + 1) * 10]} for k in range(math.ceil(n_devices / 10))]
    lines = [{"id": f"l{k}", "assets": assets[k * 10:(k + 1) * 10]} for k in range(math.ceil(len(assets) / 10))]
    return {"sites": [{"id": "s", "areas": [{"id": "a", "lines": lines}]}],
            "storage": {"backend": "embedded", "data_dir": data_dir, "retention_raw": "36500d"},
            "maturity": {"positions": [{"name": f"console-{k}", "scope": [f"s/a/l{k}"]} for k in range(len(lines))]}}


def alarm_history(tags: list[str], per_day: int, seed: int = 1) -> list[AlarmEvent]:
    rng = np.random.default_rng(seed)
    hours = 365 * 24
    rhythm = 1 + 0.5 * np.sin(np.arange(hours) % 24 / 24 * 2 * np.pi)
    n_per_h = rng.poisson(per_day / 24 * rhythm / rhythm.mean())
    at = np.repeat(T0 + np.arange(hours, dtype=np.int64) * 3600 * US, n_per_h) + rng.integers(0, 3600 * US, n_per_h.sum())
    who = rng.integers(0, len(tags), len(at))
    ret = at + (rng.exponential(600, len(at)) * US).astype(np.int64) + US
    ev: list[AlarmEvent] = []
    for a, t, r in zip(who.tolist(), at.tolist(), ret.tolist()):
        ev.append(AlarmEvent(f"{tags[a]}:HI", t, "raised"))
        ev.append(AlarmEvent(f"{tags[a]}:HI", r, "returned"))
    shelve = rng.choice(len(at), len(at) // 100, replace=False)
    ev += [AlarmEvent(f"{tags[who[i]]}:HI", int(at[i]) + US // 2, "shelved", actor="op") for i in shelve]
    for b in range(20):  # bad actors: bursts of 3 raises in 40 s, twice a day
        for day in range(365):
            for k in range(2):
                base = T0 + day * DAY + k * DAY // 2 + b * 60 * US
                for j in range(3):
                    ev += [AlarmEvent(f"{tags[b]}:HI", base + j * 13 * US, "raised"),
                           AlarmEvent(f"{tags[b]}:HI", base + j * 13 * US + 2 * US, "returned")]
    ev.sort(key=lambda e: e.at)
    return ev


def bench_alarm_report(n_points: int, per_day: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(plant(n_points // 100, 100, tmp, alarms=True))
        p = Platform(cfg, clock=lambda: T0 + 365 * DAY)
        try:
            tags = [r.tag for r in p.index.points()]
            t = time.perf_counter()
            ev = alarm_history(tags, per_day)
            for k in range(0, len(ev), 500_000):
                p.store.save_alarms([], ev[k:k + 500_000])
            print(f"alarm history: {len(ev):,} events for {len(tags):,} points, written in {time.perf_counter() - t:.1f} s", flush=True)
            m = p.services.maturity
            read_s, h = median_s(lambda: p.store.alarm_history(T0, T0 + 365 * DAY), repeats)
            total_s, r = median_s(lambda: m.alarm_report(T0, T0 + 365 * DAY), repeats)
            a = r["positions"]["all"]
            print(f"alarm report, one year, {len(tags):,} points, {len(ev):,} events ({len(r['positions'])} positions): "
                  f"{total_s:.2f} s (reading the events {read_s:.2f} s); {a['alarms']:,} alarms, {a['per_10min']['value']} per 10 min, "
                  f"{a['bad_actor_count']} bad actors", flush=True)
            return {"points": len(tags), "events": len(ev), "positions": len(r["positions"]), "report_s": round(total_s, 3),
                    "read_s": round(read_s, 3), "compute_s": round(total_s - read_s, 3), "bad_actors": a["bad_actor_count"]}
        finally:
            p.stop()


def bench_demo_assessment(repeats: int) -> dict:
    from plantguard.sim.demo import DemoClock, seed_maturity
    from plantguard.sim.plant import demo_config
    from plantguard.sim.runner import PipelineSink, Simulator

    t0 = 1_767_243_600 * US
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(demo_config(str(Path(tmp) / "d")))
        clock = DemoClock(t0)
        p = Platform(cfg, clock=clock).start()
        clock.pipeline = p.pipeline
        try:
            seed_maturity(p)
            sim = Simulator(cfg, seed=3, start_us=t0, speed=math.inf, chunk_ticks=120)
            clock.sim = sim
            sim.add_sink(PipelineSink(p.pipeline, max_in_flight=1))
            sim.run(until_us=t0 + 6 * 3600 * US)
            m = p.services.maturity
            s, a = median_s(lambda: m.assess(), repeats)
            ev_s, _ = median_s(lambda: m.evaluate("opc-ua-integration", "bench", record=False), repeats)
            print(f"assessment, demo plant (6 h of data, {len(p.index.tags())} points): {s * 1e3:.0f} ms; "
                  f"mean level {a['summary']['mean_level']}; the pilot's gate over 6 h: {ev_s * 1e3:.0f} ms", flush=True)
            return {"demo_assess_ms": round(s * 1e3, 1), "demo_gate_ms": round(ev_s * 1e3, 1)}
        finally:
            p.stop()


def bench_big_assessment(n_points: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(plant(n_points // 100, 100, tmp, alarms=False, spc_every=10))
        start = T0 + 29 * DAY
        p = Platform(cfg, clock=lambda: T0 + 30 * DAY, alarms=False, analytics=True).start()
        try:
            tags = [r.tag for r in p.index.points()]
            t = time.perf_counter()
            rng = np.random.default_rng(2)
            for minute in range(60):
                ts = np.full(len(tags), start + minute * 60 * US, np.int64)
                p.pipeline.submit(RawBatch(tags, ts, rng.normal(0, 20, len(tags)), np.zeros(len(tags), np.uint8),
                                           np.full(len(tags), NO_TS, np.int64), source="bench")).result()
            print(f"big plant: {len(tags):,} points, {60 * len(tags):,} readings written in {time.perf_counter() - t:.1f} s", flush=True)
            m = p.services.maturity
            s, a = median_s(lambda: m.assess(), repeats)
            ev = {e["id"]: e for e in a["evidence"]}
            print(f"assessment, {len(tags):,} points: {s:.2f} s; completeness median {ev['data.completeness_median']['value']} %, "
                  f"SPC coverage {ev['quality.spc_coverage']['value']} %, Cpk on {ev['quality.capable_share'].get('scope')}", flush=True)
            return {"big_points": len(tags), "big_assess_s": round(s, 3)}
        finally:
            p.stop()


def bench_gate(repeats: int) -> dict:
    from plantguard.maturity.stats import gate, judge

    rng = np.random.default_rng(5)
    pilots = [rng.gamma(2.0, 1.0, 10_000) + (0.05 if k % 7 == 0 else 0) for k in range(50)]
    bases = [rng.gamma(2.0, 1.0, 10_000) for _ in range(50)]

    def run():
        checks = [judge(f"k{k}", pilots[k], bases[k], better="lower", critical=k < 3, seed=k) for k in range(50)]
        return gate(checks)
    s, g = median_s(run, repeats)
    print(f"gate: 50 KPIs x 10,000 samples a side (Mann-Whitney U + 2,000-resample bootstrap each): {s * 1e3:.0f} ms; "
          f"verdict {g.verdict}, score {g.score}", flush=True)
    return {"gate_ms": round(s * 1e3, 1), "gate_verdict": g.verdict}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--alarms-per-day", type=int, default=3000)
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    m = print_machine()
    out = {"machine": m}
    out.update(bench_gate(args.repeats))
    out.update(bench_demo_assessment(args.repeats))
    out.update(bench_alarm_report(args.points, args.alarms_per_day, args.repeats))
    out.update(bench_big_assessment(args.big, max(1, args.repeats // 2)))
    record("maturity", out)


if __name__ == "__main__":
    main()
