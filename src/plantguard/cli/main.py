"""The `plantguard` command: a thin shell over Platform and the connectors.

Commands translate plantguard errors into a message on stderr and an exit status; they hold no logic of their own.
Exit status: 0 success, 1 the command failed (unknown point, invalid input, store unavailable, invalid file given
to check-config), 2 invalid command line or invalid configuration file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from contextlib import contextmanager
from enum import Enum
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Iterator, NoReturn, Optional

import numpy as np
import typer
from pydantic import ValidationError

from plantguard.domain.model import PlantConfig
from plantguard.config import load_config
from plantguard.errors import ConfigError, PlantguardError, StoreUnavailable
from plantguard.services.offline import AGGREGATES
from plantguard.timeutil import now_us

EXIT_FAILED = 1
EXIT_USAGE = 2
QUALITY_NAMES = ("good", "uncertain", "bad")
EXPORT_PAGE = 200_000  # raw readings fetched per query while exporting

app = typer.Typer(
    name="plantguard",
    help="Industrial IoT operations platform: ingest, store, alarm and analyse plant telemetry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

Agg = Enum("Agg", {a: a for a in AGGREGATES}, type=str)  # the aggregates the store implements


# Options shared by the commands that read a store
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="Configuration file naming the store.")]
DataDirOpt = Annotated[Optional[Path], typer.Option(help="Embedded store directory (instead of --config).")]
EndOpt = Annotated[str, typer.Option(help="End (exclusive), same forms as --start.")]


def _start_help(default: str) -> str:
    return f"Start (inclusive): ISO 8601 with offset, epoch ms, or {default} style."


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output format.")]


class CsvLayout(str, Enum):
    auto = "auto"
    long = "long"
    wide = "wide"


class ExportFormat(str, Enum):
    csv = "csv"
    parquet = "parquet"


# -- error translation at the edge ------------------------------------------------------------------------------------
def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _store_hint(e: StoreUnavailable) -> NoReturn:
    _fail(f"{e}\nIf a plantguard server is running on this store, use its HTTP API instead "
          "(e.g. GET /api/telemetry/raw?point=...), or stop the server first.")


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except StoreUnavailable as e:
        _store_hint(e)
    except PlantguardError as e:
        _fail(str(e))


def _load(path: Path) -> PlantConfig:
    try:
        return load_config(path)
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _time(text: str, now: int, name: str) -> int:
    from plantguard.timeutil import parse_time  # one parser for the API and the CLI

    with _errors():
        return parse_time(text, now, name)


def _range(start: str, end: str) -> tuple[int, int]:
    now = now_us()
    s, e = _time(start, now, "--start"), _time(end, now, "--end")
    if e <= s:
        _fail("--end must be after --start", EXIT_USAGE)
    return s, e


@contextmanager
def _platform(config: Optional[Path], data_dir: Optional[Path]):
    """A Platform over the store named by --config, or by --data-dir (then its stored plant model is used, so
    opening it changes nothing). No writer thread and no alarm engine: the caller owns the pipeline alone."""
    from plantguard.runtime import Platform

    if (config is None) == (data_dir is None):
        _fail("give either --config FILE or --data-dir DIR", EXIT_USAGE)
    with _errors():
        if config is not None:
            from plantguard.model_source import ModelFile

            # the same rule as `serve`: the stored model wins unless the file changed (and no API edit is newer)
            platform = Platform(_load(config), alarms=False, analytics=False, model_file=ModelFile.of(config))
        else:
            from plantguard.errors import NotFound
            from plantguard.services.offline import platform_for_data_dir

            try:
                platform = platform_for_data_dir(data_dir)
            except NotFound as e:
                _fail(str(e))
    try:
        with _errors():
            yield platform
    finally:
        platform.stop()


def _iso(ts: np.ndarray) -> np.ndarray:
    """ISO 8601 UTC text, with fractional digits only as far as the values need them."""
    ts = np.asarray(ts, np.int64)
    unit = "s" if (ts % 1_000_000 == 0).all() else "ms" if (ts % 1000 == 0).all() else "us"
    return np.datetime_as_string(ts.astype("datetime64[us]"), unit=unit, timezone="UTC")


# -- commands ---------------------------------------------------------------------------------------------------------
@app.command()
def demo(
    duration: Optional[float] = typer.Option(None, help="Stop after this many seconds (default: run until Ctrl-C)."),
    speed: float = typer.Option(1.0, help="Pace of the history backfill in simulated seconds per second; 1 or less: as fast as possible."),
    history: float = typer.Option(6.0, help="Hours of simulated history written before going live."),
    host: str = typer.Option("127.0.0.1", help="Address the demo's HTTP API listens on."),
    port: int = typer.Option(8000, help="Port of the demo's HTTP API."),
    data_dir: Path = typer.Option(Path("./data/demo"), help="Store directory of the demo."),
    seed: int = typer.Option(42, help="Random seed: the same seed gives the same plant behaviour."),
    mqtt_host: Optional[str] = typer.Option(None, help="Publish the simulated devices through this MQTT broker (default: in-process)."),
    mqtt_port: int = typer.Option(1883, help="Port of the MQTT broker given by --mqtt-host."),
    field_devices: bool = typer.Option(True, "--field-devices/--no-field-devices",
                                       help="Serve the PLC over Modbus TCP and the controllers over OPC UA on loopback ports, read by the connectors."),
) -> None:
    """Run a simulated bottling plant with the API, alarms and faults, to explore plantguard."""
    try:
        from plantguard.sim.demo import run_demo
    except ModuleNotFoundError as e:
        if e.name not in ("plantguard.sim.demo", "plantguard.sim"):
            raise
        _fail("the demo is not available in this installation (plantguard.sim.demo is missing)")
    with _errors():
        run_demo(duration=duration, speed=speed, history=history, host=host, port=port,
                 data_dir=str(data_dir), seed=seed, mqtt_host=mqtt_host, mqtt_port=mqtt_port,
                 field_devices=field_devices, private_broker=True)


@app.command()
def serve(
    config: Path = typer.Option(..., "--config", "-c", help="Plant configuration file (YAML)."),
    host: Optional[str] = typer.Option(None, help="Listen address (default: api.host of the configuration)."),
    port: Optional[int] = typer.Option(None, help="Listen port (default: api.port of the configuration)."),
    log_level: str = typer.Option("info", help="Server log level: critical, error, warning, info, debug."),
    force_config: bool = typer.Option(False, "--force-config", help="Apply the file's plant model even over newer edits made through the API."),
    model_version: Optional[int] = typer.Option(None, "--model-version", help="Start from this stored plant model version (see `plantguard model-history`)."),
    login_link: bool = typer.Option(False, "--login-link", help="Print a one-time login link for the admin (valid 24 h)."),
) -> None:
    """Run the platform: ingest, storage, alarms and the HTTP API, until SIGINT or SIGTERM.

    The plant model stored in the data directory is the truth once initialised: edits made through the API
    survive restarts. The file's hierarchy is applied when the file changed since it was last applied, and never
    over newer API edits unless --force-config is given."""
    cfg = _load(config)
    import uvicorn

    from plantguard.api.app import create_app
    from plantguard.runtime import Platform

    host = host or cfg.api.host
    port = port or cfg.api.port
    received: list[int] = []

    def on_signal(sig, _frame) -> None:
        received.append(sig)

    # uvicorn handles SIGINT/SIGTERM while it serves and re-raises them afterwards; with our handlers in place the
    # re-raised signal lands here instead of killing the process before the platform has stopped.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = False
    try:
        from plantguard.model_source import ModelFile

        tls = bool(cfg.api.tls_cert and cfg.api.tls_key)
        if not _is_loopback(host) and not tls:
            _fail(f"refusing to listen on {host} without TLS: passwords, session cookies and tokens would cross the network "
                  "in clear. Set api.tls_cert and api.tls_key (see docs/security.md#tls), or listen on 127.0.0.1 behind a "
                  "proxy that terminates TLS.")
        with _errors():
            platform = Platform(cfg, model_file=ModelFile.of(config, force=force_config, version=model_version))
        for line in platform.model_messages:
            typer.echo(line, err=True)
        with _errors():
            try:
                password = platform.security.ensure_admin(os.environ.get("PLANTGUARD_ADMIN_PASSWORD"))
            except PlantguardError:
                platform.stop()
                raise
        if password is not None:
            typer.echo(f"plantguard: first start: created the user 'admin' with the password {password}\n"
                       "  It is shown only this once: log in and change it, or set PLANTGUARD_ADMIN_PASSWORD before the first start.",
                       err=True)
        if login_link:
            admin = next(u.name for u in platform.security.users() if u.role.value == "admin" and not u.disabled)
            typer.echo(f"plantguard: one-time login link (24 h): http{'s' if tls else ''}://{host}:{port}/login?link="
                       f"{platform.security.login_link(admin)}", err=True)
        try:
            platform.start()
            server = uvicorn.Server(uvicorn.Config(create_app(platform), host=host, port=port, log_level=log_level, lifespan="on",
                                                   ssl_certfile=cfg.api.tls_cert if tls else None,
                                                   ssl_keyfile=cfg.api.tls_key if tls else None))
            n = sum(1 for _ in cfg.iter_points())
            typer.echo(f"plantguard: {n} points, store {platform.services.status.store_kind()}, serving on http{'s' if tls else ''}://{host}:{port}", err=True)
            if not received:
                try:
                    server.run()
                except SystemExit:  # uvicorn exits when it cannot bind
                    pass
                started = server.started
            else:
                started = True
        finally:
            platform.stop()  # sources stop, the pipeline drains, the store closes
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if not started:
        _fail(f"the HTTP server could not start on {host}:{port} (is the port already in use?)")
    typer.echo("plantguard: stopped cleanly", err=True)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@app.command("model-history")
def model_history(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Configuration file naming the store."),
    data_dir: Optional[Path] = typer.Option(None, help="Embedded store directory (instead of --config)."),
    limit: int = typer.Option(20, help="How many versions, newest first."),
) -> None:
    """List the stored plant model versions: when, from where (file, api, rollback) and by whom."""
    from plantguard.errors import NotFound
    from plantguard.services.offline import model_versions

    if (config is None) == (data_dir is None):
        _fail("give either --config FILE or --data-dir DIR", EXIT_USAGE)
    with _errors():
        try:
            rows = model_versions(storage=_load(config).storage if config is not None else None, data_dir=data_dir,
                                  limit=limit)
        except NotFound as e:
            _fail(str(e))
    from plantguard.timeutil import iso

    if not rows:
        typer.echo("no plant model stored yet")
        return
    for r in rows:
        origin = r.get("origin") or "unknown"
        extra = f" sha256 {r['file_sha'][:12]}" if r.get("file_sha") else ""
        who = f" by {r['actor']}" if r.get("actor") else ""
        typer.echo(f"version {r['version']:>5}  {iso(r['saved_at'])}  {origin}{extra}{who}")


@app.command()
def init(
    path: Path = typer.Argument(Path("plantguard.yaml"), help="Where to write the configuration."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write the documented example configuration (a small bottling line) to start from."""
    if path.exists() and not force:
        _fail(f"{path} already exists (use --force to overwrite it)")
    text = files("plantguard").joinpath("examples", "plant.yaml").read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {path}; check it with: plantguard check-config {path}")
    csv_path = path.parent / "historian.csv"
    if not csv_path.exists() or force:
        from plantguard.examples.historian import write_example

        rows = write_example(csv_path, now_us())
        typer.echo(f"wrote {csv_path}: an example historian export of the feed pump, {rows} rows of the last 24 hours in "
                   f"Europe/Paris wall-clock time; import it with: plantguard import-csv {csv_path} --config {path} "
                   "--format wide --tz Europe/Paris")


