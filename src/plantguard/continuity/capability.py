"""The continuity capability: the `continuity:` section, its tables, the service, its routes, pages and commands."""

from __future__ import annotations

from pathlib import Path

from plantguard.capabilities import Capability, Context, Parts
from plantguard.continuity.config import ContinuitySettings
from plantguard.store.migrations import Migration
from plantguard.store.protocols import BackupStore, SqlStore

TABLES = (
    "CREATE TABLE continuity_incidents (id BIGINT PRIMARY KEY, state TEXT NOT NULL, updated_us BIGINT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE continuity_runs (id BIGINT PRIMARY KEY, state TEXT NOT NULL, updated_us BIGINT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE continuity_work_orders (id BIGINT PRIMARY KEY, at_us BIGINT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE continuity_switches (grp TEXT PRIMARY KEY, active TEXT NOT NULL, at_us BIGINT NOT NULL, by_actor TEXT NOT NULL)",
    "CREATE TABLE continuity_graphs (version BIGINT PRIMARY KEY, at_us BIGINT NOT NULL, actor TEXT NOT NULL, "
    "origin TEXT NOT NULL, sha TEXT NOT NULL, doc TEXT NOT NULL)",
)


def check(section: ContinuitySettings, cfg) -> list[tuple[str, str]]:
    """The graph against the plant model, and the playbooks' writes against the connectors' configuration."""
    from plantguard.connectors.registry import writable_tags
    from plantguard.continuity.graph import validate
    from plantguard.continuity.playbooks import check_playbook
    from plantguard.domain.index import PlantIndex
    from plantguard.errors import ConfigError

    index = PlantIndex(cfg)
    out = validate(section, index)
    try:
        allowed = writable_tags(cfg.connectors)
    except ConfigError:  # the connectors' own problems are reported by their validation
        allowed = set()

    def writable(point: str) -> str | None:
        if index.point(point) is None:
            return f"{point} is not a point of the plant model"
        return None if point in allowed else "no connector configures it writable (writable: true)"

    for k, pb in enumerate(section.playbooks):
        out += [(f"playbooks[{k}].{p}", m) for p, m in check_playbook(pb, writable=writable)]
    return out


def build(ctx: Context) -> Parts:
    from plantguard.continuity.service import ContinuityService
    from plantguard.events import AlarmChanged

    settings = ctx.config or ContinuitySettings()
    alarms = ctx.uses("alarms")
    svc = ContinuityService(settings, store=ctx.store, clock=ctx.clock, index=ctx.index, audit=ctx.audit,
                            alarms=alarms, quarantine=ctx.uses("quarantine"), telemetry=ctx.uses("telemetry"),
                            write_point=ctx.write_point, writable=ctx.writable,
                            reports_dir=Path(settings.drills.reports_dir) if settings.drills.reports_dir else ctx.data_dir / "drills",
                            backups_dir=ctx.data_dir / "backups")
    # inline: the handler only appends to the service's bounded queue, so an alarm flood costs the publisher O(1)
    ctx.bus.subscribe("continuity-alarms", svc.on_alarm, AlarmChanged, inline=True)
    if ctx.uses("behaviour") is not None:
        from plantguard.security.events import SecurityEventRaised

        ctx.bus.subscribe("continuity-security", svc.on_security, SecurityEventRaised, inline=True)
    return Parts(services={"continuity": svc}, on_start=[svc.start], on_stop=[svc.stop],
                 on_model=[lambda cfg: svc.rebuild()])


def routers() -> list:
    from plantguard.continuity import api

    return [api.router]


def pages() -> list:
    from plantguard.continuity import pages

    return [pages.router]


def commands() -> list:
    from plantguard.continuity import cli

    return cli.commands()


CAPABILITY = Capability(
    "continuity", section=ContinuitySettings, build=build, stores=(SqlStore, BackupStore), routers=routers, pages=pages,
    commands=commands, check=check,
    migrations=(Migration("0400_continuity", embedded=TABLES, postgres=TABLES, owner="continuity"),))
