"""Reading configuration documents: YAML parsing and the translation of pydantic errors into field-path problems,
done once for every document the platform reads (the plant model, a gateway file, a draft to assess, an API body).

    data = read_yaml_file("plant.yaml")                 # ConfigError("cannot read file" / "not valid YAML: line..")
    data = parse_yaml(raw_bytes, source="request")      # the same for text already in hand
    problems = validation_problems(exc, prefix="gateway")  # pydantic ValidationError -> [ConfigProblem(path, msg)]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from plantguard.errors import ConfigError, ConfigProblem


def loc_to_path(loc: tuple) -> str:
    """pydantic's error location as a field path: ("sites", 0, "id") -> "sites[0].id"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def clean_msg(err: dict) -> str:
    """pydantic's message for one error, phrased for an operator, with the offending value when it is short."""
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        return "unknown field (check the spelling; see `plantguard init` for the documented example)"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if "input" in err and err.get("type") not in ("missing",) and not isinstance(err["input"], (dict, list)):
        msg += f" (got {err['input']!r})"
    return msg


def validation_problems(e: ValidationError, prefix: str = "") -> list[ConfigProblem]:
    """Every error of a pydantic ValidationError as a ConfigProblem at its field path (under `prefix`)."""
    out = []
    for err in e.errors():
        path = loc_to_path(err["loc"])
        out.append(ConfigProblem(f"{prefix}.{path}" if prefix and path else (prefix or path), clean_msg(err)))
    return out


def yaml_error(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"not valid YAML: {where}{getattr(e, 'problem', None) or e}"


def parse_yaml(text: str | bytes, source: str | None = None) -> Any:
    """A YAML document (safe loader); ConfigError with the line and column when it is not valid YAML."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError([ConfigProblem("", yaml_error(e))], source) from None


def read_yaml_file(path: str | Path) -> Any:
    """The YAML document in `path`; ConfigError when it cannot be read or is not valid YAML."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([ConfigProblem("", f"cannot read file: {e.strerror}")], str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem("", "cannot read file: not UTF-8 text")], str(path)) from None
    return parse_yaml(text, str(path))
