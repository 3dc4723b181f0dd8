"""Data in and out of a store: query, import-csv, export."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from pydantic import ValidationError

from plantguard.cli.common import (
    Agg, ConfigOpt, CsvLayout, DataDirOpt, EXIT_USAGE, EXPORT_PAGE, EndOpt, ExportFormat, FormatOpt, OutputFormat,
    QUALITY_NAMES, _errors, _fail, _iso, _load, _range, _services, _start_help, app)


@app.command()
def query(
    point: str = typer.Argument(..., help="Point tag: site/area/line/asset/device/point."),
    start: str = typer.Option("now-1h", help=_start_help("now-1h")),
    end: EndOpt = "now",
    buckets: Optional[int] = typer.Option(None, min=1, help="Downsample into this many buckets instead of raw readings."),
    agg: Agg = typer.Option(Agg("avg"), help="Aggregate per bucket (with --buckets)."),
    limit: int = typer.Option(10_000, min=1, max=1_000_000, help="Raw readings returned at most."),
    fmt: FormatOpt = OutputFormat.table,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Query a point's raw or downsampled history straight from the store."""
    s, e = _range(start, end)
    with _services(config, data_dir) as p:
        if buckets is None:
            series = p.telemetry.query_raw(point, s, e, limit)
            third = ("quality", [QUALITY_NAMES[q] if q < 3 else str(q) for q in series.quality.tolist()])
            extra: dict = {}
        else:
            series, tier, width = p.telemetry.query_downsample(point, s, e, buckets=buckets, agg=agg.value)
            third = ("count", series.count.tolist())
            extra = {"agg": agg.value, "tier": tier, "width_ms": width / 1000}
    ts_text = _iso(series.ts).tolist()
    values = series.value.tolist()
    if fmt is OutputFormat.json:
        data = [{"ts": t, "ts_ms": int(ms), "value": v, third[0]: x}
                for t, ms, v, x in zip(ts_text, (series.ts // 1000).tolist(), values, third[1])]
        doc = {"point": point, "start": str(_iso(np.array([s]))[0]), "end": str(_iso(np.array([e]))[0]), **extra,
               "data": data, "count": len(data)}
        typer.echo(json.dumps(doc))
    elif fmt is OutputFormat.csv:
        typer.echo(f"timestamp,value,{third[0]}")
        for t, v, x in zip(ts_text, values, third[1]):
            typer.echo(f"{t},{v!r},{x}")
    else:
        from rich.console import Console
        from rich.table import Table

        title = point if buckets is None else f"{point} ({agg.value} per {width / 1e6:g} s, tier {extra['tier']})"
        table = Table()
        table.add_column("timestamp (UTC)")
        table.add_column("value", justify="right")
        table.add_column(third[0], justify="right" if third[0] == "count" else "left")
        for t, v, x in zip(ts_text, values, third[1]):
            table.add_row(t, f"{v:g}", str(x))
        console = Console(width=120)
        console.print(title, markup=False, highlight=False)
        console.print(table)
    if buckets is None and len(values) == limit:
        typer.echo(f"note: stopped at --limit {limit} readings; narrow the range or raise --limit", err=True)


@app.command("import-csv")
def import_csv_cmd(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV file (UTF-8) to import."),
    config: Path = typer.Option(..., "--config", "-c", help="Plant configuration file (points and store)."),
    fmt: CsvLayout = typer.Option(CsvLayout.auto, "--format", help="long (timestamp,point,value[,quality]), wide (one column per point) or auto."),
    tz: Optional[str] = typer.Option(None, help="Time zone of timestamps without UTC offset (default: the site's when the configuration has one site)."),
    point_prefix: Optional[str] = typer.Option(None, help="Prepended to point names, e.g. the device path site/area/line/asset/device."),
    chunk_rows: int = typer.Option(100_000, min=1, help="Rows per write at most."),
    timestamp_column: str = typer.Option("timestamp", help="Header of the timestamp column."),
    point_column: str = typer.Option("point", help="Header of the point column (long format)."),
    value_column: str = typer.Option("value", help="Header of the value column (long format)."),
    quality_column: str = typer.Option("quality", help="Header of the optional quality column (long format)."),
    delimiter: str = typer.Option(",", help="Field delimiter."),
    max_errors: int = typer.Option(20, min=0, help="Broken rows listed at most (all are stored as dead letters)."),
) -> None:
    """Import a historian CSV export; re-importing the same file stores nothing twice."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from plantguard.connectors.csv import CsvOptions
    from plantguard import launch

    cfg = _load(config)
    if tz is None and len(cfg.sites) == 1:
        tz = cfg.sites[0].timezone
    try:
        opt = CsvOptions(format=fmt.value, tz=tz, timestamp_column=timestamp_column, point_column=point_column,
                         value_column=value_column, quality_column=quality_column, delimiter=delimiter,
                         point_prefix=point_prefix, chunk_rows=chunk_rows)
    except ValidationError as e:
        _fail("; ".join(f"--{'-'.join(str(x) for x in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors()), EXIT_USAGE)
    with _errors():
        # history is not alarmed (alarms concern the present) and not analysed as if it were arriving live
        run = launch.open_config(cfg, alarms=False, analytics=False)
    try:
        with _errors(), Progress(TextColumn("importing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("import", total=file.stat().st_size)
            rep = run.services.telemetry.import_csv(file, opt, max_problems=max_errors,
                             progress=lambda done: bar.update(task, completed=done))
    finally:
        run.stop()
    rate = rep.rows / rep.seconds if rep.seconds > 0 else 0.0
    typer.echo(f"{file}: {rep.rows:,} rows, {rep.readings:,} readings in {rep.seconds:.2f} s ({rate:,.0f} rows/s)")
    typer.echo(f"  accepted   {rep.accepted:,}")
    typer.echo(f"  duplicates {rep.duplicates:,} (already stored)")
    typer.echo(f"  rejected   {rep.rejected:,} (stored as dead letters)")
    if rep.problems:
        more = " (first %d)" % len(rep.problems) if rep.rejected > len(rep.problems) else ""
        typer.echo(f"problems{more}:")
        for pr in rep.problems:
            where = f"line {pr.line}" if pr.line else "line ?"
            typer.echo(f"  {where}: {pr.reason}" + (f"  | {pr.text}" if pr.text else ""))


@app.command()
def export(
    points: list[str] = typer.Argument(..., help="One or more point tags."),
    start: str = typer.Option("now-1h", help=_start_help("now-1h")),
    end: EndOpt = "now",
    fmt: Optional[ExportFormat] = typer.Option(None, "--format", help="csv or parquet (default: from the --out suffix, else csv)."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write."),
    buckets: Optional[int] = typer.Option(None, min=1, help="Export this many downsampled buckets per point instead of raw readings."),
    agg: Agg = typer.Option(Agg("avg"), help="Aggregate per bucket (with --buckets)."),
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Export points' history to CSV or Parquet (long layout: timestamp, point, value, quality or count)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt is None:
        fmt = ExportFormat.parquet if out.suffix.lower() in (".parquet", ".pq") else ExportFormat.csv
    s, e = _range(start, end)
    third = "quality" if buckets is None else "count"
    schema = pa.schema([("timestamp", pa.timestamp("us", tz="UTC")), ("point", pa.string()), ("value", pa.float64()),
                        (third, pa.uint8() if buckets is None else pa.int64())])
    rows = 0
    with _services(config, data_dir) as p:
        for tag in points:
            p.telemetry.pid_of(tag)  # unknown points fail before anything is written
        out.parent.mkdir(parents=True, exist_ok=True)
        # a new temporary file of our own beside the target (never a name someone could have planted a link at),
        # renamed over it at the end; owner-only, as plant data at rest is
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
        tmp = Path(tmp_name)
        sink = os.fdopen(fd, "wb")
        if fmt is ExportFormat.parquet:
            writer = pq.ParquetWriter(sink, schema)
        else:  # the header is written by hand: pyarrow would quote it
            sink.write((",".join(schema.names) + "\n").encode())
            writer = pacsv.CSVWriter(sink, pa.schema([("timestamp", pa.string())] + list(schema)[1:]),
                                     write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
        try:
            for tag in points:
                for series in _pages(p, tag, s, e, buckets, agg.value):
                    n = len(series.ts)
                    if not n:
                        continue
                    ts = pa.array(series.ts, pa.timestamp("us", tz="UTC")) if fmt is ExportFormat.parquet else pa.array(_iso(series.ts))
                    extra = series.quality if buckets is None else series.count
                    writer.write_batch(pa.record_batch([ts, pa.array([tag] * n, pa.string()), pa.array(series.value, pa.float64()),
                                                        pa.array(extra, schema.field(third).type)], names=schema.names))
                    rows += n
            writer.close()
            sink.close()
            tmp.replace(out)
        except BaseException:
            writer.close()
            sink.close()
            tmp.unlink(missing_ok=True)
            raise
    typer.echo(f"wrote {rows:,} rows for {len(points)} point(s) to {out} ({fmt.value})", err=True)


def _pages(p, tag: str, start: int, end: int, buckets: Optional[int], agg: str):
    if buckets is not None:
        yield p.telemetry.query_downsample(tag, start, end, buckets=buckets, agg=agg)[0]
        return
    while start < end:
        series = p.telemetry.query_raw(tag, start, end, EXPORT_PAGE)
        yield series
        if len(series.ts) < EXPORT_PAGE:
            return
        start = int(series.ts[-1]) + 1
