"""The ingest pipeline: every source submits RawBatches here.

    submit() --(bounded queue, backpressure)--> writer thread:
        coalesce queued batches (group commit) -> resolve tags -> validate -> dedupe -> durable write
        -> resolve the submitters' futures (an MQTT message is acknowledged only now) -> processors

One writer thread owns the store's write path, the watermarks and the processors, so none of them needs a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from plantguard.domain.readings import DeadLetter, IngestResult, PointBatch, RawBatch, RejectColumns, reject_code
from plantguard.errors import Overloaded, PlantguardError, ShuttingDown, StoreError, StoreUnavailable
from plantguard.ingest.processors import Processor
from plantguard.ingest.registry import PointRegistry
from plantguard.ingest.steps import CHECK_TEXT, Check, dedupe, validate, write_rows
from plantguard.store.base import Store, WriteSet
from plantguard.timeutil import Clock, now_us

log = logging.getLogger(__name__)
MAX_ERRORS_RETURNED = 20
RATE_WINDOW_S = 10.0

# The pipeline's checks, in the order of their index in the per-reading reason column: (code, text).
_CHECKS: list[tuple[str, str]] = [("" if c == Check.ok else c.name, CHECK_TEXT[c]) for c in Check]
_CODE_NAME = np.array([c for c, _ in _CHECKS], object)
_REASON_TEXT = np.array([t for _, t in _CHECKS], object)


@dataclass
class PipelineStats:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    quarantined: int = 0  # readings of quarantined devices, stored aside
    batches: int = 0
    writes: int = 0
    write_errors: int = 0
    processor_errors: int = 0
    queued_readings: int = 0
    lag_us_last: int = 0  # submit -> durably written, for the newest write
    lag_us_max: int = 0
    write_us_last: int = 0
    rejected_by_reason: dict = field(default_factory=dict)
    spilled: int = 0           # readings buffered on disk while the store was unavailable
    replayed: int = 0          # of those, written to the store since
    spill_lost: int = 0        # records that could not be written even with the store back (logged)


@dataclass
class _Item:
    batch: RawBatch
    dead: list[DeadLetter]
    future: Future
    enqueued: int  # monotonic microseconds, for the lag figure


def _resolve(fut: Future, result=None, exc: BaseException | None = None) -> None:
    """Completes a submitter's future. A submitter may have cancelled it meanwhile (a connector stopping while it
    waits): the data is written all the same, and the writer thread must not die on InvalidStateError."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
    except InvalidStateError:
        pass


class LatestState:
    """Per-pid newest (ts, value, quality), grown on demand. Also the dedupe watermark."""

    def __init__(self) -> None:
        self.ts = np.full(0, np.iinfo(np.int64).min, np.int64)
        self.value = np.full(0, np.nan)
        self.quality = np.zeros(0, np.uint8)

    def ensure(self, n: int) -> None:
        if n > len(self.ts):
            grow = max(n, 2 * len(self.ts), 1024)
            pad = grow - len(self.ts)
            self.ts = np.concatenate([self.ts, np.full(pad, np.iinfo(np.int64).min, np.int64)])
            self.value = np.concatenate([self.value, np.full(pad, np.nan)])
            self.quality = np.concatenate([self.quality, np.zeros(pad, np.uint8)])


