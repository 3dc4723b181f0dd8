"""A deterministic reading source for outage tests and the recovery benchmark, run as its own process:

    python -m plantguard.connectors.gateway.feeder --dir D --url URL --id G --batches N [--rate B/s] ...

Batch k (k = 1..N) holds `per_batch` readings of each of `points` points with timestamps that depend on k alone,
so every (point, ts) is unique and the full expected set is known in advance (see expected()). Batch k is queued
as seq k: after a crash the feeder resumes with the queue's next seq, regenerating a batch whose write was torn.
"""

from __future__ import annotations

import os
import argparse
import logging
import sys
import threading
import time

import numpy as np

from plantguard.connectors.gateway.forwarder import Forwarder
from plantguard.connectors.gateway.queue import GatewayQueue
from plantguard.domain.readings import RawBatch

DEVICE = "s1/a1/l1/pump1/plc1"
T0_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
STEP_US = 1000


def make_batch(k: int, points: int, per_batch: int) -> RawBatch:
    j = np.arange(per_batch, dtype=np.int64)
    ts = T0_US + ((k - 1) * per_batch + j) * STEP_US
    names = [f"p{i}" for i in range(points) for _ in range(per_batch)]
    value = np.tile(((k * per_batch + j) % 500).astype(np.float64), points) + np.repeat(np.arange(points), per_batch)
    return RawBatch.build(names, np.tile(ts, points), value, source="feeder", prefix=DEVICE)


def expected_count(batches: int, points: int, per_batch: int) -> int:
    return batches * points * per_batch


class Feeder:
    """Appends batch next_seq..N to the queue at `rate` batches per second (0: as fast as possible)."""

    def __init__(self, queue: GatewayQueue, batches: int, points: int, per_batch: int, rate: float) -> None:
        self.queue, self.batches, self.points, self.per_batch, self.rate = queue, batches, points, per_batch, rate
        self.name = "feeder"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        first = self.queue.next_seq
        for k in range(first, self.batches + 1):
            if self.rate > 0:
                delay = t0 + (k - first) / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            if self._stop.is_set():
                return
            seq = self.queue.append(make_batch(k, self.points, self.per_batch))
            assert seq == k, (seq, k)
        self.done.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def health(self) -> dict:
        return {"ok": True, "next": self.queue.next_seq}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--id", default="gw1")
    ap.add_argument("--batches", type=int, required=True)
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--per-batch", type=int, default=10)
    ap.add_argument("--rate", type=float, default=0.0, help="batches per second; 0: as fast as possible")
    ap.add_argument("--fsync", default="always")
    ap.add_argument("--backoff-max", type=float, default=1.0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s feeder %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the rest
    q = GatewayQueue(a.dir, fsync=a.fsync, min_free_bytes=0)
    from plantguard.connectors.gateway.config import TOKEN_ENV

    token = os.environ.get(TOKEN_ENV)
    fwd = Forwarder(q, a.url, a.id, backoff_min=0.05, backoff_max=a.backoff_max,
                    headers={"Authorization": f"Bearer {token}"} if token else None).start()
    feeder = Feeder(q, a.batches, a.points, a.per_batch, a.rate)
    feeder.start()
    # progress on stdout, one line per 100 ms, for the harness: appended seq and confirmed seq
    while True:
        print(f"next={q.next_seq} confirmed={q.confirmed_seq}", flush=True)
        if feeder.done.is_set() and q.confirmed_seq >= a.batches:
            break
        time.sleep(0.1)
    feeder.stop()
    fwd.stop()
    q.close()
    print("drained", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
