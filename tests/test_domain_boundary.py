"""domain/ is pure: the plant model, readings, alarms and analytics records import no capability, no storage, no
web and no connector, so every layer above can depend on it and it on none of them."""

from pathlib import Path

import plantguard.domain as domain
from plantguard.testing.imports import imports, under

ALLOWED = ("plantguard.domain", "plantguard.errors", "plantguard.timeutil")
FORBIDDEN_THIRD_PARTY = ("fastapi", "starlette", "uvicorn", "httpx", "duckdb", "psycopg", "sqlite3", "paho", "asyncua",
                         "pymodbus", "yaml", "sklearn", "scipy")


def test_domain_imports_only_itself_and_the_basics():
    root = Path(domain.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        for line, n in imports(path):
            if n == "." or (n.startswith("plantguard") and not under(n, ALLOWED)) or under(n, FORBIDDEN_THIRD_PARTY):
                offenders.append(f"{path.name}:{line} imports {n}")
    assert not offenders, "\n".join(offenders)
