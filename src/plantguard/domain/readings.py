"""Columnar reading batches. Per-reading cost decides throughput, so readings travel as numpy arrays,
never as one Python object per reading."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

NO_TS = np.iinfo(np.int64).min  # "no source timestamp" inside an int64 column


class Quality(IntEnum):
    good = 0
    uncertain = 1
    bad = 2


QUALITY_BY_NAME = {"good": 0, "uncertain": 1, "bad": 2, "GOOD": 0, "UNCERTAIN": 1, "BAD": 2, 0: 0, 1: 1, 2: 2}


@dataclass
class RawBatch:
    """Readings as a source delivered them: point tags not yet resolved.

    ts and src_ts are epoch microseconds (UTC); src_ts is NO_TS where the source sent none. With a `prefix`
    (a device path, e.g. from an MQTT topic) the point names are relative to it: resolving them through a
    per-device table avoids building a full tag string per reading.
    """

    points: list[str]
    ts: np.ndarray  # int64
    value: np.ndarray  # float64
    quality: np.ndarray  # uint8
    src_ts: np.ndarray  # int64
    source: str = "api"
    prefix: str | None = None

    def tag(self, i: int) -> str:
        return f"{self.prefix}/{self.points[i]}" if self.prefix else self.points[i]

    def __post_init__(self) -> None:
        n = len(self.points)
        if not (len(self.ts) == len(self.value) == len(self.quality) == len(self.src_ts) == n):
            raise ValueError("all columns of a batch must have the same length")

    def __len__(self) -> int:
        return len(self.points)

    def slice(self, a: int, b: int) -> "RawBatch":
        return RawBatch(self.points[a:b], self.ts[a:b], self.value[a:b], self.quality[a:b], self.src_ts[a:b], self.source, self.prefix)

    @classmethod
    def build(cls, points, ts, value, quality=None, src_ts=None, source: str = "api", prefix: str | None = None) -> "RawBatch":
        n = len(points)
        return cls(
            points=list(points),
            ts=np.asarray(ts, dtype=np.int64),
            value=np.asarray(value, dtype=np.float64),
            quality=np.zeros(n, np.uint8) if quality is None else np.asarray(quality, dtype=np.uint8),
            src_ts=np.full(n, NO_TS, np.int64) if src_ts is None else np.asarray(src_ts, dtype=np.int64),
            source=source,
            prefix=prefix,
        )


@dataclass
class PointBatch:
    """Readings resolved to point ids (int32), e.g. after validation. Sorted by (pid, ts) once accepted."""

    pid: np.ndarray  # int32
    ts: np.ndarray  # int64
    value: np.ndarray  # float64
    quality: np.ndarray  # uint8
    src_ts: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.pid)

    def take(self, idx) -> "PointBatch":
        return PointBatch(self.pid[idx], self.ts[idx], self.value[idx], self.quality[idx], self.src_ts[idx])

    @classmethod
    def empty(cls) -> "PointBatch":
        return cls(np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.uint8), np.empty(0, np.int64))

    @classmethod
    def concat(cls, parts: list["PointBatch"]) -> "PointBatch":
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("pid", "ts", "value", "quality", "src_ts")))


# Why a reading or a message was refused: a closed set of codes. The code is what metrics label and pages group
# by; the free text with its detail (which reading, which value) stays in the dead letter's reason.
REJECT_CODES: dict[str, str] = {
    "unknown_point": "unknown point (not in the plant model)",
    "retired_point": "point is retired (no longer in the plant model)",
    "not_finite": "value is NaN or infinite",
    "before_1970": "timestamp before 1970-01-01",
    "future": "timestamp too far in the future",
    "too_old": "timestamp older than the raw retention period",
    "bad_quality": "quality is not good, uncertain or bad",
    "out_of_range": "value outside the engineering range",
    "not_integer": "value is not an integer (int point)",
    "not_boolean": "value is not 0/1 or a boolean (bool point)",
    "not_state": "value is not one of the point's state codes",
    "bad_timestamp": "timestamp missing or unreadable",
    "bad_value": "value is not a number or boolean",
    "bad_point_name": "point name missing, empty or too long",
    "not_object": "reading is not a JSON object",
    "malformed": "payload is not valid JSON or not of the expected shape",
    "too_large": "payload above the size limit",
    "bad_topic": "topic outside the topic scheme",
    "protocol": "protocol-level problem (Sparkplug sequence, unknown metric, refused node...)",
    "handler_error": "the source failed while handling this message (a bug, reported with its message)",
    "gap": "data that could not be recovered (a sequence gap or an outage)",
    "other": "any other reason",
}


def reject_code(code: str | None) -> str:
    """The code itself if it belongs to the closed set, else 'other' (so labels can never grow)."""
    return code if code in REJECT_CODES else "other"


@dataclass
class DeadLetter:
    """A reading (or a whole payload) that was refused, with the reason."""

    source: str
    reason: str
    point: str | None = None
    ts: int | None = None
    value: str | None = None
    payload: str | None = None  # a fragment of what was sent, for payload-level rejects
    code: str = "other"  # one of REJECT_CODES

    def __post_init__(self) -> None:
        self.code = reject_code(self.code)


@dataclass
class RejectColumns:
    """Readings refused by the pipeline's checks, as columns (one row per reading): a large request of bad
    readings costs numpy work, not a Python object per reading."""

    source: np.ndarray  # object: str
    code: np.ndarray  # object: str, one of REJECT_CODES
    reason: np.ndarray  # object: str
    point: np.ndarray  # object: str
    ts: np.ndarray  # int64
    value: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    errors: list[DeadLetter] = field(default_factory=list)  # the first few reasons, for the caller

    def merge(self, other: "IngestResult") -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.duplicates += other.duplicates
        self.errors.extend(other.errors[: max(0, 20 - len(self.errors))])
