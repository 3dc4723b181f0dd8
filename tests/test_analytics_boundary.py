"""analytics/ stays free of web, database and platform-service imports, so it runs anywhere."""

from pathlib import Path

import plantguard.analytics as analytics
from plantguard.testing.imports import imports, under

FORBIDDEN = ("fastapi", "starlette", "uvicorn", "httpx", "duckdb", "psycopg", "sqlite3", "paho", "asyncua",
             "pymodbus", "plantguard.store", "plantguard.api", "plantguard.runtime", "plantguard.ingest",
             "plantguard.connectors", "plantguard.web", "plantguard.cli")


def test_analytics_imports_nothing_from_web_or_database():
    root = Path(analytics.__file__).parent
    offenders = [f"{path.relative_to(root)}:{line} imports {n}"
                 for path in root.rglob("*.py") if "tests" not in path.relative_to(root).parts
                 for line, n in imports(path) if under(n, FORBIDDEN)]
    assert not offenders, "\n".join(offenders)
