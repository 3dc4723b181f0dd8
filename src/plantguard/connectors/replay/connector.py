"""Replay: plays a recorded CSV file (a historian export, or a SKAB-style test-bed recording) as a live device.

The file is read chunk by chunk with the CSV connector's reader (same layouts, timestamp rules and line-numbered
problems). Readings are released in recorded-time order on a playback timeline that starts at "now":

    ts = start + (recorded - first_recorded) / speed          (speed > 0)

A reading is only delivered once the clock has reached its ts, so replay never produces timestamps in the
future; when delivery falls behind (backpressure), readings keep their scheduled ts and the delay shows as lag.
With speed 0 rows are delivered as fast as the sink takes them, each stamped between the previous delivery and
now (strictly increasing, so no row is lost to the pipeline's dedupe). The recorded time is kept as src_ts.
With loop, the next pass continues the timeline one recorded period after the last row.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

import numpy as np

from plantguard.connectors.base import (Backoff, Connector, ProbeItem, ProbeResult, ReadingSink, device_batch, link,
                                        mark_online, supervise)
from plantguard.connectors.csv.importer import Chunk, read_csv
from plantguard.connectors.replay.config import ReplayConfig
from plantguard.domain.readings import DeadLetter
from plantguard.errors import InvalidInput
from plantguard.timeutil import Clock, iso, now_us

Sleep = Callable[[float], Awaitable[None]]
_DEFAULT_PERIOD_US = 1_000_000  # loop gap when a file has a single timestamp


@dataclass
class _Rows:
    """One chunk's readings, mapped to point ids and sorted by (recorded ts, line)."""

    points: list[str]
    src: np.ndarray  # int64 recorded ts
    value: np.ndarray
    quality: np.ndarray
    lines: np.ndarray
    dead: list[DeadLetter]
    rows: int  # non-empty data rows of the chunk, including refused ones
    bytes_read: int


def _map_chunk(chunk: Chunk, cfg: ReplayConfig) -> _Rows:
    b = chunk.batch
    names = np.asarray(b.points, dtype=object)
    if cfg.points:
        uniq, inv = np.unique(names, return_inverse=True) if len(names) else (np.zeros(0, object), np.zeros(0, np.int64))
        mapped = np.array([cfg.points.get(u) for u in uniq] + [None], dtype=object)
        pid = mapped[inv] if len(names) else np.zeros(0, object)
        keep = np.flatnonzero(pid != None)  # noqa: E711 - elementwise on an object array
    else:
        pid, keep = names, np.arange(len(names))
    order = keep[np.lexsort((chunk.lines[keep], b.ts[keep]))]
    dead = []
    for d in chunk.dead:
        if d.point is not None and cfg.points:
            if d.point not in cfg.points:
                continue  # a broken cell in a column nobody asked for is not a problem of this device
            d = DeadLetter(d.source, d.reason, f"{cfg.device}/{cfg.points[d.point]}", d.ts, d.value, d.payload, d.code)
        dead.append(d)
    return _Rows(list(pid[order]), b.ts[order], b.value[order], b.quality[order], chunk.lines[order], dead,
                 chunk.rows, chunk.bytes_read)


def _row_ids(lines: np.ndarray) -> np.ndarray:
    """0, 0, 1, 1, 1, 2...: the row of each reading in a slice where a row's readings are contiguous."""
    if not len(lines):
        return np.zeros(0, np.int64)
    return np.concatenate(([0], np.cumsum(lines[1:] != lines[:-1])))


