"""Performance and evaluations: oee, kpi, and the models on public data (evaluate ...)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from plantguard.cli.common import (
    ConfigOpt, DataDirOpt, EXIT_USAGE, EndOpt, FormatOpt, OutputFormat, _errors, _fail, _range, _services,
    _start_help, app)

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
    with _services(config, data_dir) as p:
        out = p.performance.oee(line, s, e, by.value)
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
    with _services(config, data_dir) as p:
        out = p.performance.maintenance_kpis(asset, s, e)
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
