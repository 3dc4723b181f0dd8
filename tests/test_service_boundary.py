"""The API, the dashboard and the CLI are shells over the services: none of them touches the store, the pipeline
or the point registry (attributes or imports), so every query and command has one implementation, in services/."""

import ast
from pathlib import Path

import plantguard

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
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRS:
                    offenders.append(f"{rel}:{node.lineno} uses .{node.attr}")
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for n in names:
                    if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_MODULES) and n not in ALLOWED_MODULES:
                        offenders.append(f"{rel}:{node.lineno} imports {n}")
    assert not offenders, "\n".join(offenders)
