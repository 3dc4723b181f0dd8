"""The API, the dashboard and the CLI are shells over the services: none of them touches the store, the pipeline
or the point registry (attributes or imports), so every query and command has one implementation, in services/."""

from pathlib import Path

import plantguard
from plantguard.testing.imports import attributes, imports, under

ROOT = Path(plantguard.__file__).parent
SHELLS = ("api", "web", "cli")
FORBIDDEN_ATTRS = {"store", "pipeline", "registry"}
FORBIDDEN_MODULES = ("plantguard.store", "plantguard.ingest")
ALLOWED_MODULES = ("plantguard.ingest.parse",)  # payload parsers: pure functions of bytes


def test_shells_call_services_only():
    offenders = []
    for shell in SHELLS:
        for path in (ROOT / shell).rglob("*.py"):
            rel = path.relative_to(ROOT)
            offenders += [f"{rel}:{line} uses .{a}" for line, a in attributes(path) if a in FORBIDDEN_ATTRS]
            offenders += [f"{rel}:{line} imports {n}" for line, n in imports(path)
                          if under(n, FORBIDDEN_MODULES) and n not in ALLOWED_MODULES]
    assert not offenders, "\n".join(offenders)
