"""Telemetry in and out: submitting readings, which points exist, and what was refused (dead letters)."""

from __future__ import annotations

from dataclasses import dataclass

from plantguard.domain.readings import DeadLetter, RawBatch
from plantguard.store.base import Series  # noqa: F401 - the query result type, re-exported for the shells


@dataclass(frozen=True)
class DeadLetterRow:
    id: int
    received_at: int
    source: str | None
    point: str | None
    ts: int | None
    value: str | None
    reason: str
    code: str
    payload: str | None


class TelemetryService:
    def __init__(self, platform) -> None:
        self._p = platform

    def submit(self, batch: RawBatch, dead: list[DeadLetter], *, timeout: float):
        """Queues readings for the durable write; returns the future of its IngestResult (Overloaded when the
        queue stays full for `timeout` seconds)."""
        return self._p.pipeline.submit(batch, dead, timeout=timeout)

    def unknown_points(self, tags: list[str]) -> list[str]:
        """The tags no point is registered under."""
        if not tags:
            return []
        pids = self._p.registry.resolve(tags).tolist()
        return [t for t, pid in zip(tags, pids) if pid < 0]

    def dead_letters(self, *, limit: int = 100, since: int | None = None, source: str | None = None,
                     code: str | None = None) -> list[DeadLetterRow]:
        rows = self._p.store.dead_letters(limit=limit, since=since, source=source, code=code)
        return [DeadLetterRow(r["id"], r["received_at"], r.get("source"), r.get("point"), r.get("ts"), r.get("value"),
                              r["reason"], r.get("code") or "other", r.get("payload")) for r in rows]

    def dead_letter_counts(self, since: int | None = None) -> list[dict]:
        """Dead letters per (source, code), counted in the store over every row: [{source, code, count}]."""
        return self._p.store.dead_letter_counts(since)
