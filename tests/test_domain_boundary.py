"""domain/ is pure: the plant model, readings, alarms and analytics records import no capability, no storage, no
web and no connector, so every layer above can depend on it and it on none of them."""

import ast
from pathlib import Path

import plantguard.domain as domain

ALLOWED = ("plantguard.domain", "plantguard.errors", "plantguard.timeutil")
FORBIDDEN_THIRD_PARTY = ("fastapi", "starlette", "uvicorn", "httpx", "duckdb", "psycopg", "sqlite3", "paho", "asyncua",
                         "pymodbus", "yaml", "sklearn", "scipy")


def test_domain_imports_only_itself_and_the_basics():
    root = Path(domain.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level:
                offenders.append(f"{path.name}:{node.lineno} relative import")
            for n in names:
                if n.startswith("plantguard") and not any(n == a or n.startswith(a + ".") for a in ALLOWED):
                    offenders.append(f"{path.name}:{node.lineno} imports {n}")
                if any(n == f or n.startswith(f + ".") for f in FORBIDDEN_THIRD_PARTY):
                    offenders.append(f"{path.name}:{node.lineno} imports {n}")
    assert not offenders, "\n".join(offenders)
