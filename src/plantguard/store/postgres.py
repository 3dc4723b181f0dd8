"""PostgreSQL backend: the embedded store's schema and semantics on a server, for sites that already run one.

Bulk data moves as binary COPY payloads built with numpy structured arrays, both ways. Measured on a 2-vCPU
machine: building 100k raw rows takes ~10 ms in binary against ~180 ms as text (exact float repr), and the
server parses binary faster, so writes run ~1.5x faster end to end than with a text payload.

Connections: a small pool of autocommit connections for reads (any thread), and one writer connection
used under a lock, so write transactions are serialised like the embedded store's.
"""

from __future__ import annotations

import json
from pathlib import Path
import threading

import numpy as np
import logging
import psycopg
from psycopg import conninfo, pq
from psycopg.adapt import Dumper

from plantguard.domain.alarms import ALARM_COLUMNS, AlarmEvent, AlarmRecord
from plantguard.domain.readings import NO_TS, PointBatch
from plantguard.errors import StoreError, StoreUnavailable
from plantguard.store.downsample import POSTGRES, downsample_sql
from plantguard.store.analytics import ANALYTICS_TABLES, SqlAnalytics
from plantguard.store.base import DEAD_LETTER_INSERT, dead_letter_columns, SqlMetadataReads, PointRow, Series, Store, WriteSet
from plantguard.store.rollup import ROLLUP_COLUMNS, TIERS

log = logging.getLogger(__name__)
_F8 = "DOUBLE PRECISION"



_MIGRATION_LOCK = 0x706C616E74  # advisory lock key: two processes migrating the same database take turns
_MAX_IDLE = 8
_TABLES = ["points", "raw", "rollup_1m", "rollup_1h", "latest", "dead_letters", "alarms", "alarm_events", "plant_model", *ANALYTICS_TABLES]

# -- binary COPY payloads ---------------------------------------------------------------------------------
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, header extension length
_TRAILER = b"\xff\xff"
_I2, _I4, _I8, _F8B = ">i2", ">i4", ">i8", ">f8"


def _tuples(cols: list[tuple[str, np.ndarray]], last_null: bool = False) -> bytes:
    """Binary COPY tuples for columns of one fixed-width type each; with last_null the last column is NULL."""
    n = len(cols[0][1])
    fields: list[tuple[str, str]] = [("nf", _I2)]
    for i, (dt, _) in enumerate(cols):
        fields.append((f"l{i}", _I4))
        if not (last_null and i == len(cols) - 1):
            fields.append((f"c{i}", dt))
    a = np.empty(n, np.dtype(fields))
    a["nf"] = len(cols)
    for i, (dt, v) in enumerate(cols):
        if last_null and i == len(cols) - 1:
            a[f"l{i}"] = -1
        else:
            a[f"l{i}"] = np.dtype(dt).itemsize
            a[f"c{i}"] = v
    return a.tobytes()


def _readings_payload(b: PointBatch) -> bytes:
    """(pid, ts, value, quality, src_ts); src_ts NO_TS becomes NULL. Rows with and without a source timestamp
    go in two runs of fixed-size tuples: heap order carries no meaning (queries sort)."""
    null = b.src_ts == NO_TS
    cols = [(_I4, b.pid), (_I8, b.ts), (_F8B, b.value), (_I2, b.quality), (_I8, b.src_ts)]
    if not null.any():
        return _SIGNATURE + _tuples(cols) + _TRAILER
    if null.all():
        return _SIGNATURE + _tuples(cols, last_null=True) + _TRAILER
    has = ~null
    return (
        _SIGNATURE
        + _tuples([(dt, v[has]) for dt, v in cols])
        + _tuples([(dt, v[null]) for dt, v in cols], last_null=True)
        + _TRAILER
    )


