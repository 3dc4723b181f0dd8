"""The plug-in seam. A capability is given a `Context` (what it may use) and returns `Parts` (what it built);
it never sets an attribute on the platform or on another capability.

    def build(ctx: Context) -> Parts:
        engine = Thing(ctx.config, ctx.store, clock=ctx.clock)       # ctx.store: only the protocols declared below
        return Parts(services={"thing": engine}, processors=[engine])

    CAPABILITY = Capability("thing", section=ThingSettings, stores=(SqlStore,), migrations=(...,), build=build,
                            routers=lambda: [api.router], pages=lambda: [pages.router])

Built-in and third-party capabilities are found the same way: the entry-point group ``plantguard.capabilities``
(each entry names a module-level Capability). The built-ins come first in BUILTIN_ORDER (security first: every
later one records into its audit log; alarms before analytics: analytics reads alarm states), the others after
them by name. `register` adds one by hand (programs embedding the platform, tests).

What the platform does with them (runtime.py, the composition root): the section named after the capability is
validated with the rest of the file (errors by field path, `security.sessions.ttl`) and handed over as
`ctx.config`; the migrations run with the store's own, recorded by name; `build(ctx)` runs in order at
construction; the returned services become fields of `plantguard.services.Services` (`services.of(name)` for
third-party ones); processors join the pipeline in order; `source_hooks` (such as `write_gate`) are set on each source that declares the attribute; `on_start`/`on_stop`
run with the platform's lifecycle
(stop in reverse); `on_model` runs with each new plant model, all or nothing (an exception rolls every
capability back to the previous model); routers are mounted under /api, pages at the root.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from plantguard.store import migrations as _migrations
from plantguard.store.migrations import Migration

if TYPE_CHECKING:  # pragma: no cover
    from plantguard.domain.index import PlantIndex
    from plantguard.domain.model import PlantConfig
    from plantguard.events import EventBus
    from plantguard.ingest.registry import PointRegistry

log = logging.getLogger(__name__)

GROUP = "plantguard.capabilities"
BUILTIN_ORDER = ("security", "alarms", "analytics", "mqtt", "continuity", "maturity")


class AuditSink(Protocol):
    """Where a capability records what a person or a device did (the security capability's signed log; a
    platform without it keeps the records in its log file)."""

    def record(self, actor: str, action: str, target: str | None = None, result: str = "ok",
               detail: dict | None = None) -> None: ...


@dataclass(frozen=True)
class Context:
    """What one capability is given. `store` exposes only the Store protocols the capability declared
    (Capability.stores); `uses(name)` returns a service an earlier capability built (None when it is absent)."""

    name: str
    config: Any                                  # its validated section (a pydantic model), or None
    model: "PlantConfig"                         # the plant model and platform settings at build time
    index: Callable[[], "PlantIndex"]            # the current plant model's index (follows model changes)
    points: "PointRegistry"                      # tag <-> point id, units, periods
    bus: "EventBus"
    clock: Callable[[], int]
    store: Any
    audit: AuditSink
    data_dir: Path
    key_dir: Path | None
    services: Mapping[str, Any]                  # services of the capabilities built before this one
    sink: Any                                    # the ingest pipeline as a ReadingSink (what connectors deliver to)
    add_source: Callable[[Any], None]            # a connector the capability starts (supervised like the others)
    submit: Callable[..., Any]                   # readings into the pipeline (RawBatch, dead letters, timeout=)
    ingest_lag_us: Callable[[], int]             # how far the writer is behind now
    write_point: Callable[[str, float, str], dict] | None = None   # a device write through its source (gated, audited)
    writable: Callable[[str], str | None] | None = None            # why a tag may not be written by configuration, or None

    def uses(self, name: str) -> Any:
        return self.services.get(name)


@dataclass
class Parts:
    """What a capability built."""

    services: dict[str, Any] = field(default_factory=dict)
    processors: list = field(default_factory=list)                 # on the pipeline, in order
    diverter: Any = None                                           # takes a batch's readings before they are stored
    on_start: list[Callable[[], None]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    source_hooks: dict[str, Callable] = field(default_factory=dict)  # set on each source that declares them
    on_model: list[Callable[["PlantConfig"], None]] = field(default_factory=list)  # a new plant model


@dataclass(frozen=True)
class Capability:
    name: str
    section: type | None = None                                    # a pydantic model for the `name:` section
    migrations: tuple[Migration, ...] = ()
    build: Callable[[Context], Parts] | None = None
    stores: tuple[type, ...] = ()                                  # Store protocols (store/protocols.py) it uses
    routers: Callable[[], list] | None = None                      # FastAPI routers under /api, imported lazily
    pages: Callable[[], list] | None = None                        # dashboard routers (HTML) at the root
    commands: Callable[[], list] | None = None                     # (name, typer app): `plantguard <name> ...`
    check: Callable[[Any, Any], list] | None = None                # (section, PlantConfig) -> [(path in section, message)]


def store_view(store, protocols: tuple[type, ...]) -> Any:
    """An object with only the methods of `protocols`, bound to `store` (plus its `kind`): what is not declared
    is not there, so the contract tests of those protocols cover every call a capability or service makes."""
    from types import SimpleNamespace

    from plantguard.store.protocols import methods

    names = {m for p in protocols for m in methods(p)}
    return SimpleNamespace(kind=store.kind, **{m: getattr(store, m) for m in sorted(names)})


class LogAudit:
    """The audit sink of a platform without the security capability: one log line per record."""

    _log = logging.getLogger("plantguard.audit")

    def record(self, actor: str, action: str, target: str | None = None, result: str = "ok",
               detail: dict | None = None) -> None:
        self._log.info("%s %s %s %s %s", actor, action, target, result, detail or "")


_caps: dict[str, Capability] = {}
_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=GROUP), key=lambda ep: (ep.name not in BUILTIN_ORDER, ep.name))
    for ep in found:
        try:
            cap = ep.load()
        except Exception:  # noqa: BLE001 - one broken plug-in must not keep the platform from starting
            log.exception("capability %s (%s) could not be loaded; it is left out", ep.name, ep.value)
            continue
        if not isinstance(cap, Capability) or cap.name != ep.name:
            log.error("entry point %s of %s does not name a Capability called %r; it is left out", ep.value, GROUP, ep.name)
            continue
        register(cap)
    missing = [n for n in BUILTIN_ORDER if n not in _caps]
    if missing:  # an installation without its metadata (a source tree on the path): the built-ins still load
        import importlib

        for n in missing:
            register(importlib.import_module(_BUILTIN_MODULES[n]).CAPABILITY)


_BUILTIN_MODULES = {"security": "plantguard.security.capability", "alarms": "plantguard.alarms.capability",
                    "analytics": "plantguard.plant_analytics.capability", "mqtt": "plantguard.connectors.mqtt.capability",
                    "continuity": "plantguard.continuity.capability", "maturity": "plantguard.maturity.capability"}


def register(cap: Capability) -> None:
    """Adds a capability (and its migrations). Its name is unique; re-registering the same one is a no-op."""
    if not cap.name.isidentifier():
        raise ValueError(f"a capability name is an identifier (it names a config section): {cap.name!r}")
    old = _caps.get(cap.name)
    if old is not None and old != cap:
        raise ValueError(f"capability {cap.name!r} is already registered")
    for m in cap.migrations:
        _migrations.register(m)
    _caps[cap.name] = cap


def unregister(name: str) -> None:
    """Removes a capability (tests); its migrations stay applied where they ran."""
    cap = _caps.pop(name, None)
    if cap is not None:
        for m in cap.migrations:
            _migrations.unregister(m.name)


def rediscover() -> None:
    """Reads the entry points again (after installing a plug-in into a running interpreter; tests)."""
    global _discovered
    _discovered = False
    _discover()


def registered() -> list[Capability]:
    """Built-ins first in BUILTIN_ORDER, then the others in the order they were found or registered."""
    _discover()
    first = [_caps[n] for n in BUILTIN_ORDER if n in _caps]
    return first + [c for n, c in _caps.items() if n not in BUILTIN_ORDER]


def sections() -> dict[str, type]:
    """Config sections that capabilities own: name -> pydantic model."""
    return {c.name: c.section for c in registered() if c.section is not None}


def frozen(d: dict) -> Mapping[str, Any]:
    return MappingProxyType(dict(d))
