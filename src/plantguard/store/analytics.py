"""Storage of analytics results (derived series, events, latest state per key, detector checkpoints), written
once for both SQL backends. Volumes are small by design: the analytics processor thins derived series to one
row per key and interval before they get here, so plain parameterised statements suffice."""

from __future__ import annotations

import json

import numpy as np

from plantguard.domain.analytics import AnalyticsEvent, AnalyticsWrite, DerivedSeries
from plantguard.errors import InvalidInput
from plantguard.store.base import where_clause


def migration(blob: str, f8: str = "DOUBLE", indexes: bool = True) -> list[str]:
    """DDL of the analytics tables; `blob` is the backend's binary type. DuckDB gets no secondary indexes: its
    zone maps serve these range scans, and its ART indexes make the retention deletes expensive."""
    ddl = [
        f"CREATE TABLE analytics_series (key TEXT NOT NULL, ts BIGINT NOT NULL, value {f8} NOT NULL, lower {f8}, upper {f8})",
        "CREATE SEQUENCE analytics_event_seq",
        "CREATE TABLE analytics_events (id BIGINT PRIMARY KEY DEFAULT nextval('analytics_event_seq'), ts BIGINT NOT NULL, "
        "kind TEXT NOT NULL, key TEXT NOT NULL, rule TEXT NOT NULL, message TEXT, detail TEXT)",
        "CREATE TABLE analytics_state (key TEXT PRIMARY KEY, updated_at BIGINT NOT NULL, payload TEXT NOT NULL)",
        f"CREATE TABLE analytics_checkpoints (name TEXT PRIMARY KEY, saved_at BIGINT NOT NULL, blob {blob} NOT NULL)",
    ]
    if indexes:
        ddl += ["CREATE INDEX analytics_series_key_ts ON analytics_series (key, ts)",
                "CREATE INDEX analytics_events_key_ts ON analytics_events (key, ts)"]
    return ddl


SERIES_COLUMNS = {"key": "string", "ts": "int64", "value": "float64", "lower": "float64", "upper": "float64"}
EVENT_COLUMNS = {"ts": "int64", "kind": "string", "key": "string", "rule": "string", "message": "string", "detail": "string"}
ANALYTICS_TABLES = ["analytics_series", "analytics_events", "analytics_state", "analytics_checkpoints"]
_AGGS = {"max": "max(value)", "min": "min(value)", "avg": "avg(value)", "last": "arg_max(value, ts)"}


