"""The seam: its config section, its table, what it builds from its context, its routes and page."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from plantguard.capabilities import Capability, Context, Parts
from plantguard.store.migrations import Migration
from plantguard.store.protocols import SqlStore


class ShiftNotesSettings(BaseModel):
    """The `shift_notes:` section of the configuration file."""

    model_config = ConfigDict(extra="forbid")
    max_length: int = Field(2000, ge=10, le=20_000, description="longest note, in characters")


_TABLE = ("CREATE TABLE shift_notes (id BIGINT PRIMARY KEY, line TEXT NOT NULL, at_us BIGINT NOT NULL, "
          "author TEXT NOT NULL, text TEXT NOT NULL)",)


def build(ctx: Context) -> Parts:
    from plantguard_shift_notes.service import ShiftNotes

    notes = ShiftNotes(ctx.store, ctx.config or ShiftNotesSettings(), clock=ctx.clock, index=ctx.index, audit=ctx.audit)
    return Parts(services={"shift_notes": notes})


def routers() -> list:
    from plantguard_shift_notes import api

    return [api.router]


def pages() -> list:
    from plantguard_shift_notes import pages

    return [pages.router]


CAPABILITY = Capability(
    "shift_notes", section=ShiftNotesSettings, build=build, stores=(SqlStore,), routers=routers, pages=pages,
    migrations=(Migration("9100_shift_notes", embedded=_TABLE, postgres=_TABLE, owner="shift_notes"),))
