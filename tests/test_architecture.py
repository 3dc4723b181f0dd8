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


def test_long_functions_say_why():
    """A function of more than 80 lines says why it is long, next to its start ("Long on purpose: ...")."""
    import ast

    offenders = []
    for path in ROOT.rglob("*.py"):
        if "tests" in path.relative_to(ROOT).parts:
            continue
        lines = path.read_text().split("\n")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                head = "\n".join(lines[node.lineno - 1:node.lineno + 6])
                if "Long on purpose" not in head:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not offenders, "\n".join(offenders)


def test_package_tests_sit_with_their_package_and_stay_out_of_the_wheel():
    """The rule: a test of one package sits in that package's tests/ folder and imports that package; tests/ holds
    the tests that compose the platform (runtime, API, dashboard, CLI, end to end). No tests/ folder is packaged."""
    import tomllib

    from setuptools import find_packages

    offenders = []
    for folder in ROOT.rglob("tests"):
        if not folder.is_dir():
            continue
        owner = "plantguard." + ".".join(folder.relative_to(ROOT).parent.parts)
        for f in folder.glob("test_*.py"):
            if not any(name == owner or name.startswith(owner + ".") for _, name in imports(f)):
                offenders.append(f"{f.relative_to(ROOT)} does not import {owner}")
    assert not offenders, "\n".join(offenders)
    conf = tomllib.loads((DOC.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = find_packages(where=str(DOC.parents[1] / "src"), exclude=conf.get("exclude", ()))
    assert shipped and not [p for p in shipped if p.endswith(".tests") or ".tests." in p]


def test_production_calls_only_what_the_store_protocols_declare():
    """Every call on a store outside store/ is a method of a Store protocol, so the contract tests, which run per
    protocol, cover what production calls; a capability's or a service's store is a view of its protocols only."""
    import ast

    from plantguard.store.protocols import PROTOCOLS, methods

    declared = {m for p in PROTOCOLS for m in methods(p)} | {"kind"}
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if "tests" in rel.parts or rel.parts[0] in ("store", "testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and not node.attr.startswith("_"):
                v = node.value
                name = v.attr if isinstance(v, ast.Attribute) else v.id if isinstance(v, ast.Name) else ""
                if name in ("store", "_store") and node.attr not in declared:
                    offenders.append(f"{rel}:{node.lineno} store.{node.attr}")
    assert not offenders, "\n".join(offenders)