def _decode(data: bytes, dtypes: list[str]) -> list[np.ndarray] | None:
    """Columns from a binary COPY TO of fixed-width, non-NULL values; None when the data is not of that shape."""
    if data[:11] != _SIGNATURE[:11] or len(data) < 21:
        return None
    off = 19 + int.from_bytes(data[15:19], "big")
    body = memoryview(data)[off:-2]
    fields: list[tuple[str, str]] = [("nf", _I2)]
    for i, dt in enumerate(dtypes):
        fields += [(f"l{i}", _I4), (f"c{i}", dt)]
    rec = np.dtype(fields)
    if len(body) % rec.itemsize:
        return None
    a = np.frombuffer(body, rec)
    if len(a) and (np.any(a["nf"] != len(dtypes)) or any(np.any(a[f"l{i}"] != np.dtype(dt).itemsize) for i, dt in enumerate(dtypes))):
        return None
    return [a[f"c{i}"].astype(np.dtype(dt).newbyteorder("=")) for i, dt in enumerate(dtypes)]


class _Int4Array:
    """A one-dimensional array parameter in PostgreSQL's binary array format, built with numpy: psycopg's own
    adaptation of a Python list costs ~0.2 s per 100k elements, this ~1 ms."""

    dtype, elem_oid = _I4, 23

    def __init__(self, values: np.ndarray):
        a = np.empty(len(values), [("len", _I4), ("v", self.dtype)])
        a["len"] = np.dtype(self.dtype).itemsize
        a["v"] = values
        header = np.array([1, 0, self.elem_oid, len(values), 1], dtype=_I4).tobytes()  # ndim, has-nulls, type, size, lower bound
        self.data = header + a.tobytes()


class _Int8Array(_Int4Array):
    dtype, elem_oid = _I8, 20


class _Int4ArrayDumper(Dumper):
    format = pq.Format.BINARY
    oid = 1007  # int4[]

    def dump(self, obj: _Int4Array) -> bytes:
        return obj.data


class _Int8ArrayDumper(_Int4ArrayDumper):
    oid = 1016  # int8[]


def _q(col: str) -> str:
    return f'"{col}"'


