"""The connector manifest (`connectors/<name>/manifest.yaml`): what a connector is, in one checked format.

    name: modbus                                   # = its folder = its entry point name (when it has one)
    title: Modbus TCP / RTU (polling)
    kind: polling | push | batch
    library: pymodbus>=3.16,<3.17                  # the requirement exactly as pyproject.toml pins it
    config: plantguard.connectors.modbus.config:ModbusConfig     # module:Class, a pydantic model
    entry: plantguard.connectors.modbus.connector:ModbusConnector
    docs: docs/connectors/modbus.md
    example: {type: modbus, name: example, ...}    # a minimal valid configuration, for the shared checks
    quality: {done: [...], not_yet: [...]}
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).parent


class Quality(BaseModel):
    model_config = ConfigDict(extra="forbid")
    done: list[str] = Field(min_length=1)
    not_yet: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    kind: Literal["polling", "push", "batch"]
    library: str = Field(description="the requirement as pinned in pyproject.toml")
    protocol: str | None = None
    config: str = Field(pattern=r"^[a-z_][\w.]*:[A-Za-z_]\w*$")
    entry: str = Field(pattern=r"^[a-z_][\w.]*:[A-Za-z_]\w*$")
    docs: str | None = None
    example: dict[str, Any] | None = None
    quality: Quality

    def load(self, what: Literal["config", "entry"]) -> Any:
        module, _, attr = getattr(self, what).partition(":")
        return getattr(importlib.import_module(module), attr)


def manifests() -> dict[str, Manifest]:
    """Every connector folder's manifest, by folder name."""
    out = {}
    for p in sorted(ROOT.glob("*/manifest.yaml")):
        out[p.parent.name] = Manifest.model_validate(yaml.safe_load(p.read_text(encoding="utf-8")))
    return out
