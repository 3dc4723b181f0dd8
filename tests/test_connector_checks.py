"""Every connector's manifest follows one schema and agrees with the package, and every registered connector
passes the shared checks (plantguard.connectors.checks)."""

import re
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from plantguard.connectors import checks
from plantguard.connectors.manifest import manifests

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = manifests()
ENTRY_POINTS = {ep.name: ep for ep in entry_points(group="plantguard.connectors")}


def _pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=!\[;]", d, 1)[0].strip().lower(): d.replace(" ", "") for d in deps}


@pytest.mark.parametrize("folder", sorted(MANIFESTS))
def test_manifest_agrees_with_folder_entry_point_and_pins(folder):
    m = MANIFESTS[folder]
    assert m.name == folder
    assert m.load("config") is not None and m.load("entry") is not None
    if folder in ENTRY_POINTS:
        assert ENTRY_POINTS[folder].value == m.entry, (ENTRY_POINTS[folder].value, m.entry)
    pkg = re.split(r"[<>=!\[;]", m.library, 1)[0].strip().lower()
    assert _pins().get(pkg) == m.library.replace(" ", ""), f"{folder}: manifest pins {m.library}, pyproject {_pins().get(pkg)}"
    if m.docs:
        assert (ROOT / m.docs).is_file()


def test_every_entry_point_has_a_manifest_with_an_example():
    for name in ENTRY_POINTS:
        assert name in MANIFESTS and MANIFESTS[name].example, name


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_shared_connector_checks(name):
    cls = ENTRY_POINTS[name].load()
    example = MANIFESTS[name].example
    checks.check_config_errors_have_paths(name, example)
    checks.check_probe_contract(cls)
    checks.check_read_only_by_default(cls.config_model)
    checks.check_start_stop_idempotent_and_health(cls, example)
