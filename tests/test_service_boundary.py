"""Shells see only services. A shell is a module under api/, web/ or cli/, or a capability's own api.py, pages.py,
auth_api.py or cli.py; it reaches the platform through `plantguard.services.Services` (given to the app, or by
`plantguard.launch` to the CLI) and may import only the modules below. Nothing else: not the runtime, the store,
the pipeline, the supervisor, nor another capability's package. No exceptions are listed, on purpose."""

from pathlib import Path

import plantguard
from plantguard import capabilities
from plantguard.testing.imports import attributes, imports, under

ROOT = Path(plantguard.__file__).parent
SHELL_DIRS = ("api", "web", "cli")
CAPABILITY_SHELLS = ("api.py", "pages.py", "auth_api.py", "cli.py")
# what any shell may import from plantguard itself
ALLOWED = ("plantguard.services", "plantguard.api", "plantguard.web", "plantguard.cli", "plantguard.domain",
           "plantguard.errors", "plantguard.timeutil", "plantguard.config", "plantguard.capabilities",
           "plantguard.ingest.parse",          # payload parsers: pure functions of bytes
           "plantguard.launch",                # how the CLI runs a platform and gets its services
           "plantguard.analytics",             # the pure analytics library (offline evaluations)
           "plantguard.assess", "plantguard.connectors", "plantguard.sim", "plantguard.examples",  # CLI tools
           "plantguard.model_source", "plantguard.keys")
FORBIDDEN_ATTRS = {"store", "pipeline", "registry", "_platform"}


def _package_of(path: Path) -> str:
    return "plantguard." + ".".join(path.relative_to(ROOT).parent.parts)


def shell_modules() -> list[Path]:
    out = [p for d in SHELL_DIRS for p in (ROOT / d).rglob("*.py")]
    for cap in capabilities.registered():
        mod = __import__(cap.build.__module__, fromlist=["_"]) if cap.build else None
        if mod is not None and mod.__file__ and Path(mod.__file__).is_relative_to(ROOT):
            pkg = Path(mod.__file__).parent
            out += [pkg / n for n in CAPABILITY_SHELLS if (pkg / n).is_file()]
    return out


def test_the_capabilities_shells_are_found():
    names = {str(p.relative_to(ROOT)) for p in shell_modules()}
    assert {"security/api.py", "security/pages.py", "security/cli.py", "alarms/api.py", "plant_analytics/api.py"} <= names


def test_shells_import_services_and_helpers_only():
    offenders = []
    for path in shell_modules():
        rel = path.relative_to(ROOT)
        own = _package_of(path)
        allowed = ALLOWED + ((own,) if not own.endswith((".api", ".web", ".cli")) else ())
        for line, name in imports(path):
            if name.startswith("plantguard") and name != "plantguard" and not under(name, allowed):
                offenders.append(f"{rel}:{line} imports {name}")
            if name.startswith("plantguard.connectors.") and "capability" in name:
                offenders.append(f"{rel}:{line} imports a capability module {name}")
        offenders += [f"{rel}:{line} uses .{a}" for line, a in attributes(path) if a in FORBIDDEN_ATTRS]
    assert not offenders, "\n".join(offenders)


def test_shell_handlers_are_typed_on_services():
    """The routers' dependency is the Services type, not the platform."""
    from plantguard.api.deps import ServicesDep
    from plantguard.services import Services

    assert ServicesDep.__metadata__[0].dependency.__annotations__["return"] in (Services, "Services")