class ReplayConnector(Connector):
    type = "replay"
    config_model = ReplayConfig
    cfg: ReplayConfig

    def __init__(self, cfg: ReplayConfig, sink: ReadingSink, *, clock: Clock = now_us, sleep: Sleep | None = None) -> None:
        super().__init__(cfg, sink, clock=clock)
        self.sleep = sleep or asyncio.sleep
        self.finished = threading.Event()  # set when the file has been played (never, with loop)
        # playback position, kept across link restarts so a retry resumes instead of playing rows twice
        self._pass = 0
        self._chunk = 0  # index of the chunk being played in this pass
        self._offset = 0  # readings of that chunk already delivered
        self._start: int | None = None  # playback time of the first recorded reading of this pass
        self._first: int | None = None  # first recorded ts (of the first chunk with readings)
        self._last_src: int | None = None
        self._period: int | None = None
        self._last_stamp = 0  # speed 0: the newest ts given out
        self.rows_played = 0
        self.readings_played = 0
        self.dead_letters = 0
        self.lag_us: int | None = None
        self.src_position: int | None = None
        self.fraction = 0.0

    # -- health --------------------------------------------------------------------------------------------
    def health(self) -> dict:
        out = super().health()
        if self.finished.is_set():  # the recording ended: silence is expected, not a fault of the link
            out["ok"] = True
        out["replay"] = {
            "file": self.cfg.file, "speed": self.cfg.speed, "loop": self.cfg.loop, "pass": self._pass,
            "rows_played": self.rows_played, "readings_played": self.readings_played,
            "dead_letters": self.dead_letters, "position": round(self.fraction, 4),
            "recorded_time": iso(self.src_position) if self.src_position is not None else None,
            "lag_ms": self.lag_us / 1000 if self.lag_us is not None else None,
            "finished": self.finished.is_set(),
        }
        return out

    # -- playback --------------------------------------------------------------------------------------------
    async def run(self) -> None:
        h = link(self, self.cfg.device)
        backoff = Backoff(self.cfg.reconnect_min, self.cfg.reconnect_max)
        await supervise(h, lambda: self._play(h, backoff), backoff, self.clock)
        h.state = "finished"
        self.finished.set()

    async def _play(self, h, backoff: Backoff) -> None:
        path = Path(self.cfg.file)
        size = max(1, path.stat().st_size)  # a missing file fails here: the link backs off and retries
        while True:
            it = read_csv(path, self.cfg.csv_options(chunk_rows=max(self.cfg.batch_rows, 1000)))
            index = 0
            while True:
                chunk = await asyncio.to_thread(next, it, None)  # parsing must not block the loop
                if chunk is None:
                    break
                if index < self._chunk:  # already played before a restart
                    index += 1
                    continue
                rows = _map_chunk(chunk, self.cfg)
                mark_online(h, backoff, self.clock)
                await self._play_chunk(h, rows)
                self.fraction = min(1.0, rows.bytes_read / size)
                index += 1
                self._chunk, self._offset = index, 0
            if not self.cfg.loop:
                return
            if self._first is None:
                raise InvalidInput(f"{path}: no readings to replay")
            # the next pass continues the timeline one recorded period after this pass's last row
            span = (self._last_src or self._first) - self._first + (self._period or _DEFAULT_PERIOD_US)
            if self._start is not None and self.cfg.speed > 0:
                self._start += int(span / self.cfg.speed)
            self._pass += 1
            self._chunk = self._offset = 0

    async def _play_chunk(self, h, r: _Rows) -> None:
        cfg = self.cfg
        n = len(r.points)
        dead = r.dead if self._pass == 0 and self._offset == 0 else []  # refusals are reported once, not per loop
        if n and self._first is None:
            self._first = int(r.src[0])
            u = np.unique(r.src)
            self._period = int(np.median(np.diff(u))) if len(u) > 1 else None
        if n and self._start is None:
            self._start = self.clock()
        if n:
            self._last_src = max(self._last_src or int(r.src[-1]), int(r.src[-1]))
        per_row = max(1, len(cfg.points) or len(set(r.points[: min(n, 1000)])))
        cap = cfg.batch_rows * per_row
        if cfg.speed > 0 and n:
            due = self._start + ((r.src - self._first) / cfg.speed).astype(np.int64)
        i = self._offset
        if i >= n and dead:
            await self._deliver(h, r, i, i, np.zeros(0, np.int64), dead)
        while i < n:
            now = self.clock()
            if cfg.speed > 0:
                k = int(np.searchsorted(due, now, side="right"))
                if k <= i:
                    await self.sleep((int(due[i]) - now) / 1e6)
                    continue
                k = min(k, i + cap)
                k = self._row_end(r.lines, k, n)
                stamps = due[i:k]
                self.lag_us = max(0, now - int(due[i]))
            else:
                k = self._row_end(r.lines, min(n, i + cap), n)
                ids = _row_ids(r.lines[i:k])
                nrows = int(ids[-1]) + 1
                prev = self._last_stamp or now - nrows
                if now - prev < nrows:  # fewer microseconds than rows since the last delivery: let time pass
                    await self.sleep((nrows - (now - prev)) / 1e6)
                    now = self.clock()
                stamps = prev + ((now - prev) * (ids + 1)) // nrows
                self.lag_us = None
            await self._deliver(h, r, i, k, stamps, dead)
            dead = []
            i = k
            self._offset = i

    async def deliver(self, batch, dead: list[DeadLetter] | None = None) -> None:
        """As Connector.deliver, but a stop while a batch is being written must not cancel the sink's future:
        the pipeline's writer thread fails when it sets the result of a cancelled future."""
        if not len(batch) and not dead:
            return
        fut = await asyncio.to_thread(self.sink.submit, batch, dead)
        await asyncio.shield(asyncio.wrap_future(fut))

    @staticmethod
    def _row_end(lines: np.ndarray, k: int, n: int) -> int:
        """Moves a cut forward to the end of the row it falls in, so a row is never split across batches."""
        while 0 < k < n and lines[k] == lines[k - 1]:
            k += 1
        return k

    async def _deliver(self, h, r: _Rows, i: int, k: int, stamps: np.ndarray, dead: list[DeadLetter]) -> None:
        batch = device_batch(self.cfg.device, r.points[i:k], stamps, r.value[i:k], r.quality[i:k], r.src[i:k],
                             source=f"replay:{self.name}")
        t0 = time.perf_counter()
        await self.deliver(batch, dead)
        h.observe_latency(time.perf_counter() - t0)
        h.requests += 1
        h.readings += k - i
        h.bad_readings += len(dead)
        h.last_ok = self.clock()
        if k > i:
            self.rows_played += len(np.unique(r.lines[i:k]))
            self.src_position = int(r.src[k - 1])
            self._last_stamp = int(stamps[-1])
        self.readings_played += k - i
        self.dead_letters += len(dead)

    # -- assessment ----------------------------------------------------------------------------------------------
    @classmethod
    async def probe(cls, cfg: ReplayConfig, *, max_rps: float = 50.0, duration_s: float = 5.0) -> list[ProbeResult]:
        """Reads the file (for at most duration_s): it exists, the timestamp column parses, each mapped column
        has values, and how many rows per second playback will deliver at the configured speed."""
        return [await asyncio.to_thread(_probe_file, cfg, duration_s)]


