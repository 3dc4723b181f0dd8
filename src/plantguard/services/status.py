"""How the platform is doing: ingest rates and lag, the writer, the store."""

from __future__ import annotations

from dataclasses import dataclass


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
    def __init__(self, platform) -> None:
        self._p = platform

    def ingest(self) -> IngestStatus:
        pl = self._p.pipeline
        st = pl.stats
        return IngestStatus(readings_per_s=pl.readings_per_s(), lag_ms=pl.current_lag_us() / 1000.0,
                            accepted=st.accepted, rejected=st.rejected, duplicates=st.duplicates,
                            queued_readings=st.queued_readings, writer_alive=pl.alive,
                            write_errors=st.write_errors, processor_errors=st.processor_errors)

    def pipeline_stats(self):
        """The pipeline's counters (for the metrics endpoint, which exposes each of them)."""
        return self._p.pipeline.stats

    def store_kind(self) -> str:
        return self._p.store.kind

    def points(self) -> int:
        return len(self._p.registry)

    def compact(self) -> None:
        """Merges the rollup partials an import wrote, so long charts stay fast."""
        self._p.pipeline.compact()
