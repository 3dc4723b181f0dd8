"""At the edge: the gateway and the assessment of a device before connecting."""

from __future__ import annotations

import signal
from enum import Enum
from pathlib import Path

import typer

from plantguard.cli.common import EXIT_FAILED, _errors, app


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
