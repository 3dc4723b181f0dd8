"""The downsample query, once, for both SQL dialects: the raw tier aggregates readings directly, a rollup tier
combines the partials of each output bucket. PostgreSQL has no arg_max ('last' takes the first value ordered by
time, newest first) and, for a bounded number of buckets, runs one index range scan per output bucket (LATERAL)
instead of sorting the rollup rows, since it cannot estimate the number of groups."""

from __future__ import annotations

from dataclasses import dataclass

from plantguard.store.rollup import TIERS

LATERAL_MAX_BUCKETS = 2000


@dataclass(frozen=True)
class Dialect:
    ph: str            # parameter placeholder
    mod: str           # the modulo operator as written in a query string
    f8: str            # the float type
    last_raw: str
    last_rollup: str
    avg_rollup: str
    lateral: bool      # per-bucket LATERAL scans for bounded bucket counts


EMBEDDED = Dialect("?", "%", "DOUBLE", "arg_max(value, ts)", "arg_max(vlast, last_ts)", "sum(vsum) / sum(n)", False)
POSTGRES = Dialect("%s", "%%", "DOUBLE PRECISION", "(array_agg(value ORDER BY ts DESC))[1]",
                   "(array_agg(vlast ORDER BY last_ts DESC))[1]", "sum(vsum) / sum(n)::DOUBLE PRECISION", True)


def downsample_sql(d: Dialect, tier: str, agg: str, width: int, pid: int, start: int, end: int) -> tuple[str, list]:
    """(SQL, parameters) returning (bucket start, value, readings) rows ordered by bucket."""
    width, ph = int(width), d.ph
    if tier == "raw":
        expr = {"avg": "avg(value)", "min": "min(value)", "max": "max(value)", "sum": "sum(value)",
                "count": "count(*)", "last": d.last_raw}[agg]
        sql = (f"SELECT (ts - (ts {d.mod} {width}))::BIGINT AS b, ({expr})::{d.f8} AS v, count(*)::BIGINT AS n FROM raw "
               f"WHERE pid = {ph} AND ts >= {ph} AND ts < {ph} AND quality <> 2 GROUP BY b ORDER BY b")
        return sql, [pid, start, end]
    expr = {"avg": d.avg_rollup, "min": "min(vmin)", "max": "max(vmax)", "sum": "sum(vsum)", "count": "sum(n)",
            "last": d.last_rollup}[agg]
    lo = start - (start % TIERS[tier])
    first = lo - (lo % width)
    if d.lateral and (end - first) // width <= LATERAL_MAX_BUCKETS:
        sql = (f"SELECT g.b, x.v, x.n FROM generate_series({ph}::BIGINT, {ph}::BIGINT, {ph}::BIGINT) AS g(b), "
               f"LATERAL (SELECT ({expr})::{d.f8} AS v, sum(n)::BIGINT AS n FROM rollup_{tier} "
               f"WHERE pid = {ph} AND bucket >= greatest(g.b, {ph}) AND bucket < least(g.b + {ph}, {ph})) x "
               f"WHERE x.n IS NOT NULL ORDER BY g.b")
        return sql, [first, end - 1, width, pid, lo, width, end]
    sql = (f"SELECT (bucket - (bucket {d.mod} {width}))::BIGINT AS b, ({expr})::{d.f8} AS v, sum(n)::BIGINT AS n "
           f"FROM rollup_{tier} WHERE pid = {ph} AND bucket >= {ph} AND bucket < {ph} GROUP BY b ORDER BY b")
    return sql, [pid, lo, end]
