"""The gateway's disk queue: a ReadingSink (same submit() as Pipeline) that makes every batch durable on the
edge before anything is sent anywhere.

Layout of the data directory:
    seg-<first seq, 20 digits>.log   append-only segment files of records (codec.HEADER + payload)
    state.json                       confirmed seq, next seq, the dropped ranges (replaced atomically)

A record is one batch with its gateway sequence number (monotonic over the queue's whole life), the time it was
appended and a CRC32. Records leave the queue only when the central side confirms their seq (a durable write
there), and then a whole segment at a time; with the drop_oldest policy the oldest segment also goes when the
byte budget is reached, and the dropped seq range is recorded and reported.

Durability: with fsync "always" (the default) a submit returns only after the record is fsynced, so an
acknowledged batch survives a power cut; with "interval" it survives a killed process (the data is in the page
cache) and loses at most fsync_interval_s on power loss; "never" leaves it to the OS. On start the segments are
scanned: a torn or corrupted tail (a crash in the middle of a write) fails its checksum and is truncated.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import orjson

from plantguard.fsperm import secure_data_dir
from plantguard.connectors.gateway import codec
from plantguard.domain.readings import DeadLetter, IngestResult, RawBatch
from plantguard.errors import Overloaded
from plantguard.store.dirlock import DirLock
from plantguard.timeutil import Clock, now_us

log = logging.getLogger(__name__)

Overflow = Literal["drop_oldest", "reject_new"]
FsyncPolicy = Literal["always", "interval", "never"]
RATE_WINDOW_S = 60.0
MAX_RANGES_KEPT = 100


class QueueFull(Overloaded):
    """reject_new: the byte budget (or the free-disk reserve) is reached; the batch was not queued."""


@dataclass
class _Segment:
    first_seq: int
    path: Path
    fd: int
    size: int = 0
    last_seq: int = 0  # 0 while empty


@dataclass
class _Rec:
    seq: int
    seg: _Segment
    offset: int
    size: int  # header + payload
    readings: int
    appended_us: int


@dataclass
class QueueStats:
    appended_batches: int = 0
    appended_readings: int = 0
    confirmed_batches: int = 0
    confirmed_readings: int = 0
    dropped_batches: int = 0
    dropped_readings: int = 0
    rejected_batches: int = 0
    rejected_readings: int = 0
    truncated_bytes: int = 0  # torn tails cut off at start-up
    dropped_ranges: list = field(default_factory=list)  # [[first seq, last seq], ...], the newest last


class _Rate:
    """Amount per second over the last RATE_WINDOW_S."""

    def __init__(self) -> None:
        self._ev: deque[tuple[float, int, int]] = deque()

    def add(self, readings: int, nbytes: int) -> None:
        self._ev.append((time.monotonic(), readings, nbytes))

    def per_s(self) -> tuple[float, float]:
        now = time.monotonic()
        while self._ev and now - self._ev[0][0] > RATE_WINDOW_S:
            self._ev.popleft()
        if not self._ev:
            return 0.0, 0.0
        span = max(now - self._ev[0][0], 1.0)  # at least 1 s: one burst must not read as an infinite rate
        return sum(e[1] for e in self._ev) / span, sum(e[2] for e in self._ev) / span


class GatewayQueue:
    def __init__(self, directory: str | Path, *, max_bytes: int = 1 << 30, overflow: Overflow = "drop_oldest",
                 fsync: FsyncPolicy = "always", fsync_interval_s: float = 1.0, segment_bytes: int | None = None,
                 min_free_bytes: int = 256 << 20, clock: Clock = now_us) -> None:
        if overflow not in ("drop_oldest", "reject_new"):
            raise ValueError(f"overflow must be drop_oldest or reject_new, not {overflow!r}")
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync must be always, interval or never, not {fsync!r}")
        self.dir = Path(directory)
        secure_data_dir(self.dir)  # the queued readings are plant data: owner-only, like the store
        # Two gateways on one directory would interleave segments and confirm each other's records.
        self._lock = DirLock(self.dir, "plantguard gateway")
        self.max_bytes = int(max_bytes)
        self.overflow = overflow
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        # drop_oldest frees a segment at a time: small segments keep the loss granular
        self.segment_bytes = int(segment_bytes or min(64 << 20, max(64 << 10, self.max_bytes // 16)))
        self.min_free_bytes = int(min_free_bytes)
        self.clock = clock
        self.stats = QueueStats()
        self.changed = threading.Condition(threading.Lock())  # notified on append, confirm and close
        self._segs: list[_Segment] = []
        self._recs: deque[_Rec] = deque()  # unconfirmed records, in seq order
        self._readings = 0
        self._bytes = 0  # bytes of all segment files
        self._confirmed = 0
        self._next_seq = 1
        self._last_fsync = time.monotonic()
        self._in_rate, self._out_rate = _Rate(), _Rate()
        self._closed = False
        self._recover()

    # -- start-up ---------------------------------------------------------------------------------------------------
    def _recover(self) -> None:
        st = self._load_state()
        self._confirmed = int(st.get("confirmed", 0))
        self._next_seq = max(int(st.get("next_seq", 1)), self._confirmed + 1)
        for k in ("dropped_batches", "dropped_readings", "rejected_batches", "rejected_readings"):
            setattr(self.stats, k, int(st.get(k, 0)))
        self.stats.dropped_ranges = [list(r) for r in st.get("dropped_ranges", [])]
        for path in sorted(self.dir.glob("seg-*.log")):
            seg = _Segment(int(path.stem[4:]), path, os.open(path, os.O_RDWR))
            data = os.pread(seg.fd, os.fstat(seg.fd).st_size, 0)
            good = self._scan(seg, data)
            if good < len(data):
                # a torn write (crash mid-append) or damage: everything after the last good record goes
                log.warning("gateway queue: %s: cut %d damaged byte(s) after the last good record", path.name, len(data) - good)
                self.stats.truncated_bytes += len(data) - good
                os.ftruncate(seg.fd, good)
                os.fsync(seg.fd)
            seg.size = good
            if good == 0:
                os.close(seg.fd)
                path.unlink()
                continue
            self._segs.append(seg)
            self._bytes += good
        if self._segs:
            self._next_seq = max(self._next_seq, self._segs[-1].last_seq + 1)
        self._delete_confirmed_segments()
        if self._recs:
            log.info("gateway queue: %d batch(es), %d reading(s) waiting (seq %d..%d)", len(self._recs), self._readings,
                     self._recs[0].seq, self._recs[-1].seq)

    def _scan(self, seg: _Segment, data: bytes) -> int:
        """Indexes the good records of a segment; returns the length of its good prefix."""
        off = 0
        view = memoryview(data)
        while len(data) - off >= codec.HEADER.size:
            magic, plen, seq, at, c = codec.HEADER.unpack_from(data, off)
            end = off + codec.HEADER.size + plen
            if magic != codec.MAGIC or end > len(data) or seq <= seg.last_seq and seg.last_seq:
                break
            payload = view[off + codec.HEADER.size:end]
            if codec.crc(seq, at, payload) != c:
                break
            seg.last_seq = seq
            if seq > self._confirmed:
                n = _readings_of(payload)
                self._recs.append(_Rec(seq, seg, off, end - off, n, at))
                self._readings += n
            off = end
        return off

    def _load_state(self) -> dict:
        p = self.dir / "state.json"
        try:
            return orjson.loads(p.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as e:
            # the segments still hold every record; only already-confirmed ones may be sent again (deduplicated)
            log.warning("gateway queue: %s unreadable (%s); starting from the segments alone", p, e)
            return {}

    def _save_state(self) -> None:
        doc = {"confirmed": self._confirmed, "next_seq": self._next_seq, "dropped_ranges": self.stats.dropped_ranges,
               **{k: getattr(self.stats, k) for k in ("dropped_batches", "dropped_readings", "rejected_batches", "rejected_readings")}}
        tmp = self.dir / "state.json.tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(doc))
            f.flush()
            if self.fsync != "never":
                os.fsync(f.fileno())
        os.replace(tmp, self.dir / "state.json")

    # -- ReadingSink --------------------------------------------------------------------------------------------------
    def submit(self, batch: RawBatch, dead_letters: list[DeadLetter] | None = None, *, timeout: float | None = None,
               on_done: Callable[[Future], None] | None = None) -> Future:
        """Appends the batch as one record; the returned future is already resolved: the record is on disk (see
        the fsync policy). Raises QueueFull when the reject_new policy refuses it."""
        fut: Future = Future()
        if on_done is not None:
            fut.add_done_callback(on_done)
        self.append(batch, dead_letters)
        fut.set_result(IngestResult(accepted=len(batch)))
        return fut

    def append(self, batch: RawBatch, dead_letters: list[DeadLetter] | None = None) -> int:
        """Writes one record; returns its seq."""
        payload = codec.encode_batch(batch, dead_letters)
        n = len(batch)
        with self.changed:
            if self._closed:
                raise Overloaded("the gateway queue is closed")
            seq = self._next_seq
            at = self.clock()
            rec = codec.pack_record(seq, at, payload)
            self._make_room(len(rec), n)
            seg = self._active()
            off = seg.size
            written = os.pwrite(seg.fd, rec, off)
            if written != len(rec):
                raise OSError(f"short write to {seg.path}")
            seg.size += len(rec)
            seg.last_seq = seq
            self._bytes += len(rec)
            self._sync(seg.fd)
            self._next_seq = seq + 1
            self._recs.append(_Rec(seq, seg, off, len(rec), n, at))
            self._readings += n
            self.stats.appended_batches += 1
            self.stats.appended_readings += n
            self._in_rate.add(n, len(rec))
            self.changed.notify_all()
        return seq

    def _sync(self, fd: int) -> None:
        if self.fsync == "always" or (self.fsync == "interval" and time.monotonic() - self._last_fsync >= self.fsync_interval_s):
            os.fdatasync(fd)  # data and size; the mtime need not reach the disk
            self._last_fsync = time.monotonic()

    def _active(self) -> _Segment:
        seg = self._segs[-1] if self._segs else None
        if seg is None or seg.size >= self.segment_bytes:
            path = self.dir / f"seg-{self._next_seq:020d}.log"
            seg = _Segment(self._next_seq, path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600))
            self._segs.append(seg)
            self._sync_dir()
        return seg

    def _sync_dir(self) -> None:
        if self.fsync == "never":
            return
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def limit_bytes(self) -> int:
        """The bytes the queue may occupy now: the budget, or less when the disk is short of free space."""
        free = shutil.disk_usage(self.dir).free
        return min(self.max_bytes, self._bytes + max(0, free - self.min_free_bytes))

    def _make_room(self, size: int, n: int) -> None:
        limit = self.limit_bytes()
        while self._bytes + size > limit:
            if self.overflow == "reject_new" or not self._segs:
                self.stats.rejected_batches += 1
                self.stats.rejected_readings += n
                self._save_state()
                raise QueueFull(f"gateway queue full ({self._bytes} of {limit} bytes); batch of {n} readings refused")
            self._drop_segment(self._segs[0])

    def _drop_segment(self, seg: _Segment) -> None:
        """drop_oldest: the oldest segment goes, delivered or not; what it held unconfirmed is counted."""
        first = last = None
        batches = readings = 0
        while self._recs and self._recs[0].seg is seg:
            r = self._recs.popleft()
            first = r.seq if first is None else first
            last = r.seq
            batches += 1
            readings += r.readings
        self._readings -= readings
        self._remove(seg)
        if batches:
            self.stats.dropped_batches += batches
            self.stats.dropped_readings += readings
            self.stats.dropped_ranges = (self.stats.dropped_ranges + [[first, last]])[-MAX_RANGES_KEPT:]
            log.warning("gateway queue: byte budget reached: dropped seq %d..%d (%d readings) unsent", first, last, readings)
        self._save_state()

    def _remove(self, seg: _Segment) -> None:
        os.close(seg.fd)
        try:
            seg.path.unlink()
        except FileNotFoundError:
            pass
        self._segs.remove(seg)
        self._bytes -= seg.size

    # -- the forwarder's side -----------------------------------------------------------------------------------------
    def read(self, after_seq: int, max_bytes: int = 4 << 20, max_records: int = 10_000) -> list[tuple[int, int, bytes]]:
        """Up to max_records records with seq > after_seq, in order, as (seq, readings, record bytes incl. header);
        at least one record when there is one, whatever its size."""
        out: list[tuple[int, int, bytes]] = []
        total = 0
        with self.changed:
            for r in self._recs:  # ordered; a few thousand entries at most in practice
                if r.seq <= after_seq:
                    continue
                if out and (total + r.size > max_bytes or len(out) >= max_records):
                    break
                out.append((r.seq, r.readings, os.pread(r.seg.fd, r.size, r.offset)))
                total += r.size
        return out

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Waits until a record with seq > after_seq is queued (or the queue closes); True if there is one."""
        with self.changed:
            return self.changed.wait_for(lambda: self._closed or (self._recs and self._recs[-1].seq > after_seq), timeout) is True \
                and bool(self._recs) and self._recs[-1].seq > after_seq

    def confirm(self, seq: int) -> None:
        """The central side durably wrote every record up to seq: they may go."""
        with self.changed:
            if seq <= self._confirmed:
                return
            seq = min(seq, self._next_seq - 1)
            batches = readings = nbytes = 0
            while self._recs and self._recs[0].seq <= seq:
                r = self._recs.popleft()
                batches += 1
                readings += r.readings
                nbytes += r.size
            self._readings -= readings
            self._confirmed = seq
            self.stats.confirmed_batches += batches
            self.stats.confirmed_readings += readings
            self._out_rate.add(readings, nbytes)
            self._save_state()  # before deleting: a crash in between only resends (deduplicated) records
            self._delete_confirmed_segments()
            self.changed.notify_all()

    def _delete_confirmed_segments(self) -> None:
        for seg in list(self._segs):
            if seg.last_seq and seg.last_seq <= self._confirmed:
                self._remove(seg)

    @property
    def oldest_appended_us(self) -> int | None:
        """When the oldest unconfirmed record was appended (by the queue's clock), or None when all are confirmed."""
        with self.changed:
            return self._recs[0].appended_us if self._recs else None

    @property
    def confirmed_seq(self) -> int:
        return self._confirmed

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def close(self) -> None:
        with self.changed:
            if self._closed:
                return
            self._closed = True
            for seg in self._segs:
                if self.fsync != "never":
                    os.fsync(seg.fd)
                os.close(seg.fd)
            self._segs.clear()
            self._lock.release()
            self.changed.notify_all()

    def __enter__(self) -> "GatewayQueue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- figures ------------------------------------------------------------------------------------------------------
    def health(self) -> dict:
        with self.changed:
            now = self.clock()
            in_r, in_b = self._in_rate.per_s()
            out_r, out_b = self._out_rate.per_s()
            limit = self.limit_bytes()
            room = max(0, limit - self._bytes)
            st = self.stats
            return {
                "depth": {"batches": len(self._recs), "readings": self._readings, "bytes": self._bytes},
                "oldest_age_s": (now - self._recs[0].appended_us) / 1e6 if self._recs else 0.0,
                "seq": {"next": self._next_seq, "confirmed": self._confirmed},
                "budget": {"max_bytes": self.max_bytes, "limit_bytes": limit, "free_disk_bytes": shutil.disk_usage(self.dir).free,
                           "overflow": self.overflow, "fsync": self.fsync},
                "input_rate": {"readings_per_s": in_r, "bytes_per_s": in_b},
                "drain_rate": {"readings_per_s": out_r, "bytes_per_s": out_b},
                # hours the queue can still absorb the current input with nothing drained (an outage starting now)
                "autonomy_hours": room / in_b / 3600 if in_b > 0 else None,
                "capacity_hours": limit / in_b / 3600 if in_b > 0 else None,
                "appended": {"batches": st.appended_batches, "readings": st.appended_readings},
                "confirmed": {"batches": st.confirmed_batches, "readings": st.confirmed_readings},
                "dropped": {"batches": st.dropped_batches, "readings": st.dropped_readings, "ranges": list(st.dropped_ranges)},
                "rejected": {"batches": st.rejected_batches, "readings": st.rejected_readings},
                "truncated_bytes": st.truncated_bytes,
            }


def _readings_of(payload: memoryview) -> int:
    import struct

    (mlen,) = struct.unpack_from("<I", payload, 0)
    return int(orjson.loads(bytes(payload[4:4 + mlen]))["n"])
