"""Docs are tested: every CLI command and option has help text and an entry in docs/cli.md, and the configuration
reference in docs/configuration.md matches the pydantic model (regenerate it with `python tests/test_docs.py`)."""

from __future__ import annotations

import enum
import re
import sys
import types
import typing
from pathlib import Path

import click
import pytest
import typer.main
from pydantic import BaseModel

from plantguard.cli.main import app
from plantguard.domain.model import PlantConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"
START, END = "<!-- reference:start (generated from the model; edit only the meaning column) -->", "<!-- reference:end -->"


def _commands() -> dict[str, click.Command]:
    return dict(typer.main.get_command(app).commands)


def _section(text: str, name: str) -> str:
    m = re.search(rf"^## `plantguard {re.escape(name)}`\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


@pytest.mark.parametrize("name", sorted(_commands()))
def test_command_has_help_and_docs(name):
    cmd = _commands()[name]
    assert (cmd.help or "").strip(), f"command {name} has no help text"
    for p in cmd.params:
        if isinstance(p, click.Option) and p.name != "help":
            assert (p.help or "").strip(), f"option {p.opts[0]} of {name} has no help text"
        if isinstance(p, click.Argument):
            assert (getattr(p, "help", "") or "").strip(), f"argument {p.name} of {name} has no help text"
    section = _section((DOCS / "cli.md").read_text(encoding="utf-8"), name)
    assert section, f"docs/cli.md has no section '## `plantguard {name}`'"
    for p in cmd.params:
        if isinstance(p, click.Option) and p.name != "help":
            assert p.opts[0] in section, f"docs/cli.md does not document {p.opts[0]} of {name}"
    assert f"plantguard {name}" in section.split("```", 1)[-1], f"docs/cli.md has no example of {name}"


def test_no_documented_command_is_missing():
    documented = re.findall(r"^## `plantguard ([a-z-]+)`", (DOCS / "cli.md").read_text(encoding="utf-8"), re.M)
    assert sorted(documented) == sorted(_commands())


# -- configuration reference ---------------------------------------------------------------------------------------
def _models(model: type[BaseModel], path: str, out: list) -> list:
    out.append((path, model))
    for name, f in model.model_fields.items():
        sub = _model_in(f.annotation)
        if sub is not None:
            many = typing.get_origin(f.annotation) is list
            _models(sub, f"{path}.{name}{'[]' if many else ''}".lstrip("."), out)
    return out


def _model_in(ann):
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in typing.get_args(ann):
        m = _model_in(a)
        if m is not None:
            return m
    return None


def _type(f) -> str:
    ann = f.annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    origin = typing.get_origin(ann)
    pattern = next((m.pattern for m in f.metadata if getattr(m, "pattern", None)), None)
    if pattern is not None:
        return "id" if "A-Za-z0-9" in pattern else "time `HH:MM`" if ":" in pattern else "size"
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in typing.get_args(ann))
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in ann)
    if origin is list:
        return "list of " + ("sections" if _model_in(ann) else _type_name(args[0]))
    if origin is dict:
        return "mapping"
    if _model_in(ann):
        return "section"
    if origin in (typing.Union, types.UnionType):
        if set(args) == {str, float}:
            return "duration"
        if len(args) == 1:
            return _type_name(args[0]) + " (optional)"
        return " or ".join(_type_name(a) for a in args)
    return _type_name(ann)


def _type_name(t) -> str:
    if typing.get_origin(t) is typing.Annotated:
        return "id" if any("A-Za-z0-9" in (getattr(m, "pattern", None) or "") for m in getattr(t, "__metadata__", ())) else _type_name(typing.get_args(t)[0])
    if typing.get_origin(t) is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in typing.get_args(t))
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(t, getattr(t, "__name__", str(t)))


def _default(f) -> str:
    if f.is_required():
        return "required"
    if f.default_factory is not None:
        v = f.default_factory()
        return "`[]`" if v == [] else "(section defaults)"
    v = f.default
    if v is None:
        return "none"
    if isinstance(v, enum.Enum):
        v = v.value
    if isinstance(v, bool):
        v = str(v).lower()
    return f"`{v}`"


def _config_file_model() -> type[BaseModel]:
    """The whole file as documented: the plant configuration plus the sections capabilities own (mqtt...)."""
    from pydantic import Field, create_model

    from plantguard import capabilities

    extra = {name: (model, Field(default_factory=model)) for name, model in capabilities.sections().items()}
    return create_model("ConfigFile", __base__=PlantConfig, **extra) if extra else PlantConfig


def render_reference(meanings: dict[tuple[str, str], str]) -> str:
    parts = []
    for path, model in _models(_config_file_model(), "", []):
        title = f"`{path}`" if path else "top level"
        parts.append(f"### {title}\n\n| field | type | default | meaning |\n|---|---|---|---|")
        for name, f in model.model_fields.items():
            meaning = meanings.get((path, name), "")
            parts.append(f"| `{name}` | {_type(f)} | {_default(f)} | {meaning} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _current() -> tuple[str, str, str]:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    body, tail = rest.split(END, 1)
    return head, body, tail


def _meanings(body: str) -> dict[tuple[str, str], str]:
    out, path = {}, None
    for line in body.splitlines():
        if line.startswith("### "):
            h = line[4:].strip()
            path = "" if h == "top level" else h.strip("`")
        m = re.match(r"^\| `([^`]+)` \|.*\| ([^|]*) \|$", line)
        if m and path is not None:
            out[(path, m.group(1))] = m.group(2).strip()
    return out


def test_configuration_reference_matches_the_model():
    _, body, _ = _current()
    meanings = _meanings(body)
    expected = render_reference(meanings)
    assert body.strip() == expected.strip(), "docs/configuration.md is stale: run `python tests/test_docs.py` and fill in new meanings"
    missing = [f"{p}.{n}".lstrip(".") for (p, n), m in meanings.items() if not m]
    assert not missing, f"fields without a meaning in docs/configuration.md: {missing}"


def test_example_configuration_passes_check_config(tmp_path):
    from typer.testing import CliRunner

    target = tmp_path / "plant.yaml"
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(target)]).exit_code == 0
    res = runner.invoke(app, ["check-config", str(target)])
    assert res.exit_code == 0, res.output
    assert "OK" in res.stdout


if __name__ == "__main__":  # regenerate the reference tables, keeping the meanings already written
    head, body, tail = _current()
    (DOCS / "configuration.md").write_text(f"{head}{START}\n\n{render_reference(_meanings(body))}\n{END}{tail}", encoding="utf-8")
    sys.exit(0)