class Pipeline:
    def __init__(
        self,
        store: Store,
        registry: PointRegistry,
        processors: list[Processor] | None = None,
        *,
        unknown_points: str = "reject",
        max_future_us: int = 300_000_000,
        max_queue_readings: int = 2_000_000,
        max_batch_readings: int = 200_000,
        max_payload_bytes: int | None = None,
        tick_us: int = 1_000_000,
        compact_every_us: int = 60_000_000,
        retention: dict[str, int] | None = None,
        retention_every_us: int = 3_600_000_000,
        clock: Clock = now_us,
    ) -> None:
        self.store = store
        self.registry = registry
        self.processors: list[Processor] = list(processors or [])
        self.unknown_points = unknown_points
        self.max_future_us = max_future_us
        self.max_queue_readings = max_queue_readings
        self.max_batch_readings = max_batch_readings
        self.max_payload_bytes = max_payload_bytes  # the largest payload a source should parse (its own limit may be lower)
        self.diverter = None  # set by the security capability: .held(pid) -> bool mask, .store(PointBatch, now)
        # Set by the platform: a checksummed disk queue (the gateway's) that takes batches while the store is
        # unavailable, and its decoder; the writer replays it, in order, once the store answers again.
        self.spill = None
        self.spill_decode: Callable | None = None
        self.spill_retry_s = 1.0
        self._spill_next_try = 0.0
        # A submission above this is written one chunk per writer turn (see _submit_chunked).
        self.chunk_readings = max(1000, max_batch_readings // 4)
        self._busy_since: int | None = None  # enqueue time of the oldest batch the writer is working on
        self._draining = False
        self._rate_samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])
        self.tick_us = tick_us
        self.compact_every_us = compact_every_us
        self.retention = retention
        self.retention_every_us = retention_every_us
        self.clock = clock
        self.stats = PipelineStats()
        self.latest = LatestState()
        self._q: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._min_bucket_since_compaction: int | None = None
        self._last_compaction = 0
        self._last_retention = 0
        self._last_tick = 0
        self._load_watermarks()

    # -- set-up -----------------------------------------------------------------------------------------
    def _load_watermarks(self) -> None:
        pid, ts, value, quality = self.store.watermarks()
        self.latest.ensure(max(len(self.registry.snap.low), int(pid.max()) + 1 if len(pid) else 0))
        self.latest.ts[pid] = ts
        self.latest.value[pid] = value
        self.latest.quality[pid] = quality

    @property
    def alive(self) -> bool:
        """True while the writer thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def add_processor(self, p: Processor) -> None:
        self.processors.append(p)

    def start(self) -> "Pipeline":
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="plantguard-writer", daemon=True)
            self._thread.start()
        return self

    def stop(self, drain: bool = True, timeout: float = 30.0) -> None:
        """Stops the writer; with drain, everything already queued is written first."""
        with self._cond:
            if not drain:
                while self._q:
                    _resolve(self._q.popleft().future, exc=ShuttingDown("pipeline stopped before this batch was written"))
                self.stats.queued_readings = 0
            self._stop = True
            self._draining = drain
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for p in self.processors:
            try:
                p.close()
            except Exception:  # noqa: BLE001 - a processor's shutdown must not block ours
                log.exception("processor %s failed to close", getattr(p, "name", p))

    # -- producers --------------------------------------------------------------------------------------
    def submit(
        self,
        batch: RawBatch,
        dead_letters: list[DeadLetter] | None = None,
        *,
        timeout: float | None = None,
        on_done: Callable[[Future], None] | None = None,
    ) -> Future:
        """Queues a batch; blocks while the queue is full (backpressure), up to `timeout` seconds, then raises
        Overloaded. The future resolves to an IngestResult once the batch is durably written."""
        if len(batch) > self.chunk_readings:
            return self._submit_chunked(batch, dead_letters, timeout, on_done)
        fut: Future = Future()
        if on_done is not None:
            fut.add_done_callback(on_done)
        n = len(batch)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.stats.queued_readings > 0 and self.stats.queued_readings + n > self.max_queue_readings and not self._stop:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Overloaded(f"ingest queue full ({self.stats.queued_readings} readings waiting); retry later")
                self._cond.wait(remaining if remaining is not None else 1.0)
            if self._stop:
                raise ShuttingDown("the ingest pipeline is stopping; retry against the restarted server")
            self._q.append(_Item(batch, dead_letters or [], fut, time.monotonic_ns() // 1000))
            self.stats.queued_readings += n
            self._cond.notify_all()
        return fut

    def _submit_chunked(self, batch: RawBatch, dead: list[DeadLetter] | None, timeout: float | None,
                        on_done: Callable[[Future], None] | None) -> Future:
        """A large submission goes through the writer one chunk per turn, and each chunk is queued only when the
        previous one is written: batches of other submitters interleave, so one huge request cannot starve them.
        The returned future resolves once every chunk is written, to their merged result."""
        outer: Future = Future()
        if on_done is not None:
            outer.add_done_callback(on_done)
        c = self.chunk_readings
        chunks = [batch.slice(a, min(a + c, len(batch))) for a in range(0, len(batch), c)]
        total = IngestResult()

        def next_chunk(fut: Future) -> None:  # writer thread: must never block
            exc = fut.exception()
            if exc is not None:
                _resolve(outer, exc=exc)
                return
            total.merge(fut.result())
            if not chunks:
                _resolve(outer, total)
                return
            part = chunks.pop(0)
            f2: Future = Future()
            f2.add_done_callback(next_chunk)
            with self._cond:
                if self._stop and not self._draining:
                    _resolve(outer, exc=ShuttingDown("the ingest pipeline stopped while a large batch was being written"))
                    return
                # Past the queue bound on purpose: this chunk's readings were already counted against it.
                self._q.append(_Item(part, [], f2, time.monotonic_ns() // 1000))
                self.stats.queued_readings += len(part)
                self._cond.notify_all()

        first = chunks.pop(0)
        f1 = self.submit(first, dead, timeout=timeout)
        f1.add_done_callback(next_chunk)
        return outer

    def readings_per_s(self) -> float:
        """Readings accepted per second over the last RATE_WINDOW_S (0.0 when idle), sampled by the writer at
        every turn and tick, so it is there from the first second whoever asks."""
        samples = list(self._rate_samples)
        now = time.monotonic()
        if not samples:
            return 0.0
        t0, n0 = samples[0]
        span = now - t0
        if span < 1.0:
            span = 1.0  # one burst must not read as an enormous rate
        return max(0.0, (self.stats.accepted - n0) / span)

    def _sample_rate(self) -> None:
        now = time.monotonic()
        q = self._rate_samples
        if q and now - q[-1][0] < 0.1:
            return  # at most ten samples a second: the window stays small however fast the writer turns
        q.append((now, self.stats.accepted))
        while len(q) > 1 and now - q[1][0] >= RATE_WINDOW_S:
            q.popleft()

    def current_lag_us(self) -> int:
        """How long the oldest reading not yet written has been waiting (0 when nothing waits): unlike the lag
        of the last write, this grows while the writer is stuck or behind."""
        now = time.monotonic_ns() // 1000
        with self._cond:
            oldest = self._q[0].enqueued if self._q else None
        busy = self._busy_since
        cands = [t for t in (oldest, busy) if t is not None]
        lag = max(0, now - min(cands)) if cands else 0
        if self.spill is not None and self.spill_pending():
            # buffered on disk during a store outage: delayed, not missing (the disk queue runs on the platform's
            # clock, so the alarm engine does not call its devices silent)
            first = self.spill.oldest_appended_us
            if first is not None:
                lag = max(lag, self.clock() - first)
        return lag

    def ingest(self, batch: RawBatch, dead_letters: list[DeadLetter] | None = None, timeout: float | None = None) -> IngestResult:
        """Synchronous submit: returns once the batch is durably written (the pipeline must be started)."""
        return self.submit(batch, dead_letters, timeout=timeout).result(timeout)

    def process_now(self, batch: RawBatch, dead_letters: list[DeadLetter] | None = None) -> IngestResult:
        """Runs one batch through the pipeline on the calling thread, for tools that own the pipeline alone
        (CSV import, tests, benchmarks). Must not be mixed with a started writer thread."""
        if self._thread is not None:
            raise PlantguardError("process_now() cannot be used while the writer thread runs; use ingest()")
        fut: Future = Future()
        self._process([_Item(batch, dead_letters or [], fut, time.monotonic_ns() // 1000)])
        return fut.result()

    def compact(self) -> int:
        """Merges the rollup partials written since the last compaction; returns rows removed. For tools that
        own the pipeline alone (CSV import) after bulk work: the writer thread compacts by itself every minute."""
        if self._thread is not None:
            raise PlantguardError("compact() is done by the running writer thread itself")
        if self._min_bucket_since_compaction is None:
            return 0
        removed = self.store.compact_rollups(self._min_bucket_since_compaction)
        self._min_bucket_since_compaction = None
        return removed

    # -- writer -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._q and not self._stop:
                    self._cond.wait(self.tick_us / 1e6)
                if self._stop and not self._q:
                    break
                items: list[_Item] = []
                n = 0
                while self._q and (not items or n + len(self._q[0].batch) <= self.max_batch_readings):
                    it = self._q.popleft()
                    items.append(it)
                    n += len(it.batch)
                self.stats.queued_readings -= n
                self._cond.notify_all()
            if items:
                self._busy_since = min(it.enqueued for it in items)
                try:
                    self._process(items)
                except Exception as e:  # noqa: BLE001 - nothing may kill the writer; each submitter hears why
                    log.exception("the writer failed on %d batch(es); it goes on", len(items))
                    for it in items:
                        _resolve(it.future, exc=StoreError(f"internal error while writing: {e}"))
                finally:
                    self._busy_since = None
            try:
                self._replay()
            except Exception:  # noqa: BLE001
                log.exception("replaying the disk buffer failed; retried")
                self._spill_next_try = time.monotonic() + self.spill_retry_s
            self._housekeeping()
        self._housekeeping(final=True)

    def _housekeeping(self, final: bool = False) -> None:
        self._sample_rate()
        now = self.clock()
        if now - self._last_tick >= self.tick_us or final:
            self._last_tick = now
            for p in self.processors:
                try:
                    p.on_tick(now)
                except Exception:  # noqa: BLE001 - processors must never stop ingest
                    self.stats.processor_errors += 1
                    log.exception("processor %s failed on tick", getattr(p, "name", p))
        if self._min_bucket_since_compaction is not None and (final or now - self._last_compaction >= self.compact_every_us):
            try:
                self.store.compact_rollups(self._min_bucket_since_compaction)
                self._min_bucket_since_compaction = None
                self._last_compaction = now
            except StoreError:
                log.exception("rollup compaction failed (queries stay correct; will retry)")
        if self.retention and now - self._last_retention >= self.retention_every_us:
            self._last_retention = now
            try:
                self.store.apply_retention(now, self.retention)
            except StoreError:
                log.exception("retention failed; will retry")

    # -- the store is out: batches to disk, replayed in order ------------------------------------------------
    def spill_pending(self) -> int:
        """Records on the disk queue not yet written to the store."""
        sp = self.spill
        return 0 if sp is None else max(0, sp.next_seq - 1 - sp.confirmed_seq)

    def _to_spill(self, items: list[_Item], why: str) -> bool:
        """Durable on disk, so acknowledged: the submitter's future resolves as accepted."""
        try:
            for it in items:
                self.spill.append(it.batch, it.dead)
        except Exception:  # noqa: BLE001 - the disk failed too: the submitters hear the store's error
            log.exception("the store is unavailable and the disk buffer refused the batch")
            return False
        n = sum(len(it.batch) for it in items)
        if not self.stats.spilled or self.spill_pending() == len(items):
            log.warning("store unavailable (%s): buffering readings on disk until it answers", why)
        self.stats.spilled += n
        for it in items:
            _resolve(it.future, IngestResult(accepted=len(it.batch)))
        return True

    def _replay(self) -> None:
        """Writes what the disk queue holds, oldest first, a bounded amount per writer turn; stops at the first
        sign the store is still out. A record that fails for another reason is logged, counted and passed over,
        so one bad record cannot hold the rest back."""
        if self.spill is None or time.monotonic() < self._spill_next_try or not self.spill_pending():
            return
        budget = self.max_batch_readings
        for seq, _n, payload in self.spill.read(self.spill.confirmed_seq, max_records=64):
            try:
                batch, dead = self.spill_decode(payload)
            except Exception:  # noqa: BLE001 - a record the codec cannot read (checksums passed): pass it over
                log.exception("spilled record %d cannot be decoded; passed over", seq)
                self.stats.spill_lost += 1
                self.spill.confirm(seq)
                continue
            item = _Item(batch, dead, Future(), time.monotonic_ns() // 1000)
            try:
                self._write_items([item])
            except StoreUnavailable:
                self._spill_next_try = time.monotonic() + self.spill_retry_s
                return
            except Exception:  # noqa: BLE001
                log.exception("spilled record %d could not be written; passed over", seq)
                self.stats.spill_lost += 1
            else:
                self.stats.replayed += len(batch)
            self.spill.confirm(seq)
            budget -= len(batch)
            if budget <= 0:
                return
        if not self.spill_pending():
            log.warning("the disk buffer is written to the store: %d readings replayed", self.stats.replayed)

    def _process(self, items: list[_Item]) -> None:
        if self.spill is not None and self.spill_pending():
            if self._to_spill(items, "older readings are still being replayed"):  # order kept: behind what waits
                return
        try:
            self._write_items(items)
        except StoreUnavailable as e:
            self.stats.write_errors += 1
            if self.spill is not None and self._to_spill(items, str(e)):
                self._spill_next_try = time.monotonic() + self.spill_retry_s
                return
            for it in items:
                _resolve(it.future, exc=e)
        except Exception as e:  # noqa: BLE001 - every submitter must hear about the failure
            self.stats.write_errors += 1
            log.error("write failed for %d batch(es): %s", len(items), e)
            err = e if isinstance(e, PlantguardError) else StoreError(str(e))
            for it in items:
                _resolve(it.future, exc=err)

    def _write_items(self, items: list[_Item]) -> None:
        """Writes and resolves the futures; raises when the write failed (the caller decides what that means)."""
        results, accepted, dead, rejects = self._prepare_and_write(items)
        now = self.clock()
        lag = time.monotonic_ns() // 1000 - min(it.enqueued for it in items)
        self.stats.lag_us_last = lag
        self.stats.lag_us_max = max(self.stats.lag_us_max, lag)
        for it, res in zip(items, results):
            _resolve(it.future, res)
        if len(accepted):
            for p in self.processors:
                try:
                    p.on_batch(accepted, now)
                except Exception:  # noqa: BLE001
                    self.stats.processor_errors += 1
                    log.exception("processor %s failed", getattr(p, "name", p))
        if rejects is not None and len(rejects.code):
            # what was refused, for the processors that judge it (the behavioural detection: unknown points)
            for p in self.processors:
                on_rejects = getattr(p, "on_rejects", None)
                if on_rejects is None:
                    continue
                try:
                    on_rejects(rejects, now)
                except Exception:  # noqa: BLE001
                    self.stats.processor_errors += 1
                    log.exception("processor %s failed on refused readings", getattr(p, "name", p))

    def _reject(self, reasons: dict, code: str, k: int) -> None:
        # Labels of plantguard_ingest_rejected_total: only codes of the closed set, so input cannot grow them.
        code = reject_code(code)
        reasons[code] = reasons.get(code, 0) + k

    def _prepare_and_write(self, items: list[_Item]):
        # Long on purpose: one writer turn, read top to bottom in the order of docs/architecture.md's steps (resolve,
        # validate, dedupe, write); its pure steps are in ingest/steps.py, what stays here is their wiring.
        now = self.clock()
        sub = np.repeat(np.arange(len(items), dtype=np.int32), [len(it.batch) for it in items])
        ts = np.concatenate([it.batch.ts for it in items]) if items else np.empty(0, np.int64)
        value = np.concatenate([it.batch.value for it in items])
        quality = np.concatenate([it.batch.quality for it in items])
        src_ts = np.concatenate([it.batch.src_ts for it in items])
        starts = np.cumsum([0] + [len(it.batch) for it in items])

        def tag_of(i: int) -> str:  # full tag of row i, built only for the rows that need one
            k = int(sub[i])
            return items[k].batch.tag(i - int(starts[k]))

        def resolve() -> np.ndarray:
            parts = [self.registry.resolve(it.batch.points, it.batch.prefix) for it in items]
            return np.concatenate(parts) if parts else np.empty(0, np.int32)

        pid = resolve()
        unknown = pid < 0
        if unknown.any() and self.unknown_points == "auto_register":
            new = self.registry.register_auto([tag_of(i) for i in np.flatnonzero(unknown)], self.store)
            if new:
                pid = resolve()
                unknown = pid < 0
        snap = self.registry.snap
        self.latest.ensure(len(snap.low))

        # -- validation, vectorised; the first failing check names the reason -----------------------------
        reason = validate(pid, ts, value, quality, snap, now=now, max_future_us=self.max_future_us,
                          raw_retention_us=(self.retention or {}).get("raw"))
        ok = reason == Check.ok

        # -- rejects, as columns: a request of 200,000 bad readings costs numpy work, not 200,000 objects ------
        dead: list[DeadLetter] = []
        for it in items:
            dead.extend(it.dead)
        bad_idx = np.flatnonzero(~ok)
        per_sub_rejected = np.bincount(sub[bad_idx], minlength=len(items)) if len(bad_idx) else np.zeros(len(items), np.int64)
        first_errors: list[list[DeadLetter]] = [list(it.dead[:MAX_ERRORS_RETURNED]) for it in items]
        rejects = None
        if len(bad_idx):
            rejects = self._rejects(items, sub, starts, bad_idx, reason[bad_idx], pid, ts, value, snap)
            counts = np.bincount(reason[bad_idx], minlength=len(_CHECKS))
            for r in np.flatnonzero(counts).tolist():
                self._reject(self.stats.rejected_by_reason, _CHECKS[r][0], int(counts[r]))
            # the first few per submitter, as objects, for the caller's answer
            bsub = sub[bad_idx]
            for k in np.flatnonzero(per_sub_rejected).tolist():
                room = MAX_ERRORS_RETURNED - len(first_errors[k])
                if room <= 0:
                    continue
                lo_k = int(np.searchsorted(bsub, k, "left"))
                for j in range(lo_k, min(lo_k + room, int(np.searchsorted(bsub, k, "right")))):
                    first_errors[k].append(DeadLetter(str(rejects.source[j]), str(rejects.reason[j]), point=str(rejects.point[j]),
                                                      ts=int(rejects.ts[j]), value=repr(float(rejects.value[j])), code=str(rejects.code[j])))
        for it in items:
            for d in it.dead:
                self._reject(self.stats.rejected_by_reason, d.code, 1)

        # -- dedupe: in-batch duplicates, then against the per-point watermark / the store ------------------
        keep, dup_idx = dedupe(pid, ts, ok, self.latest.ts, self.store.existing)
        diverter = self.diverter
        h = keep[:0]
        if diverter is not None and len(keep):
            # readings of quarantined devices: stored aside (forensics, nothing lost), kept out of the main store,
            # the watermarks and the processors; they count as accepted for their submitter (they are durable)
            held = diverter.held(pid[keep])
            if held.any():
                h = keep[held]
                diverter.store(PointBatch(pid[h], ts[h], value[h], quality[h], src_ts[h]), now)
                self.stats.quarantined += len(h)
                keep = keep[~held]
        per_sub_dup = np.bincount(sub[dup_idx], minlength=len(items)) if len(dup_idx) else np.zeros(len(items), np.int64)
        per_sub_acc = np.bincount(sub[keep], minlength=len(items)) if len(keep) else np.zeros(len(items), np.int64)
        if len(h):
            per_sub_acc = per_sub_acc + np.bincount(sub[h], minlength=len(items))
        batch, latest, rollups = write_rows(pid, ts, value, quality, src_ts, keep, self.latest.ts)
        ws = WriteSet(batch=batch, latest=latest, rollups=rollups, dead_letters=dead, rejects=rejects, received_at=now)

        t0 = time.perf_counter_ns()
        self.store.write(ws)
        self.stats.write_us_last = (time.perf_counter_ns() - t0) // 1000
        self.stats.writes += 1

        # -- only now, with the data durable, advance the in-memory state --------------------------------------
        if len(latest):
            self.latest.ts[latest.pid] = latest.ts
            self.latest.value[latest.pid] = latest.value
            self.latest.quality[latest.pid] = latest.quality
        if len(batch):
            b0 = int(rollups["1h"].bucket.min()) if len(rollups["1h"]) else None
            if b0 is not None:
                m = self._min_bucket_since_compaction
                self._min_bucket_since_compaction = b0 if m is None else min(m, b0)
        n_parse_dead = sum(len(it.dead) for it in items)
        self.stats.accepted += len(keep)
        self.stats.rejected += len(bad_idx) + n_parse_dead
        self.stats.duplicates += len(dup_idx)
        self.stats.batches += len(items)
        results = [
            IngestResult(int(per_sub_acc[k]), int(per_sub_rejected[k]) + len(items[k].dead), int(per_sub_dup[k]), first_errors[k])
            for k in range(len(items))
        ]
        return results, batch, dead, rejects

    def _rejects(self, items: list[_Item], sub: np.ndarray, starts: np.ndarray, bad_idx: np.ndarray, codes: np.ndarray,
                 pid: np.ndarray, ts: np.ndarray, value: np.ndarray, snap) -> RejectColumns:
        """The refused readings as columns: code, reason text (one text per check, or per point for the range
        check), the full tag, the source. `bad_idx` is sorted, and so is `sub[bad_idx]`."""
        reason_txt = _REASON_TEXT[codes]
        if self.max_future_us is not None:
            reason_txt[codes == Check.future] = f"timestamp more than {self.max_future_us / 1e6:g} s in the future"
        m7 = codes == Check.out_of_range
        if m7.any():
            u, inv = np.unique(pid[bad_idx[m7]], return_inverse=True)
            limits = [f" outside the engineering range [{snap.low[p]:g}, {snap.high[p]:g}]" for p in u.tolist()]
            reason_txt[m7] = [f"value {v:g}{limits[i]}" for v, i in zip(value[bad_idx[m7]].tolist(), inv.tolist())]
        points = np.empty(len(bad_idx), object)
        bsub = sub[bad_idx]
        bounds = np.searchsorted(bsub, np.arange(len(items) + 1), "left")
        for k, it in enumerate(items):
            a, b = int(bounds[k]), int(bounds[k + 1])
            if a == b:
                continue
            local = (bad_idx[a:b] - int(starts[k])).tolist()
            names = it.batch.points
            pre = it.batch.prefix
            points[a:b] = [f"{pre}/{names[j]}" for j in local] if pre else [names[j] for j in local]
        source = np.array([it.batch.source for it in items], object)[bsub]
        return RejectColumns(source, _CODE_NAME[codes], reason_txt, points, ts[bad_idx], value[bad_idx])
