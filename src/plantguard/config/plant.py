"""The whole configuration file: the plant model (domain) plus the sections other packages own (the gateway, the
connectors), validated together so that one report lists every problem by field path.

    cfg = load_config("plant.yaml")         # PlantConfig, or ConfigError([ConfigProblem(path, message), ...])
    cfg = parse_config(mapping)             # the same from a parsed document
    text = dump_config(cfg)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from plantguard import capabilities
from plantguard.config.checks import CHECKS
from plantguard.config.loading import read_yaml_file, validation_problems
from plantguard.domain.checks import semantic_problems
from plantguard.domain.model import PlantConfig
from plantguard.errors import ConfigError, ConfigProblem


def parse_config(data: Any, source: str | None = None) -> PlantConfig:
    """Validates a parsed YAML/JSON document; raises ConfigError listing every problem with its field path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem("", "the configuration must be a mapping (YAML object) at the top level")], source)
    problems: list[ConfigProblem] = []
    cfg = None
    owned = capabilities.sections()
    sections: dict[str, Any] = {}
    if owned and any(k in data for k in owned):
        data = dict(data)
        for name, model in owned.items():
            if name not in data:
                continue
            raw = data.pop(name)
            try:
                sections[name] = model.model_validate(raw if raw is not None else {})
            except ValidationError as e:
                problems += validation_problems(e, name)
    try:
        cfg = PlantConfig.model_validate(data)
    except ValidationError as e:
        problems += validation_problems(e)
    seen = {p.path for p in problems}
    problems += [p for p in semantic_problems(data, CHECKS) if p.path not in seen]
    if isinstance(data.get("gateway"), dict):
        from plantguard.connectors.gateway.config import GatewaySettings

        try:
            GatewaySettings.model_validate(data["gateway"])
        except ValidationError as e:
            problems += validation_problems(e, "gateway")
    if isinstance(data.get("connectors"), list):
        from plantguard.connectors.registry import validate as validate_connectors

        try:
            validate_connectors(data["connectors"])
        except ConfigError as e:
            problems += e.problems
        mqtt = sections.get("mqtt")
        for i, c in enumerate(data["connectors"]):
            if getattr(mqtt, "enabled", False) and isinstance(c, dict) and c.get("name") == "mqtt":
                problems.append(ConfigProblem(f"connectors[{i}].name", "'mqtt' is the connector the enabled `mqtt:` section starts: rename this one or move the section into it"))
    if not problems and cfg is not None:  # checks a capability makes across its section and the plant model
        for cap in capabilities.registered():
            if cap.check is not None and cap.name in sections:
                problems += [ConfigProblem(f"{cap.name}.{p}" if p else cap.name, m) for p, m in cap.check(sections[cap.name], cfg)]
    if problems:
        raise ConfigError(problems, source)
    for name, model in owned.items():  # a capability's defaults apply when the file has no section for it
        try:
            cfg._sections[name] = sections[name] if name in sections else model()
        except ValidationError:
            pass  # a section without defaults is required only by the capability that reads it
    return cfg


def load_config(path: str | Path) -> PlantConfig:
    """The plant configuration in a YAML file, validated (ConfigError listing every problem by field path)."""
    return parse_config(read_yaml_file(path), str(Path(path)))


def dump_config(cfg: PlantConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False)
