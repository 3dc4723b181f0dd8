"""JSON payloads -> RawBatch. Shared by the HTTP endpoint and the MQTT subscriber.

Accepted shapes (documented in docs/api.md):
  {"readings": [ {...}, ... ]}   or a bare list  [ {...}, ... ]
Each reading: "point"|"p" (tag), "ts"|"t" (epoch milliseconds or ISO 8601 with offset), "value"|"v" (number or
boolean), optional "quality"|"q" ("good"/"uncertain"/"bad" or 0/1/2), optional "source_ts"|"st".
A `prefix` (e.g. the device path from an MQTT topic) is prepended to relative point names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
import orjson

from plantguard.domain.fields import TAG_SEP
from plantguard.domain.readings import NO_TS, QUALITY_BY_NAME, DeadLetter, RawBatch
from plantguard.errors import InvalidInput
from plantguard.timeutil import to_us

MAX_POINT_NAME = 512
TS_LIMIT_US = 2**62  # beyond this an int64 microsecond column would overflow; far past any real timestamp


def parse_payload(raw: bytes | str, source: str, prefix: str | None = None, max_bytes: int | None = None) -> tuple[RawBatch, list[DeadLetter]]:
    """Raises InvalidInput for a payload that cannot be read at all; per-reading problems become dead letters."""
    return parse_document(_load(raw, max_bytes), source, prefix)


def _load(raw: bytes | str, max_bytes: int | None):
    if max_bytes is not None and len(raw) > max_bytes:
        raise InvalidInput(f"payload of {len(raw)} bytes exceeds the limit of {max_bytes} bytes", code="too_large")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"malformed JSON: {e}") from None


def _rows(doc) -> list:
    rows = doc.get("readings") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise InvalidInput('expected {"readings": [...]} or a JSON list of readings')
    return rows


def parse_document(doc, source: str, prefix: str | None = None) -> tuple[RawBatch, list[DeadLetter]]:
    rows = _rows(doc)
    cols = _columns(rows, prefix)
    if cols is not None:
        batch = columns_to_batch([cols], source)
        if batch is not None:
            return batch, []
    return _slow(rows, source, prefix)


@dataclass
class Columns:
    """One message's readings as plain lists, for sources that convert many messages to arrays at once: numpy's
    fixed cost per call dominates on 100-reading messages. Checked in bulk by columns_to_batch."""

    rows: list  # the decoded rows, for the per-row path if the bulk check finds a problem
    points: list
    ts: list
    values: list
    prefix: str | None


def parse_columns(raw: bytes | str, source: str, prefix: str | None = None, max_bytes: int | None = None
                  ) -> Columns | tuple[RawBatch, list[DeadLetter]]:
    """Like parse_payload, but the common shape comes back as Columns (no numpy work yet); anything unusual is
    parsed row by row at once. Raises InvalidInput for a payload that cannot be read at all."""
    rows = _rows(_load(raw, max_bytes))
    cols = _columns(rows, prefix)
    return cols if cols is not None else _slow(rows, source, prefix)


def _columns(rows: list, prefix: str | None) -> Columns | None:
    """Three plain lists for the common shape (short or long keys, nothing else per row), or None."""
    n = len(rows)
    if not n:
        return Columns(rows, [], [], [], prefix or None)
    first = rows[0]
    if type(first) is not dict:
        return None
    kp, kt, kv = ("p", "t", "v") if "p" in first else ("point", "ts", "value")
    try:
        # Every row must hold kp, kt and kv (else KeyError below), so a key total of 3 per row means no row
        # carries anything else (quality, source_ts) that the per-row path would have to read.
        if sum(map(len, rows)) != 3 * n:
            return None
        return Columns(rows, list(map(itemgetter(kp), rows)), list(map(itemgetter(kt), rows)), list(map(itemgetter(kv), rows)), prefix or None)
    except (KeyError, TypeError):
        return None


_NUMBER = {int, float, bool}


def columns_to_batch(parts: list[Columns], source: str) -> RawBatch | None:
    """Converts messages that share one prefix to one RawBatch, checking everything in bulk: point names are
    non-empty strings, timestamps are numbers (epoch ms) within range, values are finite numbers or booleans.
    Returns None when any check fails; the caller then parses each part on its own."""
    if len(parts) == 1:
        p0 = parts[0]
        pts, ts_l, v_l = p0.points, p0.ts, p0.values
    else:
        pts, ts_l, v_l = [], [], []
        for p in parts:
            pts += p.points
            ts_l += p.ts
            v_l += p.values
    try:
        # type checks first: numpy would turn the text "1.5" into a number
        if not set(map(type, ts_l)) <= _NUMBER or not set(map(type, v_l)) <= _NUMBER or bool in set(map(type, ts_l)):
            return None
        if pts and (not all(map(str.__len__, pts)) or max(map(len, pts)) > MAX_POINT_NAME):
            return None
        ts = np.array(ts_l, dtype=np.float64)
        vals = np.array(v_l, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if not (np.abs(ts) < TS_LIMIT_US / 1000).all() or not np.isfinite(vals).all():
        return None
    return RawBatch.build(pts, np.rint(ts * 1000.0).astype(np.int64), vals, source=source, prefix=parts[0].prefix if parts else None)


def columns_or_rows(parts: list[Columns], source: str) -> tuple[RawBatch, list[DeadLetter]]:
    """Bulk conversion, and where it fails, each message on its own (so one bad message cannot spoil the rest)."""
    batch = columns_to_batch(parts, source)
    if batch is not None:
        return batch, []
    batches, dead = [], []
    for p in parts:
        b, d = parse_document(p.rows, source, p.prefix)
        batches.append(b)
        dead += d
    return concat_batches(batches, source), dead


def concat_batches(batches: list[RawBatch], source: str) -> RawBatch:
    """Merges batches; names become full tags unless every batch has the same prefix."""
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return RawBatch.build([], [], [], source=source)
    prefix = batches[0].prefix
    same = all(b.prefix == prefix for b in batches)
    points: list[str] = []
    for b in batches:
        points += b.points if same else [b.tag(i) for i in range(len(b))]
    return RawBatch(points, *(np.concatenate([getattr(b, f) for b in batches]) for f in ("ts", "value", "quality", "src_ts")),
                    source=source, prefix=prefix if same else None)


def _get(r: dict, long: str, short: str):
    if long in r:
        return r[long]
    return r.get(short)


def _slow(rows: list, source: str, prefix: str | None) -> tuple[RawBatch, list[DeadLetter]]:
    pts: list[str] = []
    ts: list[int] = []
    vals: list[float] = []
    qs: list[int] = []
    sts: list[int] = []
    dead: list[DeadLetter] = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            dead.append(DeadLetter(source, f"reading #{i} is not a JSON object", payload=_frag(r), code="not_object"))
            continue
        p = _get(r, "point", "p")
        if not isinstance(p, str) or not p or len(p) > MAX_POINT_NAME:
            dead.append(DeadLetter(source, f"reading #{i}: 'point' must be a non-empty string of at most {MAX_POINT_NAME} characters", payload=_frag(r), code="bad_point_name"))
            continue
        name = f"{prefix}{TAG_SEP}{p}" if prefix else p
        t = _get(r, "ts", "t")
        try:
            if t is None:
                raise ValueError("missing 'ts'")
            t_us = to_us(t)
            if not -TS_LIMIT_US < t_us < TS_LIMIT_US:
                raise ValueError("out of range")
        except (ValueError, TypeError, OverflowError) as e:
            dead.append(DeadLetter(source, f"invalid timestamp: {e}", point=name, value=_frag(_get(r, 'value', 'v')), code="bad_timestamp"))
            continue
        v = _get(r, "value", "v")
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, (int, float)):
            dead.append(DeadLetter(source, f"value must be a number or boolean, got {type(v).__name__}", point=name, ts=t_us, value=_frag(v), code="bad_value"))
            continue
        v = float(v)
        if math.isnan(v) or math.isinf(v):  # orjson never yields these, Python callers may
            dead.append(DeadLetter(source, "value is NaN or infinite", point=name, ts=t_us, value=str(v), code="not_finite"))
            continue
        q = _get(r, "quality", "q")
        if q is None:
            qc = 0
        else:
            qc = QUALITY_BY_NAME.get(q, -1) if isinstance(q, (str, int)) and not isinstance(q, bool) else -1
            if qc < 0:
                dead.append(DeadLetter(source, "quality must be good, uncertain or bad (or 0, 1, 2)", point=name, ts=t_us, value=_frag(v), code="bad_quality"))
                continue
        st = _get(r, "source_ts", "st")
        if st is None:
            st_us = NO_TS
        else:
            try:
                st_us = to_us(st)
                if not -TS_LIMIT_US < st_us < TS_LIMIT_US:
                    raise ValueError("out of range")
            except (ValueError, TypeError, OverflowError) as e:
                dead.append(DeadLetter(source, f"invalid source_ts: {e}", point=name, ts=t_us, value=_frag(v), code="bad_timestamp"))
                continue
        pts.append(name)
        ts.append(t_us)
        vals.append(v)
        qs.append(qc)
        sts.append(st_us)
    return RawBatch.build(pts, ts, vals, qs, sts, source=source), dead


def _frag(x, limit: int = 200) -> str:
    try:
        s = orjson.dumps(x).decode()
    except TypeError:
        s = repr(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."
