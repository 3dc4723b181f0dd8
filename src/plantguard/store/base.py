"""The storage interface. Both backends pass the same contract suite (tests/test_store_contract.py).

Design:
- raw readings are append-only, without a unique index: the pipeline's per-point watermark plus a store
  lookup for late readings (``existing``) keep (point, ts) unique, in memory bounded by the number of points;
- rollups are appended as partials per written batch and combined at query time (see store/rollup.py);
- ``latest`` holds the newest reading per point and is written in the same transaction as the raw rows, so
  after a crash the watermarks it yields are exact and redelivered readings are recognised as duplicates.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from plantguard.domain.alarms import ALARM_COLUMNS, HISTORY_EVENTS, AlarmEvent, AlarmHistory, AlarmRecord
from plantguard.domain.readings import DeadLetter, PointBatch, RejectColumns
from plantguard.store.rollup import Rollup


@dataclass
class WriteSet:
    """Everything one pipeline step writes, in one transaction."""

    batch: PointBatch  # accepted readings, sorted by (pid, ts)
    latest: PointBatch  # newest reading for each pid whose watermark advanced
    rollups: dict[str, Rollup] = field(default_factory=dict)  # tier -> partials
    dead_letters: list[DeadLetter] = field(default_factory=list)  # payload-level refusals, with their fragments
    rejects: RejectColumns | None = None  # readings refused by the pipeline's checks, as columns
    received_at: int = 0


@dataclass
class PointRow:
    pid: int
    tag: str
    meta: dict  # unit, data_type, range, period_us, criticality, auto...


@dataclass
class Series:
    ts: np.ndarray
    value: np.ndarray
    quality: np.ndarray | None = None
    count: np.ndarray | None = None


class Store(ABC):
    """Every method the platform calls, declared once; backends translate their driver's errors into
    plantguard.errors.StoreError. The same contract split by concern: store/protocols.py."""

    kind: str = "abstract"

    # -- the tables a capability owns (declared by its migrations) ----------------------------------------------
    def execute(self, statements: list[tuple[str, tuple]]) -> None:
        """Runs (sql, params) statements in one transaction. SQL uses `?` placeholders and the types both
        dialects share (TEXT, BIGINT, DOUBLE PRECISION, BOOLEAN); for tables a capability's migrations created."""
        sqls = [(self._dialect_sql(q), tuple(p)) for q, p in statements]

        def go(cur):
            for q, p in sqls:
                cur.execute(q, p)

        self._tx(go)

    def fetch(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one SELECT over a capability's tables (`?` placeholders)."""
        q, p = self._dialect_sql(sql), tuple(params)

        def go(cur):
            cur.execute(q, p)
            return cur.fetchall()

        return self._run(go)

    def insert_columns(self, table: str, columns: dict, *, skip_existing: bool = True) -> None:
        """Appends rows given as columns (numpy arrays of equal length) to a capability's table in one statement;
        with `skip_existing`, rows whose key is already there are left out. For bulk rows (executemany of one row
        at a time costs about 2 ms a row on the embedded store)."""
        if not table.isidentifier() or not all(k.isidentifier() for k in columns):
            raise ValueError("table and column names are identifiers")
        if not columns or not len(next(iter(columns.values()))):
            return
        self._insert_columns(table, columns, skip_existing)

    def _insert_columns(self, table: str, columns: dict[str, np.ndarray], skip_existing: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    def _dialect_sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgres" else sql

    def _tx(self, fn):  # pragma: no cover - every backend defines it
        raise NotImplementedError

    def _run(self, fn):  # pragma: no cover - every backend defines it
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Applies pending named migrations in order, each in its own transaction (checked again inside it, so two
        processes migrating one database apply each once); returns the names applied. Both backends run this."""
        from plantguard.store import migrations
        from plantguard.timeutil import now_us

        def ensure(cur):
            self._migration_lock(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)")

        self._tx(ensure)
        applied = []
        seen, record = self._dialect_sql("SELECT 1 FROM schema_migrations WHERE name = ?"), \
            self._dialect_sql("INSERT INTO schema_migrations VALUES (?, ?)")
        for name, stmts in migrations.plan(self.kind):

            def apply(cur, stmts=stmts, name=name) -> bool:
                self._migration_lock(cur)
                if cur.execute(seen, [name]).fetchone():
                    return False
                for s in stmts:
                    cur.execute(s)
                cur.execute(record, [name, now_us()])
                return True

            if self._tx(apply):
                applied.append(name)
        return applied

    def _migration_lock(self, cur) -> None:
        """Serialises migrations between processes (PostgreSQL: an advisory lock); one process per embedded file."""

    def applied_migrations(self) -> list[tuple[str, int]]:
        """(name, applied_at) of every migration recorded."""
        return self._run(lambda c: [tuple(r) for r in c.execute("SELECT name, applied_at FROM schema_migrations ORDER BY name").fetchall()])

    @abstractmethod
    def close(self) -> None: ...

    # -- point registry ----------------------------------------------------------------------------------
    @abstractmethod
    def load_points(self) -> list[PointRow]: ...

    @abstractmethod
    def allocate_points(self, tags: list[str]) -> dict[str, int]:
        """tag -> point id; ids of new tags are allocated by the store, so several processes agree on them."""

    @abstractmethod
    def upsert_points(self, rows: list[PointRow]) -> None:
        """Inserts new points and replaces the meta of existing ones (matched by pid)."""

    # -- plant model document ----------------------------------------------------------------------------
    @abstractmethod
    def save_model(self, doc: str, saved_at: int, *, origin: str = "api", file_sha: str | None = None, actor: str | None = None) -> int:
        """Stores a new version of the plant model (JSON text) with where it came from ('file' with the file's
        hash, 'api', 'rollback'...) and who stored it; returns its version number."""

    @abstractmethod
    def load_model(self, version: int | None = None) -> tuple[int, str] | None:
        """(version, JSON text) of the newest model (or of `version`), or None."""

    # -- write path --------------------------------------------------------------------------------------
    @abstractmethod
    def write(self, ws: WriteSet) -> None:
        """Raw rows, latest rows, rollup partials and dead letters, atomically and durably."""

    @abstractmethod
    def existing(self, pid: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Boolean mask: which (pid[i], ts[i]) are already stored. Used only for readings at or behind a
        point's watermark, i.e. late or redelivered data."""

    @abstractmethod
    def watermarks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pid, ts, value, quality) from the latest table: the newest stored reading per point."""

    # -- queries -----------------------------------------------------------------------------------------
    @abstractmethod
    def raw(self, pid: int, start: int, end: int, limit: int = 100_000) -> Series:
        """Raw readings of one point with start <= ts < end, oldest first, at most `limit`."""

    @abstractmethod
    def downsample(self, pid: int, start: int, end: int, width: int, agg: str, tier: str) -> Series:
        """One value per non-empty bucket of `width` us (bucket starts are multiples of width since the epoch),
        aggregated with `agg` (avg/min/max/sum/count/last) from `tier` ('raw', '1m', '1h')."""

    @abstractmethod
    def latest(self, pids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pid, ts, value, quality) for those of `pids` that have data."""

    # -- alarms ------------------------------------------------------------------------------------------
    @abstractmethod
    def save_alarms(self, records: list[AlarmRecord], events: list[AlarmEvent]) -> None: ...

    @abstractmethod
    def load_alarms(self) -> list[AlarmRecord]: ...

    @abstractmethod
    def alarm_events(self, alarm_id: str | None = None, limit: int = 1000) -> list[AlarmEvent]: ...

    @abstractmethod
    def alarm_history(self, start: int, end: int) -> AlarmHistory:
        """The event log over [start, end) as columns in time order, and the alarms standing at `start`."""

    @abstractmethod
    def reading_counts(self, start: int, end: int, width: int, pids: list[int] | None = None):
        """(pid, bucket, n): readings stored per point and bucket of `width` us (multiples of width since the
        epoch) that [start, end) touches, each counted whole, from the coarsest tier that resolves the width (1 h,
        1 min, raw); bad-quality readings are not counted."""

    # -- dead letters ------------------------------------------------------------------------------------
    @abstractmethod
    def dead_letters(self, limit: int = 100, since: int | None = None, source: str | None = None,
                     code: str | None = None) -> list[dict]: ...

    @abstractmethod
    def dead_letter_counts(self, since: int | None = None) -> list[dict]:
        """Dead letters per (source, code), counted over every row."""

    # -- plant model versions --------------------------------------------------------------------------------
    @abstractmethod
    def model_versions(self, limit: int = 100) -> list[dict]:
        """Stored versions, newest first: version, saved_at, origin, file_sha, actor."""

    # -- analytics results and learned state (SqlAnalytics) ------------------------------------------------
    @abstractmethod
    def write_analytics(self, w, at: int) -> None: ...

    @abstractmethod
    def analytics_series(self, key: str, start: int, end: int, *, width: int | None = None, agg: str = "max",
                         limit: int = 100_000): ...

    @abstractmethod
    def analytics_events(self, *, kind: str | None = None, key: str | None = None, since: int | None = None,
                         until: int | None = None, limit: int = 1000) -> list: ...

    @abstractmethod
    def analytics_states(self, prefix: str | None = None) -> dict[str, dict]: ...

    @abstractmethod
    def save_checkpoint(self, name: str, blob: bytes, at: int) -> None: ...

    @abstractmethod
    def load_checkpoint(self, name: str) -> bytes | None: ...

    # -- maintenance -------------------------------------------------------------------------------------
    @abstractmethod
    def compact_rollups(self, since_bucket: int) -> int:
        """Merges partial rollup rows for buckets >= since_bucket; returns rows removed. Only an optimisation."""

    @abstractmethod
    def apply_retention(self, now: int, retention: dict[str, int]) -> dict[str, int]:
        """Deletes rows older than now - retention[tier] for tier in raw/1m/1h (and dead letters with raw)."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Row counts per table, for health and tests."""


DEAD_LETTER_COLUMNS = ["id", "received_at", "source", "point", "ts", "value", "reason", "payload", "code"]
# The order in which both backends insert dead letters.
DEAD_LETTER_INSERT = ["received_at", "source", "point", "ts", "value", "reason", "payload", "code"]


def dead_letter_columns(ws: "WriteSet") -> dict[str, list | np.ndarray] | None:
    """All dead letters of a write set as columns in DEAD_LETTER_INSERT order (None if there are none):
    the pipeline's columnar rejects first, then the payload-level dead letters."""
    n_rej = len(ws.rejects) if ws.rejects is not None else 0
    dl = ws.dead_letters
    if not n_rej and not dl:
        return None
    cols: dict[str, list] = {k: [] for k in DEAD_LETTER_INSERT}
    if n_rej:
        r = ws.rejects
        ts = r.ts.astype(object)
        ts[r.ts == np.iinfo(np.int64).min] = None
        vals = np.array(list(map(repr, r.value.tolist())), object)  # repr: the shortest text that reads back exactly
        vals[np.isnan(r.value)] = None
        cols = {"received_at": [ws.received_at] * n_rej, "source": r.source.tolist(), "point": r.point.tolist(),
                "ts": ts.tolist(), "value": vals.tolist(), "reason": r.reason.tolist(), "payload": [None] * n_rej,
                "code": r.code.tolist()}
    if dl:
        cols["received_at"] += [ws.received_at] * len(dl)
        for k in ("source", "point", "ts", "value", "reason", "payload", "code"):
            cols[k] += [getattr(d, k) for d in dl]
    return cols


def where_clause(ph: str, conditions: list[tuple[str, object]]) -> tuple[str, list]:
    """`WHERE a AND b ...` of the conditions whose value is not None (each `?` becomes the driver's placeholder
    `ph`; a tuple value fills several), and their parameters; empty when none applies."""
    conds, params = [], []
    for sql, value in conditions:
        if value is None:
            continue
        conds.append(sql.replace("?", ph))
        params += list(value) if isinstance(value, tuple) else [value]
    return ("WHERE " + " AND ".join(conds)) if conds else "", params


class SqlMetadataReads:
    """Metadata reads written once for both SQL backends; `_ph` is the driver's placeholder ('?' or '%s') and
    `_run(fn)` runs fn(cursor) with the backend's error translation."""

    _ph: str

    def load_alarms(self) -> list[AlarmRecord]:
        cols = ALARM_COLUMNS + ["extra"]
        quoted = ", ".join(f'"{x}"' for x in cols)  # "limit" is a keyword in both dialects
        rows = self._run(lambda c: c.execute(f"SELECT {quoted} FROM alarms ORDER BY id").fetchall())
        out = []
        for r in rows:
            d = dict(zip(cols, r))
            d["extra"] = json.loads(d["extra"]) if d["extra"] else {}
            out.append(AlarmRecord(**d))
        return out

    def alarm_events(self, alarm_id: str | None = None, limit: int = 1000) -> list[AlarmEvent]:
        ph = self._ph
        where, params = (f"WHERE alarm_id = {ph}", [alarm_id]) if alarm_id else ("", [])
        sql = f'SELECT alarm_id, "at", event, actor, note, value FROM alarm_events {where} ORDER BY id DESC LIMIT {ph}'
        return [AlarmEvent(*r) for r in self._run(lambda c: c.execute(sql, params + [limit]).fetchall())]

    def alarm_history(self, start: int, end: int) -> AlarmHistory:
        ph = self._ph
        codes = " ".join(f"WHEN '{e}' THEN {i}" for i, e in enumerate(HISTORY_EVENTS))
        sql = (f'SELECT alarm_id, "at", CASE event {codes} END, coalesce(note = \'while shelved\', false) FROM alarm_events '
               f'WHERE "at" >= {ph} AND "at" < {ph} AND event IN ({", ".join(repr(e) for e in HISTORY_EVENTS)}) ORDER BY "at", id')
        rows = self._run(lambda c: c.execute(sql, [start, end]).fetchall())
        # the last raise/return of each alarm before the window: which ones were standing when it began
        before = (f'SELECT e.alarm_id, e.event, e."at" FROM alarm_events e JOIN (SELECT alarm_id, max(id) AS m FROM alarm_events '
                  f'WHERE "at" < {ph} AND event IN (\'raised\', \'returned\', \'cleared\') GROUP BY alarm_id) x ON e.id = x.m')
        standing = {a: at for a, ev, at in self._run(lambda c: c.execute(before, [start]).fetchall()) if ev == "raised"}
        if rows:
            ids, at, ev, sh = zip(*rows)
            names, inv = np.unique(np.array(ids, dtype=object), return_inverse=True)
            return AlarmHistory(start, end, list(names), inv.astype(np.int32), np.array(at, np.int64),
                                np.array(ev, np.int8), np.array(sh, bool), standing)
        z = np.zeros(0, np.int64)
        return AlarmHistory(start, end, [], z.astype(np.int32), z, z.astype(np.int8), z.astype(bool), standing)

    def reading_counts(self, start: int, end: int, width: int, pids: list[int] | None = None):
        ph = self._ph
        if width <= 0 or end <= start:
            raise ValueError("width must be positive and end after start")
        table, col = (("rollup_1h", "bucket") if width % 3_600_000_000 == 0 else ("rollup_1m", "bucket")
                      if width % 60_000_000 == 0 else ("raw", "ts"))
        n = "sum(n)" if table != "raw" else "count(*)"
        where = f"{col} >= {ph} AND {col} < {ph}" + (" AND quality <> 2" if table == "raw" else "")  # not bad ones, as the rollups count
        # whole buckets: the tiers cannot split one, so every tier counts the buckets [start, end) touches
        params: list = [start - start % width, -(-end // width) * width]
        if pids is not None:
            if not pids:
                z = np.zeros(0, np.int64)
                return z, z, z
            where += f" AND pid IN ({', '.join(str(int(p)) for p in pids)})"
        mod = "%%" if ph == "%s" else "%"  # the driver's placeholder syntax takes '%' for itself
        sql = f"SELECT pid, {col} - ({col} {mod} {int(width)}) AS b, {n} FROM {table} WHERE {where} GROUP BY 1, 2 ORDER BY 1, 2"
        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        if not rows:
            z = np.zeros(0, np.int64)
            return z, z, z
        a = np.array(rows, dtype=np.int64)
        return a[:, 0], a[:, 1], a[:, 2]

    def load_model(self, version: int | None = None) -> tuple[int, str] | None:
        ph = self._ph
        if version is None:
            sql, params = "SELECT version, doc FROM plant_model ORDER BY version DESC LIMIT 1", []
        else:
            sql, params = f"SELECT version, doc FROM plant_model WHERE version = {ph}", [version]
        row = self._run(lambda c: c.execute(sql, params).fetchone())
        return (row[0], row[1]) if row else None

    def model_versions(self, limit: int = 100) -> list[dict]:
        ph = self._ph
        sql = f"SELECT version, saved_at, origin, file_sha, actor FROM plant_model ORDER BY version DESC LIMIT {ph}"
        keys = ("version", "saved_at", "origin", "file_sha", "actor")
        return [dict(zip(keys, r)) for r in self._run(lambda c: c.execute(sql, [limit]).fetchall())]

    def dead_letter_counts(self, since: int | None = None) -> list[dict]:
        """Dead letters per (source, code), counted in the store over every row (not only the newest ones)."""
        ph = self._ph
        where, params = (f"WHERE received_at >= {ph}", [since]) if since is not None else ("", [])
        sql = (f"SELECT source, coalesce(code, 'other'), count(*), max(received_at), min(received_at) FROM dead_letters {where} "
               "GROUP BY 1, 2 ORDER BY 3 DESC")
        keys = ("source", "code", "count", "last_at", "first_at")
        return [dict(zip(keys, r)) for r in self._run(lambda c: c.execute(sql, params).fetchall())]

    def dead_letters(self, limit: int = 100, since: int | None = None, source: str | None = None,
                     code: str | None = None) -> list[dict]:
        ph = self._ph
        where, params = where_clause(ph, [("received_at >= ?", since), ("source = ?", source),
                                          ("coalesce(code, 'other') = ?", code)])
        sql = f"SELECT {', '.join(DEAD_LETTER_COLUMNS)} FROM dead_letters {where} ORDER BY id DESC LIMIT {ph}"
        return [dict(zip(DEAD_LETTER_COLUMNS, r)) for r in self._run(lambda c: c.execute(sql, params + [limit]).fetchall())]