class PostgresStore(SqlAnalytics, SqlMetadataReads, Store):
    kind = "postgres"
    _ph = "%s"

    def __init__(self, dsn: str, connect_timeout: int = 10):
        try:
            params = conninfo.conninfo_to_dict(dsn)
        except psycopg.Error as e:
            raise StoreUnavailable("invalid PostgreSQL DSN: " + " ".join(str(e).split())) from None
        params.setdefault("connect_timeout", connect_timeout)
        params.setdefault("application_name", "plantguard")
        # plantguard's queries are short; JIT compilation (several ms) costs more than it saves on them
        params["options"] = (params.get("options", "") + " -c jit=off").strip()
        self._params = params
        self._plock = threading.Lock()
        self._idle: list[psycopg.Connection] = []
        self._writer: psycopg.Connection | None = None
        self._wlock = threading.RLock()  # one write transaction at a time, as in the embedded store
        self._closed = False
        self._release(self._connect())  # fail now, not at the first query, when the server is unreachable

    # -- plumbing ---------------------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        try:
            conn = psycopg.connect(autocommit=True, **self._params)
            conn.adapters.register_dumper(_Int4Array, _Int4ArrayDumper)
            conn.adapters.register_dumper(_Int8Array, _Int8ArrayDumper)
            return conn
        except psycopg.Error as e:
            host = self._params.get("host", "localhost")
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {host}:{self._params.get('port', 5432)}: {' '.join(str(e).split())}") from None

    @staticmethod
    def _usable(conn: psycopg.Connection) -> bool:
        return not conn.closed and not conn.broken and conn.info.transaction_status == pq.TransactionStatus.IDLE

    def _acquire(self) -> tuple[psycopg.Connection, bool]:
        """(connection, reused): an idle pooled connection, else a new one."""
        with self._plock:
            if self._closed:
                raise StoreError("store is closed")
            while self._idle:
                conn = self._idle.pop()
                if self._usable(conn):
                    return conn, True
                conn.close()
        return self._connect(), False

    def _release(self, conn: psycopg.Connection) -> None:
        with self._plock:
            if not self._closed and self._usable(conn) and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    @staticmethod
    def _error(e: psycopg.Error, conn: psycopg.Connection | None) -> StoreError:
        msg = "postgres store: " + " ".join(str(e).split())
        if conn is None or conn.closed or conn.broken:
            return StoreUnavailable(msg)
        return StoreError(msg)

    def _run(self, fn):
        """Runs fn(cursor) on a pooled connection, outside any explicit transaction (one statement each).
        Reads only: a pooled connection found dead (e.g. after a server restart) is replaced once."""
        for attempt in (0, 1):
            conn, reused = self._acquire()
            try:
                return fn(conn.cursor())
            except psycopg.Error as e:
                if attempt == 0 and reused and (conn.closed or conn.broken):
                    continue
                raise self._error(e, conn) from None
            finally:
                self._release(conn)

    def _tx(self, fn):
        """Runs fn(cursor) in one transaction on the writer connection."""
        with self._wlock:
            if self._closed:
                raise StoreError("store is closed")
            conn = self._writer
            if conn is None or conn.closed or conn.broken:
                conn = self._writer = self._connect()
            try:
                with conn.transaction():
                    return fn(conn.cursor())
            except psycopg.Error as e:
                err = self._error(e, conn)
                if conn.closed or conn.broken:
                    conn.close()
                    self._writer = None
                raise err from None

    def _columns(self, sql: str, params: list, dtypes: list[str]) -> list[np.ndarray]:
        """Runs a SELECT and returns its columns as numpy arrays (native byte order), via binary COPY."""

        def go(cur):
            buf = bytearray()
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)", params) as cp:
                for chunk in cp:
                    buf += chunk
            return bytes(buf)

        cols = _decode(self._run(go), dtypes)
        if cols is None:  # NULLs or unexpected widths: take the slow, general path
            rows = self._run(lambda c: c.execute(sql, params).fetchall())
            cols = []
            for i, dt in enumerate(dtypes):
                kind = np.dtype(dt).newbyteorder("=")
                vals = [r[i] for r in rows]
                if kind.kind == "f":
                    cols.append(np.array([np.nan if v is None else v for v in vals], kind))
                else:
                    cols.append(np.array(vals, kind))
        return cols

    # -- lifecycle --------------------------------------------------------------------------------------
    def _migration_lock(self, cur) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_MIGRATION_LOCK])

    def close(self) -> None:
        with self._wlock:
            with self._plock:
                if self._closed:
                    return
                self._closed = True
                conns, self._idle = self._idle, []
            if self._writer is not None:
                conns.append(self._writer)
                self._writer = None
        for c in conns:  # connections checked out by other threads close when they come back
            c.close()

    # -- points -----------------------------------------------------------------------------------------
    def load_points(self) -> list[PointRow]:
        rows = self._run(lambda c: c.execute("SELECT pid, tag, meta FROM points ORDER BY pid").fetchall())
        return [PointRow(pid, tag, json.loads(meta)) for pid, tag, meta in rows]

    def allocate_points(self, tags: list[str]) -> dict[str, int]:
        """The point id of each tag, new ones allocated here in one transaction under a table lock, so that
        processes sharing the database never hand out the same id."""
        tags = list(dict.fromkeys(tags))
        if not tags:
            return {}

        def go(cur):
            cur.execute("LOCK TABLE points IN SHARE ROW EXCLUSIVE MODE")
            have = dict(cur.execute("SELECT tag, pid FROM points WHERE tag = ANY(%s)", [tags]).fetchall())
            new = [t for t in tags if t not in have]
            if new:
                nxt = cur.execute("SELECT coalesce(max(pid), -1) + 1 FROM points").fetchone()[0]
                cur.executemany("INSERT INTO points VALUES (%s, %s, %s)", [(nxt + i, t, "{}") for i, t in enumerate(new)])
                have.update({t: nxt + i for i, t in enumerate(new)})
            return {t: int(have[t]) for t in tags}

        return self._tx(go)

    def upsert_points(self, rows: list[PointRow]) -> None:
        if not rows:
            return
        self._tx(
            lambda cur: cur.executemany(
                "INSERT INTO points VALUES (%s, %s, %s) ON CONFLICT (pid) DO UPDATE SET meta = excluded.meta",
                [(r.pid, r.tag, json.dumps(r.meta)) for r in rows],
            )
        )

    # -- model ------------------------------------------------------------------------------------------
    def save_model(self, doc: str, saved_at: int, *, origin: str = "api", file_sha: str | None = None, actor: str | None = None) -> int:
        def go(cur):
            cur.execute("LOCK TABLE plant_model IN SHARE ROW EXCLUSIVE MODE")  # versions stay gapless across processes
            v = cur.execute("SELECT coalesce(max(version), 0) + 1 FROM plant_model").fetchone()[0]
            cur.execute("INSERT INTO plant_model (version, saved_at, doc, origin, file_sha, actor) VALUES (%s, %s, %s, %s, %s, %s)",
                        [v, saved_at, doc, origin, file_sha, actor])
            return v

        return self._tx(go)

    # -- backup -----------------------------------------------------------------------------------------
    def backup(self, dest: str) -> dict:
        """An online, consistent dump (pg_dump, custom format: one snapshot) into `dest`/plantguard.pgdump; restore:
        plantguard.store.restore_backup. Needs the PostgreSQL client programs (pg_dump) of the server's version."""
        import subprocess
        import time

        out = Path(dest)
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = out / "plantguard.pgdump"
        if target.exists():
            raise StoreError(f"{target} exists already")
        newest, rows = self._run(lambda c: c.execute("SELECT max(ts), count(*) FROM raw").fetchone())
        t0 = time.monotonic()
        r = subprocess.run([_pg_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={target}", _dsn_of(self._params)],
                           capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise StoreError(f"pg_dump failed: {r.stderr.strip()[-500:]}")
        return {"kind": "postgres", "path": str(target), "newest_reading_us": newest, "raw_rows": int(rows),
                "seconds": round(time.monotonic() - t0, 3)}

    # -- write path -------------------------------------------------------------------------------------
    def write(self, ws: WriteSet) -> None:
        raw = _readings_payload(ws.batch) if len(ws.batch) else None
        latest = _readings_payload(ws.latest) if len(ws.latest) else None
        rolls = {
            tier: _SIGNATURE
            + _tuples([(_I4, r.pid), (_I8, r.bucket), (_F8B, r.vmin), (_F8B, r.vmax), (_F8B, r.vsum), (_I8, r.n), (_I8, r.last_ts), (_F8B, r.vlast)])
            + _TRAILER
            for tier, r in ws.rollups.items()
            if len(r)
        }
        unknown = set(rolls) - set(TIERS)
        if unknown:
            raise StoreError(f"unknown rollup tier(s): {sorted(unknown)}")
        dl = dead_letter_columns(ws)

        def go(cur):
            if raw is not None:
                with cur.copy("COPY raw (pid, ts, value, quality, src_ts) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.write(raw)
            if latest is not None:
                # COPY cannot upsert: stage the rows, then one INSERT ... ON CONFLICT
                cur.execute("CREATE TEMP TABLE IF NOT EXISTS _latest_in (LIKE latest) ON COMMIT DELETE ROWS")
                with cur.copy("COPY _latest_in (pid, ts, value, quality, src_ts) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.write(latest)
                cur.execute(
                    "INSERT INTO latest (pid, ts, value, quality, src_ts) SELECT pid, ts, value, quality, src_ts FROM _latest_in "
                    "ON CONFLICT (pid) DO UPDATE SET ts = excluded.ts, value = excluded.value, quality = excluded.quality, src_ts = excluded.src_ts"
                )
            for tier, payload in rolls.items():
                with cur.copy(f"COPY rollup_{tier} ({', '.join(ROLLUP_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.write(payload)
            if dl is not None:
                with cur.copy(f"COPY dead_letters ({', '.join(DEAD_LETTER_INSERT)}) FROM STDIN") as cp:
                    for row in zip(*(dl[k] for k in DEAD_LETTER_INSERT)):
                        cp.write_row(row)

        self._tx(go)

    _PG_TYPES = {"i": "bigint", "u": "bigint", "f": "double precision", "b": "boolean", "U": "text", "O": "text"}

    def _insert_columns(self, table: str, columns: dict[str, np.ndarray], skip_existing: bool) -> None:
        names = ", ".join(columns)
        casts = ", ".join(f"%s::{self._PG_TYPES.get(np.asarray(v).dtype.kind, 'text')}[]" for v in columns.values())
        sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({casts})" + (" ON CONFLICT DO NOTHING" if skip_existing else "")
        params = [np.asarray(v).tolist() for v in columns.values()]
        self._tx(lambda cur: cur.execute(sql, params))

    def existing(self, pid: np.ndarray, ts: np.ndarray) -> np.ndarray:
        if len(pid) == 0:
            return np.zeros(0, bool)
        ts = np.asarray(ts, np.int64)
        # The hits come back as one bytea of big-endian int8 positions instead of a row each; the ts bounds let
        # the planner narrow the scan when the probe set is large.
        hit = self._run(
            lambda c: c.execute(
                "SELECT coalesce(string_agg(int8send(p.i), ''::bytea), ''::bytea) "
                "FROM unnest(%b, %b) WITH ORDINALITY AS p(pid, ts, i) "
                "WHERE EXISTS (SELECT 1 FROM raw r WHERE r.pid = p.pid AND r.ts = p.ts AND r.ts BETWEEN %s AND %s)",
                [_Int4Array(np.asarray(pid)), _Int8Array(ts), int(ts.min()), int(ts.max())],
            ).fetchone()[0]
        )
        mask = np.zeros(len(pid), bool)
        mask[np.frombuffer(hit, _I8) - 1] = True
        return mask

    def watermarks(self):
        p, t, v, q = self._columns("SELECT pid, ts, value, quality FROM latest ORDER BY pid", [], [_I4, _I8, _F8B, _I2])
        return p, t, v, q.astype(np.uint8)

    # -- queries ----------------------------------------------------------------------------------------
    def raw(self, pid: int, start: int, end: int, limit: int = 100_000) -> Series:
        t, v, q = self._columns(
            "SELECT ts, value, quality FROM raw WHERE pid = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
            [int(pid), int(start), int(end), int(limit)],
            [_I8, _F8B, _I2],
        )
        return Series(t, v, q.astype(np.uint8))

    def downsample(self, pid: int, start: int, end: int, width: int, agg: str, tier: str) -> Series:
        sql, params = downsample_sql(POSTGRES, tier, agg, width, int(pid), int(start), int(end))
        b, v, n = self._columns(sql, params, [_I8, _F8B, _I8])
        return Series(b, v, count=n)

    def latest(self, pids: np.ndarray):
        pids = np.asarray(pids, np.int64)
        if len(pids) == 0:
            return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.uint8)
        p, t, v, q = self._columns(
            "SELECT pid, ts, value, quality FROM latest WHERE pid = ANY(%s::int[]) ORDER BY pid", [pids.tolist()], [_I4, _I8, _F8B, _I2]
        )
        return p, t, v, q.astype(np.uint8)

    # -- alarms -----------------------------------------------------------------------------------------
    def save_alarms(self, records: list[AlarmRecord], events: list[AlarmEvent]) -> None:
        if not records and not events:
            return
        cols = ALARM_COLUMNS + ["extra"]
        placeholders = ", ".join("%s" for _ in cols)
        updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in cols if c != "id")

        def go(cur):
            if records:
                cur.executemany(
                    f"INSERT INTO alarms ({', '.join(_q(c) for c in cols)}) VALUES ({placeholders}) ON CONFLICT (id) DO UPDATE SET {updates}",
                    [[getattr(r, c) for c in ALARM_COLUMNS] + [json.dumps(r.extra)] for r in records],
                )
            if events:
                cur.executemany(
                    'INSERT INTO alarm_events (alarm_id, "at", event, actor, note, value) VALUES (%s, %s, %s, %s, %s, %s)',
                    [(e.alarm_id, e.at, e.event, e.actor, e.note, e.value) for e in events],
                )

        self._tx(go)

    # -- maintenance ------------------------------------------------------------------------------------
    def compact_rollups(self, since_bucket: int) -> int:
        removed = 0
        cols = ", ".join(ROLLUP_COLUMNS)
        for tier in TIERS:
            # Only (pid, bucket) groups with several partials are rewritten: fewer dead tuples than rewriting all.
            sql = (
                f"WITH g AS (SELECT pid, bucket FROM rollup_{tier} WHERE bucket >= %(b)s GROUP BY pid, bucket HAVING count(*) > 1), "
                f"d AS (DELETE FROM rollup_{tier} r USING g WHERE r.pid = g.pid AND r.bucket = g.bucket AND r.bucket >= %(b)s RETURNING r.*), "
                f"m AS (INSERT INTO rollup_{tier} ({cols}) SELECT pid, bucket, min(vmin), max(vmax), sum(vsum), sum(n)::BIGINT, max(last_ts), "
                f"(array_agg(vlast ORDER BY last_ts DESC))[1] FROM d GROUP BY pid, bucket RETURNING 1) "
                f"SELECT (SELECT count(*) FROM d) - (SELECT count(*) FROM m)"
            )
            n = self._tx(lambda cur, sql=sql: cur.execute(sql, {"b": int(since_bucket)}).fetchone()[0])
            if n:
                self._vacuum(f"rollup_{tier}")
            removed += n
        return int(removed)

    def _vacuum(self, table: str) -> None:
        """Clears the dead tuples a compaction leaves, so index scans of dashboard queries do not visit them.
        VACUUM skips all-visible pages, so its cost follows what changed. Only an optimisation: errors are logged."""
        try:
            with psycopg.connect(**self._params, autocommit=True) as conn:
                conn.execute(f"VACUUM (ANALYZE) {table}")
        except psycopg.Error as e:
            log.warning("vacuum of %s failed: %s", table, " ".join(str(e).split()))

    def apply_retention(self, now: int, retention: dict[str, int]) -> dict[str, int]:
        out = {}
        for tier, table, col in (("raw", "raw", "ts"), ("1m", "rollup_1m", "bucket"), ("1h", "rollup_1h", "bucket")):
            if tier not in retention:
                continue
            cutoff = int(now - retention[tier])
            # The (pid, time) btree has no time-first order: walk the distinct pids with one index probe each
            # (a loose index scan), then delete each pid's old rows by an index range scan, not a full scan.
            sql = (
                f"WITH RECURSIVE pids AS (SELECT min(pid) AS pid FROM {table} "
                f"UNION ALL SELECT (SELECT min(pid) FROM {table} WHERE pid > pids.pid) FROM pids WHERE pids.pid IS NOT NULL) "
                f"DELETE FROM {table} t USING pids WHERE t.pid = pids.pid AND t.{col} < %s"
            )

            def go(cur, sql=sql, table=table, cutoff=cutoff):
                n = cur.execute(sql, [cutoff]).rowcount
                if table == "raw":
                    cur.execute("DELETE FROM dead_letters WHERE received_at < %s", [cutoff])
                return n

            out[tier] = self._tx(go)
        if "1h" in retention:  # derived series are already thinned: they live as long as the longest tier
            out["analytics"] = self._tx(lambda cur: self._analytics_retention(cur, int(now - retention["1h"])))
        return out

    @staticmethod
    def _last_agg(col: str) -> str:
        return f"(array_agg({col} ORDER BY ts DESC))[1]"

    def counts(self) -> dict[str, int]:
        sql = "SELECT " + ", ".join(f"(SELECT count(*) FROM {t})" for t in _TABLES)
        row = self._run(lambda c: c.execute(sql).fetchone())
        return dict(zip(_TABLES, (int(x) for x in row)))


def _dsn_of(params: dict) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def _pg_tool(name: str) -> str:
    """A PostgreSQL client program: on the PATH, else the newest under /usr/lib/postgresql."""
    import glob
    import shutil

    found = shutil.which(name)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not cands:
        raise StoreError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return cands[-1]