class SqlAnalytics:
    """Mixed into the SQL backends: needs `_ph`, `_run(fn)` and `_tx(fn)`, plus `_last_agg(col)` for the
    backend's 'value at the newest ts' aggregate."""

    _ph: str

    def write_analytics(self, w: AnalyticsWrite, at: int) -> None:
        if not w:
            return
        s = w.series
        series_rows = list(zip(s.key, s.ts, s.value, s.lower, s.upper))
        event_rows = [(e.ts, e.kind, e.key, e.rule, e.message, json.dumps(e.detail, default=float)) for e in w.events]
        state_rows = [(k, at, json.dumps(v, default=float)) for k, v in w.states.items()]

        def go(cur):
            if series_rows:
                self._insert_rows(cur, "analytics_series", SERIES_COLUMNS, series_rows)
            if event_rows:
                self._insert_rows(cur, "analytics_events", EVENT_COLUMNS, event_rows)
            if state_rows:
                self._upsert_states(cur, state_rows)

        self._tx(go)

    def _insert_rows(self, cur, table: str, cols: dict[str, str], rows: list[tuple]) -> None:
        """Plain parameterised inserts; the embedded store overrides this with one Arrow insert."""
        ph = self._ph
        cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(ph for _ in cols)})", rows)

    def _upsert_states(self, cur, rows: list[tuple]) -> None:
        ph = self._ph
        cur.executemany(f"INSERT INTO analytics_state (key, updated_at, payload) VALUES ({ph}, {ph}, {ph}) "
                        "ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at, payload = excluded.payload", rows)

    def analytics_series(self, key: str, start: int, end: int, *, width: int | None = None, agg: str = "max",
                         limit: int = 100_000) -> DerivedSeries:
        """Rows of one derived series with start <= ts < end; with `width` (us), one row per bucket aggregated
        with `agg` (lower/upper follow the same aggregate, or the row of the newest ts for 'last')."""
        ph = self._ph
        if width is None:
            sql = (f"SELECT ts, value, lower, upper FROM analytics_series WHERE key = {ph} AND ts >= {ph} AND ts < {ph} "
                   f"ORDER BY ts LIMIT {ph}")
            params = [key, start, end, limit]
        else:
            if agg not in _AGGS:
                raise InvalidInput(f"aggregate must be one of {', '.join(_AGGS)}")
            if agg == "last":
                cols = ", ".join(self._last_agg(c) for c in ("value", "lower", "upper"))
            else:
                fn = agg
                cols = f"{fn}(value), {fn}(lower), {fn}(upper)"
            m = "%%" if ph == "%s" else "%"  # psycopg reads a bare % as a placeholder
            sql = (f"SELECT (ts - ((ts {m} {ph}) + {ph}) {m} {ph}) AS b, {cols} FROM analytics_series "
                   f"WHERE key = {ph} AND ts >= {ph} AND ts < {ph} GROUP BY b ORDER BY b LIMIT {ph}")
            params = [width, width, width, key, start, end, limit]
        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        f = lambda i: np.array([np.nan if r[i] is None else float(r[i]) for r in rows], np.float64)  # noqa: E731
        return DerivedSeries(np.array([int(r[0]) for r in rows], np.int64), f(1), f(2), f(3))

    def analytics_events(self, *, kind: str | None = None, key: str | None = None, since: int | None = None,
                         until: int | None = None, limit: int = 1000) -> list[AnalyticsEvent]:
        """Newest first. `key` matches exactly or as a prefix ending at a '/' boundary (an asset's key finds its
        points' events too)."""
        ph = self._ph
        under = None if key is None else (key, key.replace("%", r"\%").replace("_", r"\_").rstrip("/") + "/%")
        where, params = where_clause(ph, [("kind = ?", kind), ("(key = ? OR key LIKE ? ESCAPE '\\')", under),
                                          ("ts >= ?", since), ("ts < ?", until)])
        sql = f"SELECT id, ts, kind, key, rule, message, detail FROM analytics_events {where} ORDER BY ts DESC, id DESC LIMIT {ph}"
        rows = self._run(lambda c: c.execute(sql, params + [limit]).fetchall())
        return [AnalyticsEvent(ts=r[1], kind=r[2], key=r[3], rule=r[4], message=r[5] or "",
                               detail=json.loads(r[6]) if r[6] else {}, id=r[0]) for r in rows]

    def analytics_states(self, prefix: str | None = None) -> dict[str, dict]:
        ph = self._ph
        if prefix:
            sql, params = f"SELECT key, updated_at, payload FROM analytics_state WHERE key LIKE {ph} ESCAPE '\\' ORDER BY key", [prefix.replace("%", r"\%").replace("_", r"\_") + "%"]
        else:
            sql, params = "SELECT key, updated_at, payload FROM analytics_state ORDER BY key", []
        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        return {r[0]: {**json.loads(r[2]), "updated_at": r[1]} for r in rows}

    def save_checkpoint(self, name: str, blob: bytes, at: int) -> None:
        ph = self._ph
        self._tx(lambda c: c.execute(
            f"INSERT INTO analytics_checkpoints (name, saved_at, blob) VALUES ({ph}, {ph}, {ph}) "
            "ON CONFLICT (name) DO UPDATE SET saved_at = excluded.saved_at, blob = excluded.blob", [name, at, blob]))

    def load_checkpoint(self, name: str) -> bytes | None:
        ph = self._ph
        # fetchall: DuckDB keeps a result that was not read to its end open on the connection
        rows = self._run(lambda c: c.execute(f"SELECT blob FROM analytics_checkpoints WHERE name = {ph}", [name]).fetchall())
        return bytes(rows[0][0]) if rows else None

    def _analytics_retention(self, cur, cutoff: int) -> int:
        ph = self._ph
        n = cur.execute(f"SELECT count(*) FROM analytics_series WHERE ts < {ph}", [cutoff]).fetchall()[0][0]
        if n:
            cur.execute(f"DELETE FROM analytics_series WHERE ts < {ph}", [cutoff])
        cur.execute(f"DELETE FROM analytics_events WHERE ts < {ph}", [cutoff])
        return int(n)
