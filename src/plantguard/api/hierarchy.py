"""Edits of the plant hierarchy addressed by path ('site/area/line/asset/device/point').

Every edit rewrites the model document and hands it to Platform.replace_model, so validation and error
messages (with document field paths such as ``sites[0].areas[0].lines[0].assets[0].devices[0].points[3].range``)
are exactly those of the YAML file.
"""

from __future__ import annotations

from plantguard.services import Services

import copy
import threading
from dataclasses import dataclass


from plantguard.config.loading import parse_yaml
from plantguard.domain.actor import Actor
from plantguard.domain.fields import TAG_SEP
from plantguard.errors import ConfigError, ConfigProblem, Conflict, InvalidInput, NotFound

from plantguard.api.deps import parse_json


@dataclass(frozen=True)
class Level:
    plural: str  # key of the list in the parent, and the URL segment
    singular: str
    children: str | None  # key of this level's own child list
    depth: int  # number of path segments addressing one entity


LEVELS = (
    Level("sites", "site", "areas", 1),
    Level("areas", "area", "lines", 2),
    Level("lines", "line", "assets", 3),
    Level("assets", "asset", "devices", 4),
    Level("devices", "device", "points", 5),
    Level("points", "point", None, 6),
)

# Read-modify-replace must not interleave, or one of two concurrent edits would be lost.
_edit_lock = threading.Lock()


def _document(svc: Services) -> dict:
    return {"sites": [s.model_dump(mode="json", exclude_none=True) for s in svc.model.current().sites]}


def _locate(doc: dict, path: str, depth: int) -> tuple[dict, list, int, str]:
    """(entity, the list holding it, its index, its document field path) of the entity at `path`."""
    parts = path.split(TAG_SEP)
    if len(parts) != depth or not all(parts):
        raise NotFound(f"{LEVELS[depth - 1].singular} path {path!r} must have {depth} part(s) separated by '/'")
    holder: list = doc["sites"]
    field_path = ""
    entity: dict = {}
    index = -1
    for i, seg in enumerate(parts):
        lv = LEVELS[i]
        if i:
            holder = entity.setdefault(lv.plural, [])
        index = next((k for k, e in enumerate(holder) if e.get("id") == seg), -1)
        if index < 0:
            raise NotFound(f"{lv.singular} {TAG_SEP.join(parts[: i + 1])!r} not found")
        entity = holder[index]
        field_path += f"{'.' if field_path else ''}{lv.plural}[{index}]"
    return entity, holder, index, field_path


def _public(entity: dict, path: str) -> dict:
    return {**entity, "path": path}


# -- queries -----------------------------------------------------------------------------------------------
def list_entities(svc: Services, level: Level, parent_path: str | None) -> list[dict]:
    doc = _document(svc)
    if level.depth == 1:
        items, prefix = doc["sites"], ""
    else:
        parent, _, _, _ = _locate(doc, parent_path or "", level.depth - 1)
        items, prefix = parent.get(level.plural, []), f"{parent_path}{TAG_SEP}"
    return [_public(e, f"{prefix}{e['id']}") for e in items]


def get_entity(svc: Services, level: Level, path: str) -> dict:
    entity, _, _, _ = _locate(_document(svc), path, level.depth)
    return _public(entity, path)


# -- commands ----------------------------------------------------------------------------------------------
def create_entity(svc: Services, level: Level, parent_path: str | None, body: dict, actor: Actor) -> dict:
    with _edit_lock:
        doc = _document(svc)
        if level.depth == 1:
            siblings, prefix = doc["sites"], ""
        else:
            parent, _, _, _ = _locate(doc, parent_path or "", level.depth - 1)
            siblings = parent.setdefault(level.plural, [])
            prefix = f"{parent_path}{TAG_SEP}"
        new_id = body.get("id")
        if isinstance(new_id, str) and any(e.get("id") == new_id for e in siblings):
            raise Conflict(f"{level.singular} {prefix}{new_id!r} already exists")
        siblings.append(copy.deepcopy(body))
        svc.model.replace(doc, actor)  # a missing or malformed id fails here, with its field path
        return get_entity(svc, level, f"{prefix}{new_id}")


def update_entity(svc: Services, level: Level, path: str, patch: dict, actor: Actor) -> dict:
    """Merges the given fields into the entity; a field set to null is removed (back to its default)."""
    with _edit_lock:
        doc = _document(svc)
        entity, _, _, field_path = _locate(doc, path, level.depth)
        fixed = [k for k in ("id", level.children) if k is not None and k in patch]
        if fixed:
            raise ConfigError([
                ConfigProblem(f"{field_path}.{k}", "cannot be changed here: create or delete the entity instead"
                              if k == "id" else f"edit {k} through their own endpoints") for k in fixed
            ])
        for k, v in patch.items():
            if v is None:
                entity.pop(k, None)
            else:
                entity[k] = copy.deepcopy(v)
        svc.model.replace(doc, actor)
        return get_entity(svc, level, path)


def delete_entity(svc: Services, level: Level, path: str, actor: Actor) -> None:
    """Removes the entity and everything below it; the history of its points stays queryable."""
    with _edit_lock:
        doc = _document(svc)
        _, holder, index, _ = _locate(doc, path, level.depth)
        del holder[index]
        svc.model.replace(doc, actor)


# -- the whole document -----------------------------------------------------------------------------------
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def parse_model_body(raw: bytes, content_type: str) -> dict:
    if content_type.split(";")[0].strip().lower() in YAML_TYPES:
        try:
            doc = parse_yaml(raw)
        except ConfigError as e:
            raise InvalidInput(e.problems[0].message) from None
    else:
        doc = parse_json(raw)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidInput("the plant model must be a mapping (an object) at the top level")
    return doc


def model_public(svc: Services) -> dict:
    return {"model_version": svc.model.version(), **_document(svc)}


def replace_document(svc: Services, doc: dict, actor: Actor) -> dict:
    """Replaces the hierarchy. A `model_version` in the document must match the stored one (optimistic
    concurrency: a client that edited an outdated copy gets 409 instead of silently undoing changes)."""
    doc = dict(doc)
    expected = doc.pop("model_version", None)
    with _edit_lock:
        if expected is not None:
            current = svc.model.version()
            if expected != current:
                raise Conflict(f"model_version {expected!r} is outdated: the stored model is at version {current}; "
                               "fetch it again and reapply your change")
        svc.model.replace(doc, actor)
    return model_public(svc)


def flat_points(svc: Services, prefix: str | None) -> list[dict]:
    out = []
    for tag, _s, _a, _l, _x, device, p in svc.model.current().iter_points():
        if prefix and not tag.startswith(prefix):
            continue
        out.append({
            "tag": tag,
            "name": p.name,
            "unit": p.unit,
            "data_type": p.data_type.value,
            "range": p.range.model_dump() if p.range else None,
            "period": p.period,
            "criticality": p.criticality.value,
            "device": tag.rsplit(TAG_SEP, 1)[0],
            "auto": False,
            "shadow": device.mode == "shadow",
        })
    for tag, meta in svc.telemetry.auto_points(prefix):  # accepted by the auto_register policy, not in the model
        out.append({"tag": tag, "name": None, "unit": meta.get("unit", ""), "data_type": meta.get("data_type", "float"),
                    "range": None, "period": 0, "criticality": meta.get("criticality", "low"),
                    "device": tag.rsplit(TAG_SEP, 1)[0] if TAG_SEP in tag else "", "auto": True, "shadow": False})
    return out

