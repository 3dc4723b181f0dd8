"""Why the embedded store is DuckDB: the peers' 2 M-point workload on SQLite (keyed executemany) and DuckDB (Arrow
appends), next to plantguard's EmbeddedStore.write() of the same readings with everything it writes per batch
(raw rows, latest rows, 1-minute and 1-hour rollup partials, one transaction per 50,000 readings).

    python bench/store_choice.py [--no-peers]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from common import print_machine, record, run_peer_storage
from pipeline_ingest import BATCH, NS, NT, workload
from plantguard.domain.readings import NO_TS, PointBatch
from plantguard.store.base import WriteSet
from plantguard.store.embedded import EmbeddedStore
from plantguard.store.rollup import TIERS, rollup


def ours(data) -> float:
    series, ts, value = data
    with tempfile.TemporaryDirectory() as d:
        store = EmbeddedStore(d)
        store.migrate()
        t = time.perf_counter()
        for i in range(0, len(ts), BATCH):
            p, tt, v = series[i:i + BATCH], ts[i:i + BATCH], value[i:i + BATCH]
            order = np.lexsort((tt, p))
            b = PointBatch(p[order], tt[order], v[order], np.zeros(len(p), np.uint8), np.full(len(p), NO_TS, np.int64))
            last = np.flatnonzero(np.r_[b.pid[1:] != b.pid[:-1], True])
            store.write(WriteSet(b, b.take(last), {k: rollup(b, w) for k, w in TIERS.items()}))
        dt = time.perf_counter() - t
        store.close()
    return NS * NT / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-peers", action="store_true")
    a = ap.parse_args()
    m = print_machine()
    rate = ours(workload())
    print(f"plantguard EmbeddedStore.write (raw + latest + rollups, 50k per transaction): {rate:,.0f} readings/s")
    out = {"embedded_write_rows_per_s": round(rate), "machine": m}
    if not a.no_peers:
        for eng in ("sqlite", "duckdb"):
            peer = run_peer_storage(eng)
            if peer:
                out[f"peer_{eng}_rows_per_s"] = peer["rows_per_s_median"]
                print(f"peer {eng}: {peer['rows_per_s_median']:,} rows/s")
    record("store_choice", out)


if __name__ == "__main__":
    main()
