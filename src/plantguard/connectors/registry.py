"""Connector plug-ins: discovered through the entry-point group ``plantguard.connectors`` (each entry names a
Connector subclass), so an installed third-party package adds a connector type without touching plantguard."""

from __future__ import annotations

from importlib.metadata import entry_points

from pydantic import ValidationError

from plantguard.errors import ConfigError, ConfigProblem

GROUP = "plantguard.connectors"


def available() -> dict[str, object]:
    """type name -> entry point (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load(type_name: str):
    eps = available()
    if type_name not in eps:
        raise KeyError(type_name)
    return eps[type_name].load()


def validate(items: list, base_path: str = "connectors") -> list:
    """Validates each connector configuration with its own schema; raises ConfigError listing every problem with
    its field path (e.g. ``connectors[0].devices[2].registers[5].address``)."""
    problems: list[ConfigProblem] = []
    out = []
    names: dict[str, int] = {}
    types = available()
    for i, item in enumerate(items or []):
        path = f"{base_path}[{i}]"
        if not isinstance(item, dict):
            problems.append(ConfigProblem(path, "must be a mapping with at least 'type' and 'name'"))
            continue
        t = item.get("type")
        if t not in types:
            problems.append(ConfigProblem(f"{path}.type", f"unknown connector type {t!r} (available: {', '.join(sorted(types)) or 'none'})"))
            continue
        try:
            cls = types[t].load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in is a configuration problem, not a crash
            problems.append(ConfigProblem(f"{path}.type", f"connector type {t!r} failed to load: {e}"))
            continue
        try:
            cfg = cls.config_model.model_validate(item)
        except ValidationError as e:
            from plantguard.config.loading import validation_problems

            problems += validation_problems(e, path)
            continue
        extra = getattr(cls, "check", None)
        if extra is not None:
            problems += [ConfigProblem(f"{path}.{p.path}" if p.path else path, p.message) for p in extra(cfg)]
        if cfg.name in names:
            problems.append(ConfigProblem(f"{path}.name", f"duplicate connector name {cfg.name!r} (also at {base_path}[{names[cfg.name]}])"))
        names[cfg.name] = i
        out.append((cls, cfg))
    if problems:
        raise ConfigError(problems)
    return out


def writable_tags(items: list) -> set[str]:
    """Tags the connector configurations allow writes to (each connector type that writes says which); the
    configurations are validated first (ConfigError otherwise)."""
    out: set[str] = set()
    for cls, ccfg in validate(items):
        allowed = getattr(cls, "writable_points", None)
        if callable(allowed):
            out |= allowed(ccfg)
    return out