@app.command("check-config")
def check_config(file: Path = typer.Argument(..., help="Configuration file to validate.")) -> None:
    """Validate a configuration file and list every problem with its field path."""
    try:
        cfg = load_config(file)
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(EXIT_FAILED) from None
    n_dev = sum(1 for _ in cfg.iter_devices())
    n_pts = sum(1 for _ in cfg.iter_points())
    plural = lambda n, w: f"{n} {w}{'' if n == 1 else 's'}"  # noqa: E731
    typer.echo(f"{file}: OK: {plural(len(cfg.sites), 'site')}, {plural(n_dev, 'device')}, {plural(n_pts, 'point')}")


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
    with _platform(config, data_dir) as p:
        if buckets is None:
            series = p.query_raw(point, s, e, limit)
            third = ("quality", [QUALITY_NAMES[q] if q < 3 else str(q) for q in series.quality.tolist()])
            extra: dict = {}
        else:
            series, tier, width = p.services.telemetry.query_downsample(point, s, e, buckets=buckets, agg=agg.value)
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
    from plantguard.services.offline import import_csv
    from plantguard.runtime import Platform

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
        platform = Platform(cfg, alarms=False, analytics=False)
    try:
        with _errors(), Progress(TextColumn("importing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("import", total=file.stat().st_size)
            rep = import_csv(platform, file, opt, max_problems=max_errors,
                             progress=lambda done: bar.update(task, completed=done))
    finally:
        platform.stop()
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
    with _platform(config, data_dir) as p:
        for tag in points:
            p.pid_of(tag)  # unknown points fail before anything is written
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
        yield p.services.telemetry.query_downsample(tag, start, end, buckets=buckets, agg=agg)[0]
        return
    while start < end:
        series = p.query_raw(tag, start, end, EXPORT_PAGE)
        yield series
        if len(series.ts) < EXPORT_PAGE:
            return
        start = int(series.ts[-1]) + 1


@app.command()
def gateway(
    config: Path = typer.Option(..., "--config", "-c", help="Configuration file: connectors plus a 'gateway' section (id, central_url, ...)."),
    log_level: str = typer.Option("info", help="Log level: critical, error, warning, info, debug."),
) -> None:
    """Run connectors at the edge into a durable disk queue and forward it to a central plantguard, until SIGINT or SIGTERM."""
    import logging
    import threading

    from plantguard.connectors.gateway.runner import Gateway, load_gateway_config, status_line

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per forwarded request would drown the rest
    with _errors():
        settings, cfg = load_gateway_config(config)
        gw = Gateway(settings, cfg)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _errors():
            gw.start()
        typer.echo(f"plantguard gateway {settings.id}: queue in {settings.data_dir}, forwarding to {settings.central_url}", err=True)
        stop.wait()
    finally:
        gw.stop()  # sources stop, the forwarder stops, the queue is fsynced and closed: nothing queued is lost
        for s, h in previous.items():
            signal.signal(s, h)
    typer.echo(status_line(gw.health()), err=True)
    typer.echo("plantguard gateway: stopped cleanly", err=True)


class ReportFormat(str, Enum):
    md = "md"
    html = "html"
    both = "both"


@app.command()
def assess(
    config: Path = typer.Option(..., "--config", "-c", help="Configuration file whose connectors are assessed."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Report path without suffix; .md and/or .html are added."),
    fmt: ReportFormat = typer.Option(ReportFormat.both, "--format", help="md, html or both."),
    max_rps: float = typer.Option(50.0, "--max-rps", min=0.1, help="Requests per second a probe sends to one device at most."),
    duration: float = typer.Option(5.0, "--duration", min=0.1, help="Seconds of measuring per device link."),
) -> None:
    """Probe every configured connector read-only and write a compatibility report; exit status 1 when a link is
    unreachable, an item does not read or the planned polling exceeds what a device sustains."""
    from plantguard.assess import assess as run_assessment
    from plantguard.assess import load_connectors, render_html, render_markdown

    with _errors():
        report = run_assessment(load_connectors(config), max_rps=max_rps, duration_s=duration, source=str(config))
    stem = out.with_suffix("") if out.suffix.lower() in (".md", ".html", ".htm") else out
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, suffix, render in (("md", ".md", render_markdown), ("html", ".html", render_html)):
        if fmt.value in (kind, "both"):
            path = stem.with_name(stem.name + suffix)
            path.write_text(render(report), encoding="utf-8")
            written.append(str(path))
    for la in report.links:
        r = la.result
        typer.echo(f"{la.status:<16} {la.connector or r.connector} {r.link} ({r.endpoint})" + (f": {la.findings[0]}" if la.findings else ""))
    for s in report.skipped:
        typer.echo(f"{'not assessable':<16} {s.connector} ({s.type}): {s.reason}")
    c = report.counts()
    typer.echo(f"{'PASS' if report.ok else 'FAIL'}: " + ", ".join(f"{n} {k}" for k, n in c.items() if n) + f"; report: {', '.join(written)}")
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


# -- analytics ------------------------------------------------------------------------------------------------------
evaluate_app = typer.Typer(help="Run the anomaly and remaining-useful-life models on public labelled data sets and print "
                                "the benchmark's own metrics next to the published results.", no_args_is_help=True)
app.add_typer(evaluate_app, name="evaluate")


class OeeBy(str, Enum):
    shift = "shift"
    day = "day"
    hour = "hour"
    total = "total"


def _shared_dataset(env: str, *parts: str) -> Path:
    import os

    if os.environ.get(env):
        return Path(os.environ[env])
    return Path(__file__).resolve().parents[3].parent.joinpath("shared", "datasets", *parts)


@evaluate_app.command("skab")
def evaluate_skab_cmd(
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of SKAB-format files (';'-separated, datetime first, "
                                        "anomaly and changepoint labels); default $PLANTGUARD_SKAB_DIR or ../shared/datasets/skab/data."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json (csv is not offered here)."),
) -> None:
    """SKAB pump test bed: F1, false- and missed-alarm rates, NAB changepoint scores (leaderboard protocol: the first
    400 rows of each file train, the rest is scored)."""
    from plantguard.analytics.evaluation.skab import evaluate_skab, format_report

    path = data or _shared_dataset("PLANTGUARD_SKAB_DIR", "skab", "data")
    if not path.exists():
        _fail(f"no SKAB data at {path}: get it from github.com/waico/SKAB (folder data/) and pass --data", EXIT_USAGE)
    from plantguard.analytics.evaluation.harness import evaluate_skab_windowed, format_skab_windowed

    with _errors():
        report = evaluate_skab(path)
        windowed = evaluate_skab_windowed(path)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({"f1": report.f1, "far_percent": report.far, "mar_percent": report.mar, "nab": report.nab,
                               "missed_changepoints": report.missed_changepoints, "false_changepoints": report.false_changepoints,
                               "mean_delay_s": report.mean_delay_s, "files": report.files, "rows": report.rows,
                               "runtime_s": report.runtime_s,
                               "windowed_default_asset": windowed.asset.normalised,
                               "windowed_default_points": windowed.points.normalised}, default=float))
    else:
        typer.echo(format_report(report))
        typer.echo("")
        typer.echo(format_skab_windowed(windowed))


@evaluate_app.command("streams")
def evaluate_streams_cmd(
    seeds: int = typer.Option(3, min=1, max=50, help="Streams per kind (seeds 0..N-1)."),
    length: int = typer.Option(20_000, min=2_000, max=1_000_000, help="Readings per stream."),
) -> None:
    """The default anomaly wiring, and the former default for comparison, on labelled synthetic plant streams (level
    shifts, daily and shift seasonality, quantised signals, drifts, spikes, stuck sensors, restarts): windowed scores
    with the null and perfect baselines, per kind, and onset delays."""
    from plantguard.analytics.evaluation.harness import WIRINGS, evaluate_streams, format_streams

    with _errors():
        reports = [evaluate_streams(w, tuple(range(seeds)), length) for w in WIRINGS]
    typer.echo(format_streams(reports))


@evaluate_app.command("false-alarms")
def evaluate_false_alarms_cmd(
    weeks: float = typer.Option(1.0, min=0.01, max=10.0, help="Weeks of 1 Hz normal data per synthetic point."),
    seeds: int = typer.Option(5, min=1, max=50, help="Synthetic points per kind."),
    data: Optional[Path] = typer.Option(None, "--skab", help="SKAB data folder for its anomaly-free recording; default "
                                        "$PLANTGUARD_SKAB_DIR or ../shared/datasets/skab/data (skipped if absent)."),
) -> None:
    """Alarm episodes per point per week of the default anomaly wiring on normal data (aim: at most one)."""
    from plantguard.analytics.evaluation.harness import false_alarms, format_false_alarms

    path = data or _shared_dataset("PLANTGUARD_SKAB_DIR", "skab", "data")
    with _errors():
        r = false_alarms(weeks, seeds, path if path.exists() else None)
    typer.echo(format_false_alarms(r))


@evaluate_app.command("cmapss")
def evaluate_cmapss_cmd(
    data: Optional[Path] = typer.Option(None, "--data", help="Folder holding train_<subset>.txt, test_<subset>.txt and "
                                        "RUL_<subset>.txt; default $PLANTGUARD_CMAPSS_DIR or ../shared/datasets/cmapss."),
    subset: str = typer.Option("FD001", help="File suffix of the subset (FD001..FD004 or any set in the same format)."),
    window: Optional[int] = typer.Option(None, min=2, help="Use this window (cycles) instead of choosing among 30/60/90/120 "
                                         "by cross-validation on the training units (faster)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json (csv is not offered here)."),
) -> None:
    """NASA C-MAPSS turbofan run-to-failure data: trains the remaining-useful-life model on the training units (model
    choice by cross-validation on them only), then prints RMSE and the NASA score at the last cycle of each test unit."""
    from plantguard.analytics.evaluation.cmapss import evaluate_cmapss, find_cmapss, format_report

    path = data or _shared_dataset("PLANTGUARD_CMAPSS_DIR", "cmapss")
    with _errors():
        kw = {"grid": [{"window": window}]} if window is not None else {}
        report = evaluate_cmapss(find_cmapss(path, subset), **kw)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({"subset": report.subset, "rmse": report.rmse, "nasa_score": report.score,
                               "rmse_clipped": report.rmse_clipped, "coverage": report.coverage, "level": report.level,
                               "train_seconds": report.train_seconds, "select_seconds": report.select_seconds,
                               "cv_rmse": report.cv_rmse, "config": report.config}, default=float))
    else:
        typer.echo(format_report(report))


def _kv_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in rows:
        t.add_row(k, v)
    Console(width=120).print(t)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _dur(x) -> str:
    return "-" if x is None else f"{x / 3600:.2f} h" if x >= 3600 else f"{x / 60:.1f} min"


@app.command()
def oee(
    line: str = typer.Argument(..., help="Line path: site/area/line."),
    start: str = typer.Option("now-24h", help=_start_help("now-24h")),
    end: EndOpt = "now",
    by: OeeBy = typer.Option(OeeBy.shift, help="Periods: the site's shifts, days, hours, or the whole window."),
    fmt: FormatOpt = OutputFormat.table,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """OEE of a line per shift, day or hour: availability x performance x quality, with the six big losses."""
    s, e = _range(start, end)
    with _platform(config, data_dir) as p:
        out = p.services.performance.oee(line, s, e, by.value)
    rows = out["periods"] + ([out["total"]] if len(out["periods"]) > 1 else [])
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(out, default=float))
        return
    cols = ["period", "status", "availability", "performance", "quality", "OEE", "good", "bad", "breakdowns", "setup",
            "minor stops", "speed loss", "defects", "startup"]
    lines = []
    for r in rows:
        lo = r["losses"]
        lines.append([r["label"], r["status"], _pct(r["availability"]), _pct(r["performance"]), _pct(r["quality"]),
                      _pct(r["oee"]), f"{r['good']:g}", f"{r['bad']:g}"] +
                     [_dur(lo[k]) for k in ("breakdowns_s", "setup_s", "minor_stops_s", "reduced_speed_s", "defects_s", "startup_rejects_s")])
    if fmt is OutputFormat.csv:
        typer.echo(",".join(cols))
        for ln in lines:
            typer.echo(",".join(ln))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"OEE of {line} by {by.value} ({out['timezone']}; counted at {out['counting_asset']}, "
                    f"ideal {out['ideal_rate_per_h']:g} units/h)")
    for c in cols:
        t.add_column(c, justify="left" if c in ("period", "status") else "right")
    for ln in lines:
        t.add_row(*ln)
    Console(width=200).print(t)


@app.command()
def kpi(
    asset: str = typer.Argument(..., help="Asset path: site/area/line/asset (the asset needs the line's state point)."),
    start: str = typer.Option("now-30d", help=_start_help("now-30d")),
    end: EndOpt = "now",
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json (csv prints the table's rows)."),
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Maintenance KPIs (MTBF, MTTR, availability) and quality KPIs (defect rate, first-pass yield) of one machine."""
    s, e = _range(start, end)
    with _platform(config, data_dir) as p:
        out = p.services.performance.maintenance_kpis(asset, s, e)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps(out, default=float))
        return
    m, q = out["maintenance"], out["quality"] or {}
    rows = [("status", m["status"]), ("failures", str(m["failures"])), ("repairs", str(m["repairs"])),
            ("operating time", _dur(m["operating_s"])),
            ("MTBF", _dur(m["mtbf_s"]) if m["mtbf_s"] is not None else f"> {_dur(m['mtbf_lower_bound_s'])} (no failure yet)"),
            ("MTTR", _dur(m["mttr_s"])), ("availability", _pct(m["availability"]))]
    if q:
        rows += [("defect rate", _pct(q.get("defect_rate"))), ("first-pass yield", _pct(q.get("first_pass_yield")))]
    if fmt is OutputFormat.csv:
        typer.echo("figure,value")
        for k, v in rows:
            typer.echo(f"{k},{v}")
        return
    _kv_table(f"KPIs of {asset}", rows)


from plantguard.cli.security import audit_app, ca_app, devices_app, keys_app, users_app  # noqa: E402 - after the helpers they use

app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(devices_app, name="devices")
app.add_typer(ca_app, name="ca")
app.add_typer(keys_app, name="keys")


def main() -> None:  # pragma: no cover - console entry for `python -m plantguard.cli.main`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
