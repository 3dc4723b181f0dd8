"""Rejected readings are handled as columns: 200,000 readings for unknown points in one 8 MB HTTP POST, and a
one-reading POST sent while it is being handled.

Measures, against `plantguard serve`-equivalent wiring (uvicorn on loopback, embedded store, alarms and
analytics on):
- the big POST from send to answer (parse, 4 writer turns of 50,000 rejects, dead letters stored as columns);
- the writer's share: submit to durable write of the 200,000 rejects, in process, without HTTP;
- how long a concurrent one-reading POST waits while the big one is in the writer (bounded work per turn).
The reference in the same run is an accepted batch of the same size through the same path.

    python bench/reject_throughput.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

import httpx
import numpy as np
import orjson

from common import print_machine, record
from plantguard.config import parse_config
from plantguard.domain.readings import RawBatch
from plantguard.runtime import Platform
from plantguard.testing.factories import plant_dict, tag
from plantguard.testing.mosquitto import free_port

N = 200_000


def serve(platform: Platform, port: int):
    import uvicorn

    from plantguard.api.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(platform.services), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    while not server.started:
        time.sleep(0.01)
    return server, t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print_machine()
    now_ms = int(time.time() * 1000)
    bad = orjson.dumps({"readings": [{"p": f"nowhere/d/p{i}", "t": now_ms - 60_000, "v": 1.0} for i in range(N)]})
    print(f"payload: {len(bad) / 1e6:.1f} MB, {N} readings for unknown points")
    http_s, writer_s, small_wait_s, accepted_writer_s = [], [], [], []
    for rep in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            cfg = parse_config({**plant_dict(2, data_dir=d), "ingest": {"max_payload_bytes": 16 * 1024 * 1024}})
            p = Platform(cfg).start()
            port = free_port()
            server, t = serve(p, port)
            try:
                url = f"http://127.0.0.1:{port}/api/ingest"
                from plantguard.testing.auth import auth_headers

                hdr = {"content-type": "application/json", **auth_headers(p, "engineer", name="bench", scopes=["ingest"])}
                with httpx.Client(timeout=120) as c:
                    c.post(url, content=b'{"readings": []}', headers=hdr)  # warm
                    small_done: list[float] = []

                    def small():
                        time.sleep(0.05)  # lands while the big request is being handled
                        t0 = time.perf_counter()
                        body = orjson.dumps({"readings": [{"p": tag(1), "t": now_ms - 1000 + rep, "v": 1.0}]})
                        with httpx.Client(timeout=120) as c2:
                            r = c2.post(url, content=body, headers=hdr)
                        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
                        small_done.append(time.perf_counter() - t0)

                    th = threading.Thread(target=small)
                    t0 = time.perf_counter()
                    th.start()
                    r = c.post(url, content=bad, headers=hdr)
                    http_s.append(time.perf_counter() - t0)
                    th.join()
                    small_wait_s.append(small_done[0])
                    assert r.status_code == 200 and r.json()["rejected"] == N, r.text[:300]
                # the writer alone, in process
                batch = RawBatch.build([f"nowhere/d/q{i}" for i in range(N)], np.full(N, (now_ms - 60_000) * 1000), np.ones(N))
                t0 = time.perf_counter()
                res = p.pipeline.ingest(batch, timeout=120)
                writer_s.append(time.perf_counter() - t0)
                assert res.rejected == N
                # reference: the same number of accepted readings through the same writer
                n_pts = 2
                okb = RawBatch.build([tag(i % n_pts) for i in range(N)],
                                     (now_ms - 10_000_000) * 1000 + np.arange(N, dtype=np.int64) * 10, np.ones(N))
                t0 = time.perf_counter()
                res = p.pipeline.ingest(okb, timeout=120)
                accepted_writer_s.append(time.perf_counter() - t0)
                assert res.accepted == N
                n_dead = sum(c["count"] for c in p.store.dead_letter_counts() if c["code"] == "unknown_point")
                assert n_dead == 2 * N, n_dead
            finally:
                server.should_exit = True
                t.join(10)
                p.stop()

    def fmt(xs):
        return f"median {statistics.median(xs):.3f} s (min {min(xs):.3f}, max {max(xs):.3f})"

    print(f"HTTP POST of {N} rejects, send to answer:        {fmt(http_s)}")
    print(f"writer: {N} rejects submit to durable write:    {fmt(writer_s)}  -> {N / statistics.median(writer_s) / 1e3:.0f} k rejects/s")
    print(f"writer: {N} accepted readings (same run):        {fmt(accepted_writer_s)}")
    print(f"concurrent one-reading POST, send to answer:    {fmt(small_wait_s)}")
    print(f"ratio rejects / accepted (writer, medians):     {statistics.median(writer_s) / statistics.median(accepted_writer_s):.2f}")
    record("reject_throughput", {"readings": N, "payload_bytes": len(bad), "http_s": http_s, "writer_s": writer_s,
                                 "accepted_writer_s": accepted_writer_s, "small_post_s": small_wait_s})


if __name__ == "__main__":
    main()
