"""The maturity capability: the `maturity:` section, its tables, the service, its routes, pages and commands."""

from __future__ import annotations

from plantguard.capabilities import Capability, Context, Parts
from plantguard.maturity.config import MaturitySettings
from plantguard.store.migrations import Migration
from plantguard.store.protocols import AlarmStore, ReadingsStore, RollupStore, SqlStore

TABLES = (
    "CREATE TABLE maturity_assessments (id BIGINT PRIMARY KEY, at_us BIGINT NOT NULL, site TEXT NOT NULL, actor TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE maturity_attestations (id BIGINT PRIMARY KEY, indicator TEXT NOT NULL, signer TEXT NOT NULL, at_us BIGINT NOT NULL, "
    "expires_us BIGINT NOT NULL, statement TEXT NOT NULL, actor TEXT NOT NULL)",
    "CREATE TABLE maturity_rollouts (name TEXT PRIMARY KEY, updated_us BIGINT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE maturity_evaluations (id BIGINT PRIMARY KEY, rollout TEXT NOT NULL, phase TEXT NOT NULL, at_us BIGINT NOT NULL, "
    "verdict TEXT NOT NULL, actor TEXT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE maturity_actions (id BIGINT PRIMARY KEY, source_key TEXT NOT NULL UNIQUE, state TEXT NOT NULL, updated_us BIGINT NOT NULL, data TEXT NOT NULL)",
    "CREATE TABLE maturity_training (id BIGINT PRIMARY KEY, person TEXT NOT NULL, skill TEXT NOT NULL, completed_us BIGINT NOT NULL, "
    "expires_us BIGINT, actor TEXT NOT NULL, at_us BIGINT NOT NULL)",
    "CREATE TABLE maturity_findings (check_id TEXT NOT NULL, device TEXT NOT NULL, first_us BIGINT NOT NULL, PRIMARY KEY (check_id, device))",
)


def check(section: MaturitySettings, cfg) -> list[tuple[str, str]]:
    from plantguard.domain.index import PlantIndex
    from plantguard.maturity.checks import check as check_section

    return check_section(section, PlantIndex(cfg))


def build(ctx: Context) -> Parts:
    from plantguard.maturity.service import MaturityService

    settings = ctx.config or MaturitySettings()
    posture = ctx.uses("posture")
    svc = MaturityService(settings, store=ctx.store, clock=ctx.clock, index=ctx.index, points=ctx.points, audit=ctx.audit,
                          model=ctx.uses("model"), alarms=ctx.uses("alarms"), analytics=ctx.uses("analytics"),
                          performance=ctx.uses("performance"), continuity=ctx.uses("continuity"), posture=posture,
                          broker=ctx.uses("broker_credentials"), ca=ctx.uses("ca"),
                          credential_max_age_days=posture.settings.credential_max_age_days if posture is not None else None)
    return Parts(services={"maturity": svc})


def routers() -> list:
    from plantguard.maturity import api

    return [api.router]


def pages() -> list:
    from plantguard.maturity import pages

    return [pages.router]


def commands() -> list:
    from plantguard.maturity import cli

    return cli.commands()


CAPABILITY = Capability(
    "maturity", section=MaturitySettings, build=build, stores=(SqlStore, AlarmStore, RollupStore, ReadingsStore),
    routers=routers, pages=pages, commands=commands, check=check,
    migrations=(Migration("0500_maturity", embedded=TABLES, postgres=TABLES, owner="maturity"),))
