"""JSON payloads -> RawBatch. Shared by the HTTP endpoint and the MQTT subscriber.

Accepted shapes (documented in docs/api.md):
  {"readings": [ {...}, ... ]}   or a bare list  [ {...}, ... ]
Each reading: "point"|"p" (tag), "ts"|"t" (epoch milliseconds or ISO 8601 with offset), "value"|"v" (number or
boolean), optional "quality"|"q" ("good"/"uncertain"/"bad" or 0/1/2), optional "source_ts"|"st".
A `prefix` (e.g. the device path from an MQTT topic) is prepended to relative point names.
"""

from __future__ import annotations

import math
from operator import itemgetter

import numpy as np
import orjson

from plantguard.domain.model import TAG_SEP
from plantguard.domain.readings import NO_TS, QUALITY_BY_NAME, DeadLetter, RawBatch
from plantguard.errors import InvalidInput
from plantguard.timeutil import to_us

MAX_POINT_NAME = 512
TS_LIMIT_US = 2**62  # beyond this an int64 microsecond column would overflow; far past any real timestamp


def parse_payload(raw: bytes | str, source: str, prefix: str | None = None, max_bytes: int | None = None) -> tuple[RawBatch, list[DeadLetter]]:
    """Raises InvalidInput for a payload that cannot be read at all; per-reading problems become dead letters."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise InvalidInput(f"payload of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"malformed JSON: {e}") from None
    return parse_document(doc, source, prefix)


def parse_document(doc, source: str, prefix: str | None = None) -> tuple[RawBatch, list[DeadLetter]]:
    rows = doc.get("readings") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise InvalidInput('expected {"readings": [...]} or a JSON list of readings')
    fast = _fast(rows, source, prefix)
    if fast is not None:
        return fast, []
    return _slow(rows, source, prefix)


def _fast(rows: list, source: str, prefix: str | None) -> RawBatch | None:
    """The common case (short or long keys, numeric ms timestamps and values, no quality) with C-level loops
    only. Returns None whenever anything is unusual; the slow path then explains it row by row."""
    n = len(rows)
    if not n:
        return RawBatch.build([], [], [], source=source)
    first = rows[0]
    if type(first) is not dict:
        return None
    kp, kt, kv = ("p", "t", "v") if "p" in first else ("point", "ts", "value")
    try:
        # Every row must hold kp, kt and kv (else KeyError below), so a key total of 3 per row means no row
        # carries anything else (quality, source_ts) that the slow path would have to read.
        if sum(map(len, rows)) != 3 * n:
            return None
        pts = list(map(itemgetter(kp), rows))
        ts = np.fromiter(map(itemgetter(kt), rows), np.float64, n)
        vals = np.fromiter(map(itemgetter(kv), rows), np.float64, n)
        # str.__len__ rejects non-strings; all() rejects empty names
        if not all(map(str.__len__, pts)) or max(map(len, pts)) > MAX_POINT_NAME:
            return None
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.abs(ts) < TS_LIMIT_US / 1000).all() or not np.isfinite(vals).all():
        return None
    ts_us = np.rint(ts * 1000.0).astype(np.int64)
    return RawBatch.build(pts, ts_us, vals, source=source, prefix=prefix or None)


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
            dead.append(DeadLetter(source, f"reading #{i} is not a JSON object", payload=_frag(r)))
            continue
        p = _get(r, "point", "p")
        if not isinstance(p, str) or not p or len(p) > MAX_POINT_NAME:
            dead.append(DeadLetter(source, f"reading #{i}: 'point' must be a non-empty string of at most {MAX_POINT_NAME} characters", payload=_frag(r)))
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
            dead.append(DeadLetter(source, f"invalid timestamp: {e}", point=name, value=_frag(_get(r, 'value', 'v'))))
            continue
        v = _get(r, "value", "v")
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, (int, float)):
            dead.append(DeadLetter(source, f"value must be a number or boolean, got {type(v).__name__}", point=name, ts=t_us, value=_frag(v)))
            continue
        v = float(v)
        if math.isnan(v) or math.isinf(v):  # orjson never yields these, Python callers may
            dead.append(DeadLetter(source, "value is NaN or infinite", point=name, ts=t_us, value=str(v)))
            continue
        q = _get(r, "quality", "q")
        if q is None:
            qc = 0
        else:
            qc = QUALITY_BY_NAME.get(q, -1) if isinstance(q, (str, int)) and not isinstance(q, bool) else -1
            if qc < 0:
                dead.append(DeadLetter(source, "quality must be good, uncertain or bad (or 0, 1, 2)", point=name, ts=t_us, value=_frag(v)))
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
                dead.append(DeadLetter(source, f"invalid source_ts: {e}", point=name, ts=t_us, value=_frag(v)))
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
