"""How the platform is doing: ingest rates and lag, the writer, the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from plantguard.services._base import Core
from plantguard.timeutil import now_us


@dataclass(frozen=True)
class IngestStatus:
    readings_per_s: float
    lag_ms: float
    accepted: int
    rejected: int
    duplicates: int
    queued_readings: int
    writer_alive: bool
    write_errors: int
    processor_errors: int


class StatusService:
    def __init__(self, core: Core, *, store_kind: str, sources: Callable[[], list], restarts: dict,
                 lag_degraded_us: int, started_at: int) -> None:
        self.core = core
        self._store_kind = store_kind
        self._sources = sources
        self.supervisor_restarts = restarts
        self.lag_degraded_us = lag_degraded_us
        self.started_at = started_at

    def health(self) -> dict:
        pl = self.core.pipeline
        st = pl.stats
        writer_alive = pl.alive
        sources = {}
        for s in self._sources():
            try:
                sources[getattr(s, "name", type(s).__name__)] = s.health()
            except Exception as e:  # noqa: BLE001
                sources[getattr(s, "name", type(s).__name__)] = {"ok": False, "error": str(e)}
        for name, v in sources.items():
            v["supervisor_restarts"] = self.supervisor_restarts.get(name, 0)
        lag_now = pl.current_lag_us()
        lagging = lag_now > self.lag_degraded_us
        problems = []
        if not writer_alive:
            problems.append("the ingest writer thread is not running")
        if lagging:
            problems.append(f"ingest lags: the oldest waiting reading has waited {lag_now / 1e6:.1f} s "
                            f"(threshold ingest.lag_degraded {self.lag_degraded_us / 1e6:g} s)")
        spill = pl.spill_pending()
        if spill:
            problems.append(f"the store is unavailable or catching up: {spill} batch(es) buffered on disk, replayed in order when it answers")
        problems += [f"source {n} is not healthy" + (": its thread or loop died" if v.get("thread_alive") is False else "")
                     for n, v in sources.items() if not v.get("ok", True)]
        ok = not problems
        return {
            "status": "ok" if ok else "degraded",
            "problems": problems,
            "store": self._store_kind,
            "writer_alive": writer_alive,
            "points": len(self.core.points),
            "pipeline": {
                "accepted": st.accepted, "rejected": st.rejected, "duplicates": st.duplicates,
                "queued_readings": st.queued_readings, "lag_ms_last": st.lag_us_last / 1000, "lag_ms_max": st.lag_us_max / 1000,
                "lag_ms_now": lag_now / 1000, "lagging": lagging, "lag_degraded_ms": self.lag_degraded_us / 1000,
                "write_errors": st.write_errors, "processor_errors": st.processor_errors,
                "spill": {"pending_batches": spill, "spilled": st.spilled, "replayed": st.replayed, "lost": st.spill_lost},
            },
            "sources": sources,
            "uptime_s": (now_us() - self.started_at) / 1e6,
        }


    def ingest(self) -> IngestStatus:
        pl = self.core.pipeline
        st = pl.stats
        return IngestStatus(readings_per_s=pl.readings_per_s(), lag_ms=pl.current_lag_us() / 1000.0,
                            accepted=st.accepted, rejected=st.rejected, duplicates=st.duplicates,
                            queued_readings=st.queued_readings, writer_alive=pl.alive,
                            write_errors=st.write_errors, processor_errors=st.processor_errors)

    def pipeline_stats(self):
        """The pipeline's counters (for the metrics endpoint, which exposes each of them)."""
        return self.core.pipeline.stats

    def store_kind(self) -> str:
        return self._store_kind

    def points(self) -> int:
        return len(self.core.points)

    def event_bus(self) -> dict:
        """Per subscriber: delivered, dropped, failed, queued (metrics)."""
        return self.core.bus.stats()

    def compact(self) -> None:
        """Merges the rollup partials an import wrote, so long charts stay fast."""
        self.core.pipeline.compact()
