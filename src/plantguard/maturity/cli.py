"""`plantguard alarm-report` (alarm-system performance against the ISA-18.2 / EEMUA 191 bands) and
`plantguard maturity report|assess|evidence` (the maturity assessment from the platform's own evidence).

Each reads either the store a configuration names (a stopped platform, or PostgreSQL) or, with --url, a running
server's API (the token from --token or PLANTGUARD_TOKEN): the embedded store is held by the server while it runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from plantguard.cli.common import EXIT_FAILED, EXIT_USAGE, ConfigOpt, DataDirOpt, _fail, _range, _services

UrlOpt = Annotated[Optional[str], typer.Option("--url", help="A running server (http://127.0.0.1:8000) instead of the store.")]
TokenOpt = Annotated[Optional[str], typer.Option("--token", help="API token for --url (default: $PLANTGUARD_TOKEN).")]


def _get(url: str, token: str | None, path: str, params: dict) -> tuple[bytes, str]:
    import httpx

    token = token or os.environ.get("PLANTGUARD_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.get(url.rstrip("/") + path, params={k: v for k, v in params.items() if v is not None}, headers=headers, timeout=120)
    except httpx.HTTPError as e:
        _fail(f"{url}: {e}")
    if r.status_code >= 400:
        try:
            msg = r.json().get("detail") or r.text
        except ValueError:
            msg = r.text
        _fail(f"{url}{path}: HTTP {r.status_code}: {str(msg)[:500]}")
    return r.content, r.headers.get("content-type", "")


def _maturity(services):
    m = services.maturity
    if m is None:
        _fail("the maturity capability is not installed", EXIT_FAILED)
    return m


def _print_report(r: dict) -> None:
    for name, f in r["positions"].items():
        if not f:
            continue
        typer.echo(f"position {name}: {f['alarms']} alarms in {f['periods_10min']} ten-minute periods")
        for key, label in (("per_10min", "alarms per 10 min"), ("per_day", "alarms per day"), ("flood_percent", "% of periods in flood"),
                           ("peak_10min", "peak in 10 min"), ("top10_percent", "% from the 10 most frequent"),
                           ("chattering", "chattering alarms"), ("fleeting", "fleeting alarms"), ("stale_max_day", "standing alarms (worst day)"),
                           ("high_urgent_percent", "% high or urgent")):
            v = f[key]
            typer.echo(f"  {label:30} {v['value']:>10g}  target {v['target']:g}, max {v['max']:g}: {v['verdict']}")
        typer.echo(f"  shelved: {f['shelved']['events']} times ({f['shelved']['alarms']} alarms); suppressed while shelved: "
                   f"{f['suppressed']['occurrences']}")
        if f["bad_actors"]:
            typer.echo(f"  bad actors ({f['bad_actor_count']}):")
            for b in f["bad_actors"][:20]:
                typer.echo(f"    {b['alarm']} [{b['priority']}] x{b['count']}: {'; '.join(b['rules'])}")


def alarm_report(config: ConfigOpt = None, data_dir: DataDirOpt = None, url: UrlOpt = None, token: TokenOpt = None,
                 start: Annotated[str, typer.Option(help="Start: ISO 8601, epoch ms, or now-7d.")] = "now-7d",
                 end: Annotated[str, typer.Option(help="End (exclusive).")] = "now",
                 position: Annotated[Optional[str], typer.Option(help="One operator position (default: all of them).")] = None,
                 as_json: Annotated[bool, typer.Option("--json", help="The whole report as JSON.")] = False) -> None:
    """Alarm-system performance per operator position against the ISA-18.2 / EEMUA 191 target bands, and the
    bad-actor alarms with the rule each one breaks."""
    if url is not None:
        body, _ = _get(url, token, "/api/maturity/alarm-performance", {"start": start, "end": end, "position": position})
        r = json.loads(body)
    else:
        s, e = _range(start, end)
        with _services(config, data_dir) as services:
            r = _maturity(services).alarm_report(s, e, position=position)
    if as_json:
        typer.echo(json.dumps(r, indent=1))
    else:
        _print_report(r)


maturity_app = typer.Typer(help="Process maturity from the platform's own evidence.", no_args_is_help=True)


@maturity_app.command("report")
def report(config: ConfigOpt = None, data_dir: DataDirOpt = None, url: UrlOpt = None, token: TokenOpt = None,
           out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.html or .pdf decides the format).")] = Path("maturity.html"),
           site: Annotated[Optional[str], typer.Option(help="Assess against this site's target profile.")] = None,
           assessment: Annotated[Optional[int], typer.Option(help="A stored assessment's id (default: one made now).")] = None) -> None:
    """Writes the self-contained assessment report (HTML with inline charts, or PDF)."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("html", "pdf"):
        _fail("--out ends in .html or .pdf", EXIT_USAGE)
    if url is not None:
        body, _ = _get(url, token, "/api/maturity/report", {"format": fmt, "site": site, "assessment": assessment})
    else:
        with _services(config, data_dir) as services:
            body = _maturity(services).report(assessment_id=assessment, site=site, fmt=fmt)
    out.write_bytes(body)
    typer.echo(f"wrote {out} ({len(body):,} bytes)")


@maturity_app.command("assess")
def assess(config: ConfigOpt = None, data_dir: DataDirOpt = None, url: UrlOpt = None, token: TokenOpt = None,
           site: Annotated[Optional[str], typer.Option(help="Assess against this site's target profile.")] = None,
           as_json: Annotated[bool, typer.Option("--json", help="The whole assessment as JSON.")] = False) -> None:
    """The level of each practice area now, the gap to target and the next actions (nothing is stored)."""
    if url is not None:
        body, _ = _get(url, token, "/api/maturity", {"site": site})
        a = json.loads(body)
    else:
        with _services(config, data_dir) as services:
            a = _maturity(services).assess(site=site)
    if as_json:
        typer.echo(json.dumps(a, indent=1))
        return
    for lv in a["levels"].values():
        tgt = f" (target {lv['target']})" if lv.get("target") else ""
        typer.echo(f"{lv['name']:28} level {lv['level']} {lv['level_name']}{tgt}")
        for x in lv["next_actions"]:
            typer.echo(f"    next: {x}")
    typer.echo(f"{a['summary']['missing_evidence']} evidence item(s) missing")


@maturity_app.command("evidence")
def evidence_cmd(config: ConfigOpt = None, data_dir: DataDirOpt = None, url: UrlOpt = None, token: TokenOpt = None,
                 as_json: Annotated[bool, typer.Option("--json", help="Every item as JSON.")] = False) -> None:
    """Every evidence item: what was measured, over which scope and period, or why it is missing."""
    if url is not None:
        items = json.loads(_get(url, token, "/api/maturity/evidence", {})[0])
    else:
        with _services(config, data_dir) as services:
            items = _maturity(services).evidence()
    if as_json:
        typer.echo(json.dumps(items, indent=1))
        return
    for e in items:
        val = f"{e['value']:g} {e['unit']}" if e["status"] == "measured" else f"missing: {e.get('reason')}"
        typer.echo(f"{e['id']:34} {val}  [{e['scope']}]")


def commands() -> list:
    return [("alarm-report", alarm_report), ("maturity", maturity_app)]
