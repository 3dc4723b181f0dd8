"""Resident memory per active point: a platform with N points, each receiving readings, minus the same
process before the platform existed. Reported for 1,000 / 10,000 / 100,000 points, embedded store.
Each size runs in a fresh interpreter so allocations of one size do not hide in the next.

    python bench/memory.py
"""

from __future__ import annotations

import json
import subprocess
import sys

from common import print_machine, record

CHILD = r"""
import gc, json, sys, tempfile
import numpy as np
sys.path.insert(0, {bench!r})
from common import rss_bytes
from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.runtime import Platform
from plantguard.timeutil import now_us
n = {n}
d = tempfile.mkdtemp()
pts = [{{"id": f"p{{i}}", "unit": "degC", "range": {{"low": -100, "high": 100}}, "period": "1s",
        **({{"alarms": {{"limits": {{"hi": 80, "hihi": 90}}}}}} if i % 10 == 0 else {{}})}} for i in range(n)]
doc = {{"sites": [{{"id": "s", "areas": [{{"id": "a", "lines": [{{"id": "l", "assets": [{{"id": "x", "devices": [
    {{"id": "d", "points": pts}}]}}]}}]}}]}}], "storage": {{"data_dir": d}}}}
gc.collect()
before = rss_bytes()
cfg = parse_config(doc)
p = Platform(cfg)
tags = [t for t, *_ in cfg.iter_points()]
t0 = now_us() - 60_000_000
rng = np.random.default_rng(1)
for k in range(30):
    p.pipeline.process_now(RawBatch.build(tags, np.full(n, t0 + k * 1_000_000), rng.normal(size=n)))
gc.collect()
after = rss_bytes()
p.stop()
print(json.dumps({{"points": n, "rss_before_mb": before / 2**20, "rss_after_mb": after / 2**20, "bytes_per_point": (after - before) / n}}))
"""


def main() -> None:
    m = print_machine()
    import os

    bench_dir = os.path.dirname(os.path.abspath(__file__))
    for n in (1_000, 10_000, 100_000):
        out = subprocess.run([sys.executable, "-c", CHILD.format(n=n, bench=bench_dir)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:>7,} points: {r['bytes_per_point'] / 1024:.1f} KiB per point (RSS {r['rss_before_mb']:.0f} -> {r['rss_after_mb']:.0f} MiB)")
        record("memory", {**r, "machine": m})


if __name__ == "__main__":
    main()
