"""Capabilities plug into the platform in one place: each declares its config section, its migrations, what it
builds on a platform (processors on the pipeline, services, start and stop hooks) and its API routers.

    register(Capability("security", section=SecuritySettings, migrations=(Migration(...),),
                        build=build_security, routers=lambda: [security_api.router]))

    registered()          # built-ins first (alarms, analytics), then the others in registration order

What the platform does with them (runtime.py, the composition root): the section named after the capability is
validated with the rest of the file, errors by field path (`security.sessions.ttl`), and is `cfg.section(name)`;
the migrations run with the store's own, recorded by name; `build(platform)` runs in order at construction (a
capability may use what an earlier one built: analytics reads the alarm engine); `on_start`/`on_stop` run with the
platform's own lifecycle (stop in reverse); routers are mounted under /api.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from plantguard.store import migrations as _migrations
from plantguard.store.migrations import Migration


@dataclass
class Parts:
    """What a capability built on one platform."""
    processors: list = field(default_factory=list)                 # added to the pipeline, in order
    services: dict[str, Any] = field(default_factory=dict)         # platform.services.<name>
    on_start: list[Callable[[], None]] = field(default_factory=list)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    on_source: list[Callable[[Any], None]] = field(default_factory=list)  # each source (connector) before it starts


@dataclass(frozen=True)
class Capability:
    name: str
    section: type | None = None                                    # a pydantic model for the `name:` section
    migrations: tuple[Migration, ...] = ()
    build: Callable[[Any], Parts] | None = None                    # called with the Platform
    routers: Callable[[], list] | None = None                      # FastAPI routers, imported lazily


_BUILTIN = ("plantguard.security.capability", "plantguard.alarms.capability", "plantguard.plant_analytics.capability",
            "plantguard.connectors.mqtt.capability")
_caps: dict[str, Capability] = {}
_loaded = False


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import importlib

        for mod in _BUILTIN:
            importlib.import_module(mod)


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


_BUILTIN_ORDER = ("security", "alarms", "analytics", "mqtt")


def registered() -> list[Capability]:
    """Built-ins first, in their fixed order (alarms before analytics: the analytics processor reads alarm
    states), whichever module was imported first; then the others in registration order."""
    _load_builtins()
    first = [_caps[n] for n in _BUILTIN_ORDER if n in _caps]
    return first + [c for n, c in _caps.items() if n not in _BUILTIN_ORDER]


def sections() -> dict[str, type]:
    """Config sections that capabilities own: name -> pydantic model."""
    return {c.name: c.section for c in registered() if c.section is not None}
