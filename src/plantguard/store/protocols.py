"""The store contract split by concern: what each part of the platform needs from storage, and nothing else. A
backend implements all of them (`Store`); a capability or a future worker can depend on the one it uses.
`tests/test_store_contract.py` checks every protocol against both backends: each method is there with its
signature, then the behaviour suites run per concern.

    ReadingsStore     write, existing, raw, downsample, watermarks, latest       (the pipeline, telemetry queries)
    RollupStore       compact_rollups, apply_retention, counts                   (the writer's maintenance)
    PointsStore       load_points, allocate_points, upsert_points                                (the point registry)
    ModelStore        save_model, load_model, model_versions                     (model source, model service)
    AlarmStore        save_alarms, load_alarms, alarm_events                     (the alarm engine, alarm service)
    DeadLetterStore   dead_letters, dead_letter_counts                           (telemetry service, data quality)
    AnalyticsStore    write_analytics, analytics_series, analytics_events, analytics_states
    CheckpointStore   save_checkpoint, load_checkpoint                           (learned state)
    SchemaStore       migrate, applied_migrations, close
    SqlStore          execute, fetch, insert_columns                             (tables a capability owns)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from plantguard.domain.alarms import AlarmEvent, AlarmRecord


@runtime_checkable
class ReadingsStore(Protocol):
    def write(self, ws) -> None: ...
    def existing(self, pid: np.ndarray, ts: np.ndarray) -> np.ndarray: ...
    def raw(self, pid: int, start: int, end: int, limit: int = 100_000): ...
    def downsample(self, pid: int, start: int, end: int, width: int, agg: str, tier: str): ...
    def watermarks(self) -> tuple: ...
    def latest(self, pids: np.ndarray) -> tuple: ...


@runtime_checkable
class RollupStore(Protocol):
    def compact_rollups(self, since_bucket: int) -> int: ...
    def apply_retention(self, now: int, retention: dict[str, int]) -> dict[str, int]: ...
    def counts(self) -> dict[str, int]: ...


@runtime_checkable
class PointsStore(Protocol):
    def load_points(self) -> list: ...
    def allocate_points(self, tags: list[str]) -> dict[str, int]: ...
    def upsert_points(self, rows: list) -> None: ...


@runtime_checkable
class ModelStore(Protocol):
    def save_model(self, doc: str, saved_at: int, *, origin: str = "api", file_sha: str | None = None,
                   actor: str | None = None) -> int: ...
    def load_model(self, version: int | None = None) -> tuple[int, str] | None: ...
    def model_versions(self, limit: int = 100) -> list[dict]: ...


@runtime_checkable
class AlarmStore(Protocol):
    def save_alarms(self, records: list[AlarmRecord], events: list[AlarmEvent]) -> None: ...
    def load_alarms(self) -> list[AlarmRecord]: ...
    def alarm_events(self, alarm_id: str | None = None, limit: int = 1000) -> list[AlarmEvent]: ...


@runtime_checkable
class DeadLetterStore(Protocol):
    def dead_letters(self, limit: int = 100, since: int | None = None, source: str | None = None,
                     code: str | None = None) -> list[dict]: ...
    def dead_letter_counts(self, since: int | None = None) -> list[dict]: ...


@runtime_checkable
class AnalyticsStore(Protocol):
    def write_analytics(self, w, at: int) -> None: ...
    def analytics_series(self, key: str, start: int, end: int, *, width: int | None = None, agg: str = "max",
                         limit: int = 100_000): ...
    def analytics_events(self, *, kind: str | None = None, key: str | None = None, since: int | None = None,
                         until: int | None = None, limit: int = 1000) -> list: ...
    def analytics_states(self, prefix: str | None = None) -> dict[str, dict]: ...


@runtime_checkable
class CheckpointStore(Protocol):
    def save_checkpoint(self, name: str, blob: bytes, at: int) -> None: ...
    def load_checkpoint(self, name: str) -> bytes | None: ...


@runtime_checkable
class SchemaStore(Protocol):
    def migrate(self) -> list[str]: ...
    def applied_migrations(self) -> list[tuple[str, int]]: ...
    def close(self) -> None: ...


@runtime_checkable
class SqlStore(Protocol):
    def execute(self, statements: list[tuple[str, tuple]]) -> None: ...
    def fetch(self, sql: str, params: tuple = ()) -> list[tuple]: ...
    def insert_columns(self, table: str, columns: dict, *, skip_existing: bool = True) -> None: ...


@runtime_checkable
class BackupStore(Protocol):
    def backup(self, dest: str) -> dict: ...


PROTOCOLS: tuple[type, ...] = (ReadingsStore, RollupStore, PointsStore, ModelStore, AlarmStore, DeadLetterStore,
                               AnalyticsStore, CheckpointStore, SchemaStore, SqlStore, BackupStore)


def methods(protocol: type) -> list[str]:
    """The method names a protocol declares (what a store view bound to it exposes)."""
    return sorted(n for n, v in vars(protocol).items() if callable(v) and not n.startswith("_"))
