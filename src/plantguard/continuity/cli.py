"""`plantguard impact NODE...` (what if these fail: from the configuration file alone, nothing is opened) and
`plantguard drill SCENARIO` (an experiment on the simulated line, with its report)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from plantguard.cli.common import EXIT_FAILED, EXIT_USAGE, _fail, _load



def _h(s):
    return "never" if s is None else f"{s / 3600:.2f} h"


def impact(nodes: Annotated[list[str], typer.Argument(help="node ids or plant paths")],
           config: Annotated[Path, typer.Option("--config", "-c", help="Configuration file with a continuity: section.")],
           as_json: Annotated[bool, typer.Option("--json", help="The whole answer as JSON.")] = False) -> None:
    """What fails if these nodes of the dependency graph fail now: from the configuration file alone."""
    from plantguard.continuity.config import ContinuitySettings
    from plantguard.continuity.graph import Graph
    from plantguard.domain.index import PlantIndex

    cfg = _load(config)
    section = cfg.section("continuity") or ContinuitySettings()
    g = Graph.build(section, PlantIndex(cfg))
    unknown = [n for n in nodes if n not in g.index and n not in g.by_path]
    if unknown:
        _fail(f"not in the dependency graph: {', '.join(unknown)}", EXIT_FAILED)
    import time

    t0 = time.perf_counter()
    imp = g.impact({n: 0.0 for n in nodes})
    ms = (time.perf_counter() - t0) * 1e3
    if as_json:
        typer.echo(json.dumps({**imp.as_dict(), "elapsed_ms": round(ms, 3)}, indent=1))
        return
    typer.echo(f"if {', '.join(nodes)} fail(s) now ({len(imp.nodes)} node(s) affected, {ms:.2f} ms):")
    for s in sorted(imp.services.values(), key=lambda s: s.disrupted_at):
        typer.echo(f"  service {s.name}: below its MBCO after {_h(s.disrupted_at)}, down after {_h(s.down_at)}, "
                   f"{s.cost_per_hour:g} per hour; via {' -> '.join(s.path)}")
    if not imp.services:
        typer.echo("  no business service is affected")
    typer.echo(f"cost per hour now: {imp.cost_per_hour_at(0):g}")


def drill(scenario: Annotated[Optional[str], typer.Argument(help="scenario name (--list shows them)")] = None,
          list_: Annotated[bool, typer.Option("--list", help="List the scenarios.")] = False,
          reports: Annotated[Path, typer.Option(help="Where the report goes (.json, .md, .html).")] = Path("./drills"),
          plant: Annotated[str, typer.Option(help="simulated, or real (then only non-intrusive scenarios run).")] = "simulated",
          seed: Annotated[int, typer.Option(help="Simulator seed.")] = 7) -> None:
    """Runs a continuity drill on the simulated plant and writes its report (exit 1 when it fails)."""
    from plantguard.continuity.drills import DrillRefused
    from plantguard.sim.drills import SCENARIOS, DrillPlant, write_report

    if list_ or scenario is None:
        for name, what in SCENARIOS.items():
            typer.echo(f"{name:18} {what} (intrusive)")
        return
    if plant not in ("simulated", "real"):
        _fail("--plant is simulated or real", EXIT_USAGE)
    if scenario not in SCENARIOS:
        _fail(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}", EXIT_USAGE)
    if plant == "real":
        _fail(f"{scenario} injects a failure: it is refused against a real plant (only non-intrusive drills run there)", EXIT_FAILED)
    with tempfile.TemporaryDirectory(prefix="plantguard-drill-") as tmp:
        dp = DrillPlant(tmp, seed=seed)
        try:
            j = dp.drill(scenario, plant=plant)
        except DrillRefused as e:
            _fail(str(e), EXIT_FAILED)
        finally:
            dp.close()
    paths = write_report(j, reports)
    typer.echo(f"drill {scenario}: {j.status.upper()}; detection {j.detection_s if j.detection_s is not None else '-'} s, "
               f"recovery {j.recovery_s if j.recovery_s is not None else '-'} s, data lost {j.data.get('lost_readings')} reading(s)")
    for s in j.services:
        typer.echo(f"  {s['service']}: disrupted {s['disrupted_s']:.0f} s (RTO {s['rto_s']:.0f} s), lost {s['lost_s']:.0f} s "
                   f"(RPO {s['rpo_s']:.0f} s): {'pass' if s['passed'] else 'FAIL'}")
    for r in j.reasons:
        typer.echo(f"  why: {r}")
    typer.echo(f"report: {paths['html']} (and .md, .json)")
    if j.status != "passed":
        raise typer.Exit(EXIT_FAILED)


def restore(backup: Annotated[Path, typer.Argument(help="a backup directory (under <data_dir>/backups)")],
            config: Annotated[Path, typer.Option("--config", "-c", help="Configuration file naming the (empty) store to restore into.")]) -> None:
    """Restores a backup into the empty store the configuration names (a new data directory, a new database)."""
    from plantguard.cli.common import _errors
    from plantguard.launch import restore_backup

    cfg = _load(config)
    with _errors():
        out = restore_backup(backup, cfg.storage)
    typer.echo(f"restored {out['raw_rows']:,} readings of {out['points']} points from {backup}")


def commands() -> list:
    return [("impact", impact), ("drill", drill), ("restore", restore)]
