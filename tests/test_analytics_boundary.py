"""analytics/ stays free of web, database and platform-service imports, so it runs anywhere."""

import ast
from pathlib import Path

import plantguard.analytics as analytics

FORBIDDEN = ("fastapi", "starlette", "uvicorn", "httpx", "duckdb", "psycopg", "sqlite3", "paho", "asyncua",
             "pymodbus", "plantguard.store", "plantguard.api", "plantguard.runtime", "plantguard.ingest",
             "plantguard.connectors", "plantguard.web", "plantguard.cli")


def test_analytics_imports_nothing_from_web_or_database():
    root = Path(analytics.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "tests" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                if any(n == f or n.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.relative_to(root)}:{node.lineno} imports {n}")
    assert not offenders, "\n".join(offenders)
