"""docs/architecture.md's package table is the truth about imports: every module's plantguard imports (including
those only for annotations) are among what its row lists."""

import re
from pathlib import Path

import plantguard
from plantguard.testing.imports import imports

ROOT = Path(plantguard.__file__).parent
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def table() -> dict[str, set[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        allowed = set(re.findall(r"`([a-z_]+)`", cells[2]))
        for name in re.findall(r"`([a-z_]+)(?:/|\.py)`", cells[0]):
            rows[name] = allowed
    return rows


def unit_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_every_package_has_a_row():
    rows = table()
    units = {unit_of(p) for p in ROOT.rglob("*.py")} - {"__init__", "testing", "examples"}
    assert not units - set(rows), f"packages without a row in docs/architecture.md: {sorted(units - set(rows))}"


def test_imports_follow_the_table():
    rows = table()
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        unit = unit_of(path)
        if "tests" in rel.parts or unit in ("__init__", "testing", "examples"):
            continue
        for line, name in imports(path):
            if not name.startswith("plantguard."):
                continue
            target = name.split(".")[1]
            if target != unit and target not in rows.get(unit, set()):
                offenders.append(f"{rel}:{line} imports {name} (not in the `{unit}` row)")
    assert not offenders, "\n".join(offenders)