def _probe_file(cfg: ReplayConfig, duration_s: float) -> ProbeResult:
    res = ProbeResult(connector=cfg.name, link=cfg.device, endpoint=cfg.file, reachable=False)
    path = Path(cfg.file)
    t0 = time.perf_counter()
    if not path.is_file():
        res.risks.append(f"file {cfg.file} not found (working directory {os.getcwd()})")
        return res
    it = read_csv(path, cfg.csv_options())
    try:
        chunk = next(it, None)
    except (InvalidInput, OSError) as e:
        res.reachable = True
        res.connect_ms = (time.perf_counter() - t0) * 1000
        res.items.append(ProbeItem("header", False, str(e)))
        return res
    res.reachable = True
    res.connect_ms = (time.perf_counter() - t0) * 1000
    rows = refused = 0
    seen: dict[str, tuple[int, float]] = {}  # source name -> (values, first value)
    first = last = None
    out_of_order = 0
    problems: list[str] = []
    partial = False
    read_s = 0.0
    while chunk is not None:
        b = chunk.batch
        rows += chunk.rows
        dead = _map_chunk(chunk, cfg).dead  # only problems that concern mapped columns
        refused += len(dead)
        problems += [f"{(d.payload or '').split(':', 1)[0]}: {d.reason}" for d in dead[: max(0, 3 - len(problems))]]
        if len(b):
            names, idx, counts = np.unique(np.asarray(b.points, dtype=object), return_index=True, return_counts=True)
            for nm, i0, c in zip(names.tolist(), idx.tolist(), counts.tolist()):
                n0, v0 = seen.get(nm, (0, float(b.value[i0])))
                seen[nm] = (n0 + c, v0)
            order = np.argsort(chunk.lines, kind="stable")
            ts_by_line = b.ts[order]
            if last is not None and ts_by_line[0] < last:
                out_of_order += 1
            out_of_order += int(np.count_nonzero(np.diff(ts_by_line) < 0))
            first = int(b.ts.min()) if first is None else min(first, int(b.ts.min()))
            last = int(ts_by_line[-1]) if last is None else max(last, int(b.ts.max()))
        read_s = time.perf_counter() - t0
        if read_s > duration_s:
            partial = True
            break
        chunk = next(it, None)
    wanted = cfg.points or {nm: nm for nm in seen}
    for src, pid in wanted.items():
        if src in seen:
            n, v0 = seen[src]
            res.items.append(ProbeItem(f"{src} -> {cfg.device}/{pid}", True, f"{n} values, first {v0:g}"))
        else:
            res.items.append(ProbeItem(f"{src} -> {cfg.device}/{pid}", False, "no values in the file (missing column or name)"))
    ignored = sorted(set(seen) - set(wanted))
    if ignored:
        res.notes.append(f"not mapped, ignored: {', '.join(ignored)}")
    ts_ok = first is not None
    span_s = (last - first) / 1e6 if ts_ok else 0.0
    res.items.append(ProbeItem(f"timestamps ({cfg.timestamp_column})", ts_ok,
                               f"{rows} rows from {iso(first)} to {iso(last)}" if ts_ok else "no row with a readable timestamp"))
    if refused:
        res.risks.append(f"{refused} problem(s) in {rows} rows will be dead-lettered, e.g. {'; '.join(problems)}")
    if out_of_order:
        res.risks.append(f"timestamps go backwards {out_of_order} time(s): such rows play late, at their recorded offset")
    if read_s > 0:
        # a file loads no device: the 'safe' rate is how many rows/s the reader sustains on this machine
        res.safe_poll_rps = round(rows / read_s, 1)
    if ts_ok and span_s > 0 and cfg.speed > 0:
        res.planned_rps = round(rows / span_s * cfg.speed, 3)
    elif cfg.speed == 0:
        res.notes.append("speed 0: rows are delivered as fast as the pipeline takes them (no planned rate)")
    if partial:
        res.notes.append(f"read for {duration_s:g} s only: {rows} rows checked, the rest of the file was not")
    res.notes.append(f"recorded span {span_s:g} s; playback at speed {cfg.speed:g}" + (", looping" if cfg.loop else ""))
    return res
