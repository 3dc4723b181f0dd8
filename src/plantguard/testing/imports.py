"""What a source file imports, for the boundary tests that keep layers apart."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every absolute import in a file; a relative import yields '.' as its module."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.module == "plantguard" and node.level == 0:  # `from plantguard import capabilities`: a module
                for a in node.names:
                    yield node.lineno, f"plantguard.{a.name}" if a.name != "__version__" else "plantguard"
            else:
                yield node.lineno, node.module if node.module and node.level == 0 else "."


def attributes(path: Path) -> Iterator[tuple[int, str]]:
    """(line, name) of every attribute access in a file."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute):
            yield node.lineno, node.attr


def under(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)
