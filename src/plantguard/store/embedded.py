"""Embedded default backend: one DuckDB file in the data directory, zero set-up.

Chosen by measurement (docs/benchmarks.md): Arrow appends into DuckDB run at millions of rows/s on this class of
machine, where SQLite's executemany with a (series, ts) key manages ~276 k rows/s. DuckDB commits write its WAL
and fsync before returning, so a committed batch survives a crash.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from plantguard.domain.alarms import ALARM_COLUMNS, AlarmEvent, AlarmRecord
from plantguard.domain.readings import NO_TS, PointBatch
from plantguard.errors import StoreError, StoreUnavailable
from plantguard.store.downsample import EMBEDDED, downsample_sql
from plantguard.store.analytics import ANALYTICS_TABLES, SqlAnalytics
from plantguard.store.base import DEAD_LETTER_INSERT, SqlMetadataReads, PointRow, Series, Store, WriteSet, dead_letter_columns
from plantguard.store.rollup import ROLLUP_COLUMNS, TIERS





_DL_TYPES = {"received_at": pa.int64(), "source": pa.string(), "point": pa.string(), "ts": pa.int64(), "value": pa.string(),
             "reason": pa.string(), "payload": pa.string(), "code": pa.string()}


def _q(col: str) -> str:
    return f'"{col}"'


class EmbeddedStore(SqlAnalytics, SqlMetadataReads, Store):
    kind = "embedded"
    _ph = "?"

    def __init__(self, data_dir: str | Path, filename: str = "plantguard.duckdb", read_only: bool = False, memory_limit: str = "1GB"):
        self.path = Path(data_dir) / filename
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # A bounded cache: DuckDB would otherwise let its buffer pool grow to 80% of the machine's memory.
            self._con = duckdb.connect(str(self.path), read_only=read_only, config={"memory_limit": memory_limit})
        except duckdb.IOException as e:
            raise StoreUnavailable(f"cannot open {self.path}: {e} (is another plantguard process using it?)") from None
        except duckdb.Error as e:
            raise StoreUnavailable(f"cannot open {self.path}: {e}") from None
        self._local = threading.local()
        # One writer at a time: DuckDB is optimistic, and two writers touching the same alarm row would conflict.
        self._wlock = threading.RLock()
        self._closed = False

    # -- plumbing ---------------------------------------------------------------------------------------
    def _cur(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cur", None)
        if cur is None:
            if self._closed:
                raise StoreError("store is closed")
            cur = self._con.cursor()
            self._local.cur = cur
        return cur

    def _run(self, fn):
        try:
            return fn(self._cur())
        except duckdb.Error as e:
            raise StoreError(f"embedded store: {e}") from None

    def _tx(self, fn):
        with self._wlock:
            cur = self._cur()
            try:
                cur.execute("BEGIN TRANSACTION")
                out = fn(cur)
                cur.execute("COMMIT")
                return out
            except duckdb.Error as e:
                try:
                    cur.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise StoreError(f"embedded store: {e}") from None
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise

    # -- lifecycle --------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        with self._wlock:
            self._closed = True
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error:
                pass
            self._con.close()

    def backup(self, dest: str) -> dict:
        """An online, consistent copy of the whole store into `dest`/plantguard.duckdb (writes wait meanwhile);
        restore: plantguard.store.restore_backup. Returns the newest reading it holds and how long it took."""
        import time

        out = Path(dest)
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = out / self.path.name
        if target.exists():
            raise StoreError(f"{target} exists already")
        t0 = time.monotonic()
        with self._wlock:
            def go(c):
                c.execute(f"ATTACH '{str(target).replace(chr(39), chr(39) * 2)}' AS plantguard_backup")
                try:
                    c.execute(f'COPY FROM DATABASE "{self.path.stem}" TO plantguard_backup')
                finally:
                    c.execute("DETACH plantguard_backup")
                return c.execute("SELECT max(ts), count(*) FROM raw").fetchone()
            newest, rows = self._run(go)
        return {"kind": "embedded", "path": str(target), "newest_reading_us": newest, "raw_rows": int(rows),
                "seconds": round(time.monotonic() - t0, 3)}

    def checkpoint(self) -> None:
        with self._wlock:
            self._run(lambda c: c.execute("CHECKPOINT"))

    # -- points -----------------------------------------------------------------------------------------
    def load_points(self) -> list[PointRow]:
        rows = self._run(lambda c: c.execute("SELECT pid, tag, meta FROM points ORDER BY pid").fetchall())
        return [PointRow(pid, tag, json.loads(meta)) for pid, tag, meta in rows]

    def allocate_points(self, tags: list[str]) -> dict[str, int]:
        """The point id of each tag, new ones allocated here (never in process memory), in one transaction."""
        tags = list(dict.fromkeys(tags))
        if not tags:
            return {}

        def go(cur):
            have = dict(cur.execute("SELECT tag, pid FROM points WHERE tag IN (SELECT unnest(?::VARCHAR[]))", [tags]).fetchall())
            new = [t for t in tags if t not in have]
            if new:
                nxt = cur.execute("SELECT coalesce(max(pid), -1) + 1 FROM points").fetchall()[0][0]
                tbl = pa.table({"pid": pa.array(range(nxt, nxt + len(new)), pa.int32()), "tag": pa.array(new, pa.string()),
                                "meta": pa.array(["{}"] * len(new), pa.string())})
                cur.register("_pg_alloc", tbl)
                try:
                    cur.execute("INSERT INTO points SELECT * FROM _pg_alloc")
                finally:
                    cur.unregister("_pg_alloc")
                have.update({t: nxt + i for i, t in enumerate(new)})
            return {t: int(have[t]) for t in tags}

        return self._tx(go)

    def upsert_points(self, rows: list[PointRow]) -> None:
        if not rows:
            return
        last = {r.pid: r for r in rows}  # the newest meta of each pid wins
        # One Arrow insert: executemany upserts cost about a millisecond per row in DuckDB.
        tbl = pa.table({
            "pid": pa.array(list(last), pa.int32()),
            "tag": pa.array([r.tag for r in last.values()], pa.string()),
            "meta": pa.array([json.dumps(r.meta) for r in last.values()], pa.string()),
        })

        def go(cur):
            cur.register("_pg_points", tbl)
            try:
                cur.execute("INSERT INTO points SELECT * FROM _pg_points ON CONFLICT (pid) DO UPDATE SET meta = excluded.meta")
            finally:
                cur.unregister("_pg_points")

        self._tx(go)

    # -- model ------------------------------------------------------------------------------------------
    def save_model(self, doc: str, saved_at: int, *, origin: str = "api", file_sha: str | None = None, actor: str | None = None) -> int:
        def go(cur):
            v = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM plant_model").fetchone()[0]
            cur.execute("INSERT INTO plant_model (version, saved_at, doc, origin, file_sha, actor) VALUES (?, ?, ?, ?, ?, ?)",
                        [v, saved_at, doc, origin, file_sha, actor])
            return v

        return self._tx(go)

    # -- write path -------------------------------------------------------------------------------------
    @staticmethod
    def _arrow(b: PointBatch) -> pa.Table:
        src = b.src_ts
        mask = src == NO_TS
        return pa.table(
            {
                "pid": pa.array(b.pid, pa.int32()),
                "ts": pa.array(b.ts, pa.int64()),
                "value": pa.array(b.value, pa.float64()),
                "quality": pa.array(b.quality, pa.uint8()),
                "src_ts": pa.array(src, pa.int64(), mask=mask) if mask.any() else pa.array(src, pa.int64()),
            }
        )

    def write(self, ws: WriteSet) -> None:
        raw_tbl = self._arrow(ws.batch) if len(ws.batch) else None
        latest_tbl = self._arrow(ws.latest) if len(ws.latest) else None
        roll_tbls = {t: pa.table(r.columns()) for t, r in ws.rollups.items() if len(r)}
        dl = dead_letter_columns(ws)
        dl_tbl = pa.table({k: pa.array(v, _DL_TYPES[k]) for k, v in dl.items()}) if dl is not None else None

        def go(cur):
            if raw_tbl is not None:
                cur.register("_pg_raw", raw_tbl)
                cur.execute("INSERT INTO raw SELECT * FROM _pg_raw")
                cur.unregister("_pg_raw")
            if latest_tbl is not None:
                cur.register("_pg_latest", latest_tbl)
                cur.execute("INSERT OR REPLACE INTO latest SELECT * FROM _pg_latest")
                cur.unregister("_pg_latest")
            for tier, tbl in roll_tbls.items():
                cur.register("_pg_roll", tbl)
                cur.execute(f"INSERT INTO rollup_{tier} SELECT {', '.join(ROLLUP_COLUMNS)} FROM _pg_roll")
                cur.unregister("_pg_roll")
            if dl_tbl is not None:
                cur.register("_pg_dl", dl_tbl)
                cur.execute(f"INSERT INTO dead_letters ({', '.join(DEAD_LETTER_INSERT)}) SELECT * FROM _pg_dl")
                cur.unregister("_pg_dl")

        self._tx(go)

    def _insert_columns(self, table: str, columns: dict[str, np.ndarray], skip_existing: bool) -> None:
        tbl = pa.table({k: pa.array(v) for k, v in columns.items()})
        names = ", ".join(columns)

        def go(cur):
            cur.register("_pg_cols", tbl)
            cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _pg_cols" + (" ON CONFLICT DO NOTHING" if skip_existing else ""))
            cur.unregister("_pg_cols")

        self._tx(go)

    def existing(self, pid: np.ndarray, ts: np.ndarray) -> np.ndarray:
        if len(pid) == 0:
            return np.zeros(0, bool)
        probe = pa.table({"i": pa.array(np.arange(len(pid), dtype=np.int64)), "pid": pa.array(pid, pa.int32()), "ts": pa.array(ts, pa.int64())})
        lo, hi = int(ts.min()), int(ts.max())

        def go(cur):
            cur.register("_pg_probe", probe)
            try:
                # The ts range lets DuckDB skip row groups by their zone maps before the join.
                return cur.execute(
                    "SELECT p.i FROM _pg_probe p JOIN (SELECT pid, ts FROM raw WHERE ts BETWEEN ? AND ?) r "
                    "ON r.pid = p.pid AND r.ts = p.ts",
                    [lo, hi],
                ).fetchnumpy()["i"]
            finally:
                cur.unregister("_pg_probe")

        hits = self._run(go)
        mask = np.zeros(len(pid), bool)
        mask[np.asarray(hits, dtype=np.int64)] = True
        return mask

    def watermarks(self):
        d = self._run(lambda c: c.execute("SELECT pid, ts, value, quality FROM latest").fetchnumpy())
        return (np.asarray(d["pid"], np.int32), np.asarray(d["ts"], np.int64), np.asarray(d["value"], np.float64), np.asarray(d["quality"], np.uint8))

    # -- queries ----------------------------------------------------------------------------------------
    def raw(self, pid: int, start: int, end: int, limit: int = 100_000) -> Series:
        d = self._run(
            lambda c: c.execute(
                "SELECT ts, value, quality FROM raw WHERE pid = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?",
                [int(pid), int(start), int(end), int(limit)],  # numpy integers are not DuckDB parameters
            ).fetchnumpy()
        )
        return Series(np.asarray(d["ts"], np.int64), np.asarray(d["value"], np.float64), np.asarray(d["quality"], np.uint8))

    def downsample(self, pid: int, start: int, end: int, width: int, agg: str, tier: str) -> Series:
        sql, params = downsample_sql(EMBEDDED, tier, agg, int(width), int(pid), int(start), int(end))
        d = self._run(lambda c: c.execute(sql, params).fetchnumpy())
        return Series(np.asarray(d["b"], np.int64), np.asarray(d["v"], np.float64), count=np.asarray(d["n"], np.int64))

    def latest(self, pids: np.ndarray):
        probe = pa.table({"pid": pa.array(np.asarray(pids, np.int32), pa.int32())})

        def go(cur):
            cur.register("_pg_lp", probe)
            try:
                return cur.execute("SELECT l.pid, l.ts, l.value, l.quality FROM latest l SEMI JOIN _pg_lp p ON l.pid = p.pid").fetchnumpy()
            finally:
                cur.unregister("_pg_lp")

        d = self._run(go)
        return (np.asarray(d["pid"], np.int32), np.asarray(d["ts"], np.int64), np.asarray(d["value"], np.float64), np.asarray(d["quality"], np.uint8))

    # -- alarms -----------------------------------------------------------------------------------------
    _ALARM_TYPES = {
        "id": pa.string(), "tag": pa.string(), "condition": pa.string(), "priority": pa.string(), "state": pa.string(),
        "active": pa.bool_(), "value": pa.float64(), "limit": pa.float64(), "message": pa.string(), "raised_at": pa.int64(),
        "returned_at": pa.int64(), "acked_by": pa.string(), "acked_at": pa.int64(), "shelved_by": pa.string(),
        "shelved_at": pa.int64(), "shelved_until": pa.int64(), "shelve_reason": pa.string(), "updated_at": pa.int64(),
        "extra": pa.string(),
    }

    def save_alarms(self, records: list[AlarmRecord], events: list[AlarmEvent]) -> None:
        if not records and not events:
            return
        cols = ALARM_COLUMNS + ["extra"]
        # One Arrow insert instead of executemany: DuckDB's per-row upsert costs milliseconds each.
        rec_tbl = None
        if records:
            last = {r.id: r for r in records}  # the newest state of each alarm wins
            data = {c: [getattr(r, c) for r in last.values()] for c in ALARM_COLUMNS}
            data["extra"] = [json.dumps(r.extra) for r in last.values()]
            rec_tbl = pa.table({c: pa.array(data[c], self._ALARM_TYPES[c]) for c in cols})
        ev_tbl = None
        if events:
            ev_tbl = pa.table({
                "alarm_id": pa.array([e.alarm_id for e in events], pa.string()),
                "at": pa.array([e.at for e in events], pa.int64()),
                "event": pa.array([e.event for e in events], pa.string()),
                "actor": pa.array([e.actor for e in events], pa.string()),
                "note": pa.array([e.note for e in events], pa.string()),
                "value": pa.array([e.value for e in events], pa.float64()),
            })

        def go(cur):
            if rec_tbl is not None:
                cur.register("_pg_alarms", rec_tbl)
                cur.execute(f"INSERT OR REPLACE INTO alarms ({', '.join(_q(c) for c in cols)}) SELECT {', '.join(_q(c) for c in cols)} FROM _pg_alarms")
                cur.unregister("_pg_alarms")
            if ev_tbl is not None:
                cur.register("_pg_events", ev_tbl)
                cur.execute('INSERT INTO alarm_events (alarm_id, "at", event, actor, note, value) SELECT * FROM _pg_events')
                cur.unregister("_pg_events")

        self._tx(go)

    # -- maintenance ------------------------------------------------------------------------------------
    def compact_rollups(self, since_bucket: int) -> int:
        removed = 0
        for tier in TIERS:
            def go(cur, tier=tier):
                before = cur.execute(f"SELECT count(*) FROM rollup_{tier} WHERE bucket >= ?", [since_bucket]).fetchone()[0]
                cur.execute(
                    f"CREATE TEMP TABLE _merged AS SELECT pid, bucket, min(vmin) vmin, max(vmax) vmax, sum(vsum) vsum, sum(n)::BIGINT n, "
                    f"max(last_ts) last_ts, arg_max(vlast, last_ts) vlast FROM rollup_{tier} WHERE bucket >= ? GROUP BY pid, bucket "
                    f"ORDER BY pid, bucket",
                    [since_bucket],
                )
                cur.execute(f"DELETE FROM rollup_{tier} WHERE bucket >= ?", [since_bucket])
                cur.execute(f"INSERT INTO rollup_{tier} SELECT * FROM _merged")
                after = cur.execute("SELECT count(*) FROM _merged").fetchone()[0]
                cur.execute("DROP TABLE _merged")
                return before - after

            removed += self._tx(go)
        return removed

    def apply_retention(self, now: int, retention: dict[str, int]) -> dict[str, int]:
        out = {}
        for tier, table, col in (("raw", "raw", "ts"), ("1m", "rollup_1m", "bucket"), ("1h", "rollup_1h", "bucket")):
            if tier not in retention:
                continue
            cutoff = now - retention[tier]

            def go(cur, table=table, col=col, cutoff=cutoff):
                n = cur.execute(f"SELECT count(*) FROM {table} WHERE {col} < ?", [cutoff]).fetchone()[0]
                if n:
                    cur.execute(f"DELETE FROM {table} WHERE {col} < ?", [cutoff])
                if table == "raw":
                    cur.execute("DELETE FROM dead_letters WHERE received_at < ?", [cutoff])
                return n

            out[tier] = self._tx(go)
        if "1h" in retention:  # derived series are already thinned: they live as long as the longest tier
            out["analytics"] = self._tx(lambda cur: self._analytics_retention(cur, now - retention["1h"]))
        return out

    def _insert_rows(self, cur, table: str, cols: dict[str, str], rows: list[tuple]) -> None:
        # One Arrow insert: DuckDB's executemany costs about a millisecond per row.
        columns = list(zip(*rows))
        tbl = pa.table({c: pa.array(list(columns[i]), getattr(pa, t)()) for i, (c, t) in enumerate(cols.items())})
        cur.register("_pg_rows", tbl)
        try:
            cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _pg_rows")
        finally:
            cur.unregister("_pg_rows")

    def _upsert_states(self, cur, rows: list[tuple]) -> None:
        last = {r[0]: r for r in rows}  # one row per key: INSERT OR REPLACE refuses duplicates within a statement
        k, at, payload = zip(*last.values())
        tbl = pa.table({"key": pa.array(list(k), pa.string()), "updated_at": pa.array(list(at), pa.int64()),
                        "payload": pa.array(list(payload), pa.string())})
        cur.register("_pg_state", tbl)
        try:
            cur.execute("INSERT OR REPLACE INTO analytics_state SELECT key, updated_at, payload FROM _pg_state")
        finally:
            cur.unregister("_pg_state")

    @staticmethod
    def _last_agg(col: str) -> str:
        return f"arg_max({col}, ts)"

    def counts(self) -> dict[str, int]:
        tables = ["points", "raw", "rollup_1m", "rollup_1h", "latest", "dead_letters", "alarms", "alarm_events", "plant_model", *ANALYTICS_TABLES]
        return self._run(lambda c: {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables})
