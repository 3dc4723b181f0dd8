"""The plant model: the whole document (GET/PUT, JSON or YAML) and fine-grained CRUD on every level of the
hierarchy, each entity addressed by its path ('site/area/line/asset/device/point', a point's path is its tag).

Bodies of PUT/POST/PATCH are read as plain JSON and validated by the plant model itself, so the API reports
exactly the problems (with the same field paths) that loading the YAML file would.

No `from __future__ import annotations` here: the routes built per level in _add_level annotate their
parameters with local aliases, which FastAPI must be able to resolve.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from plantguard.domain.fields import Criticality, DataType
from plantguard.domain.model import Area, Asset, Device, Line, Point, PointAlarms, Range, Site

from plantguard.errors import NotFound

from plantguard.api import hierarchy
from plantguard.api.deps import MAX_JSON_BODY_BYTES, ActorDep, JsonObject, ServicesDep, body_schema, read_body
from plantguard.api.errors import ERROR_RESPONSES, ErrorPublic
from plantguard.api.hierarchy import LEVELS, Level
from plantguard.api.permissions import require
from plantguard.domain.roles import Permission

router = APIRouter(tags=["model"])
READ = [require(Permission.READ)]  # per route: a router-wide READ would also bind the write routes
WRITE = [require(Permission.MODEL_WRITE)]

MODEL_ERRORS: dict[int | str, dict] = {
    **ERROR_RESPONSES,
    409: {"model": ErrorPublic, "description": "already exists, or the model changed since it was read"},
    422: {"model": ErrorPublic, "description": "the resulting plant model is invalid; every problem with its field path"},
}


class _Depth(Convertor):
    """Matches exactly `n` '/'-separated segments, so '/devices/{path}/points' can never swallow a device
    whose id happens to be 'points'."""

    def __init__(self, n: int) -> None:
        self.regex = "[^/]+" + "/[^/]+" * (n - 1)

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


for _lv in LEVELS:
    register_url_convertor(f"depth{_lv.depth}", _Depth(_lv.depth))


# -- model families ---------------------------------------------------------------------------------------
class ModelPublic(BaseModel):
    model_version: int = Field(description="increases with every stored change")
    sites: list[Site]


class ModelReplace(BaseModel):
    """The hierarchy to store; the whole plantguard.yaml is accepted too (svc settings in it are validated
    but only take effect on restart)."""

    model_version: int | None = Field(None, description="if given, the change is refused (409) unless the stored model is still at this version")
    sites: list[Site] = Field(default_factory=list)


class SiteCreate(Site):
    pass


class AreaCreate(Area):
    pass


class LineCreate(Line):
    pass


class AssetCreate(Asset):
    pass


class DeviceCreate(Device):
    pass


class PointCreate(Point):
    pass


class SiteUpdate(BaseModel):
    name: str | None = None
    timezone: str | None = None


class AreaUpdate(BaseModel):
    name: str | None = None


class LineUpdate(BaseModel):
    name: str | None = None


class AssetUpdate(BaseModel):
    name: str | None = None
    kind: str | None = None


class DeviceUpdate(BaseModel):
    name: str | None = None
    protocol: str | None = None
    offline_after_periods: float | None = None


class PointUpdate(BaseModel):
    name: str | None = None
    unit: str | None = None
    data_type: DataType | None = None
    range: Range | None = None
    period: str | float | None = None
    criticality: Criticality | None = None
    states: dict[int, str] | None = None
    alarms: PointAlarms | None = None


class SitePublic(Site):
    path: str


class AreaPublic(Area):
    path: str


class LinePublic(Line):
    path: str


class AssetPublic(Asset):
    path: str


class DevicePublic(Device):
    path: str


class PointPublic(Point):
    path: str = Field(description="the point's tag")


class SitesPublic(BaseModel):
    data: list[SitePublic]
    count: int


class AreasPublic(BaseModel):
    data: list[AreaPublic]
    count: int


class LinesPublic(BaseModel):
    data: list[LinePublic]
    count: int


class AssetsPublic(BaseModel):
    data: list[AssetPublic]
    count: int


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


class PointsPublic(BaseModel):
    data: list[PointPublic]
    count: int


FAMILIES: dict[str, tuple[type[BaseModel], type[BaseModel], type[BaseModel], type[BaseModel]]] = {
    "sites": (SiteCreate, SiteUpdate, SitePublic, SitesPublic),
    "areas": (AreaCreate, AreaUpdate, AreaPublic, AreasPublic),
    "lines": (LineCreate, LineUpdate, LinePublic, LinesPublic),
    "assets": (AssetCreate, AssetUpdate, AssetPublic, AssetsPublic),
    "devices": (DeviceCreate, DeviceUpdate, DevicePublic, DevicesPublic),
    "points": (PointCreate, PointUpdate, PointPublic, PointsPublic),
}


# -- the whole document -----------------------------------------------------------------------------------
@router.get("/model", response_model=ModelPublic, response_model_exclude_none=True, dependencies=READ)
def get_model(svc: ServicesDep) -> Any:
    """The plant hierarchy as JSON, with the stored model version."""
    return hierarchy.model_public(svc)


@router.put("/model", response_model=ModelPublic, response_model_exclude_none=True, responses=MODEL_ERRORS,
            openapi_extra=body_schema(ModelReplace, yaml=True), dependencies=WRITE)
async def replace_model(request: Request, svc: ServicesDep, actor: ActorDep) -> Any:
    """Replaces the whole hierarchy. Send JSON, or YAML with `Content-Type: application/yaml`."""
    raw = await read_body(request, MAX_JSON_BODY_BYTES)
    doc = hierarchy.parse_model_body(raw, request.headers.get("content-type", "application/json"))
    # replace_model touches the store and the registry: keep it off the event loop
    return await run_in_threadpool(hierarchy.replace_document, svc, doc, actor)


# -- one level of the hierarchy ---------------------------------------------------------------------------
def _path_doc(level: Level) -> str:
    parts = ("site", "area", "line", "asset", "device", "point")[: level.depth]
    return f"{level.singular} path: {'/'.join(parts)}" + (" (the point's tag)" if level.plural == "points" else "")


def _add_level(level: Level) -> None:
    create_model, update_model, public_model, list_model = FAMILIES[level.plural]
    one, many = level.singular, level.plural
    item = f"/model/{many}/{{path:depth{level.depth}}}"
    ItemPath = Annotated[str, Path(description=_path_doc(level))]

    if level.depth == 1:
        def list_items(svc: ServicesDep) -> Any:
            rows = hierarchy.list_entities(svc, level, None)
            return {"data": rows, "count": len(rows)}

        def create_item(svc: ServicesDep, body: JsonObject, actor: ActorDep) -> Any:
            return hierarchy.create_entity(svc, level, None, body, actor)

        collection = f"/model/{many}"
    else:
        parent = LEVELS[level.depth - 2]
        ParentPath = Annotated[str, Path(description=_path_doc(parent))]

        def list_items(svc: ServicesDep, parent_path: ParentPath) -> Any:  # type: ignore[misc]
            rows = hierarchy.list_entities(svc, level, parent_path)
            return {"data": rows, "count": len(rows)}

        def create_item(svc: ServicesDep, parent_path: ParentPath, body: JsonObject, actor: ActorDep) -> Any:  # type: ignore[misc]
            return hierarchy.create_entity(svc, level, parent_path, body, actor)

        collection = f"/model/{parent.plural}/{{parent_path:depth{parent.depth}}}/{many}"

    def get_item(svc: ServicesDep, path: ItemPath) -> Any:
        return hierarchy.get_entity(svc, level, path)

    def update_item(svc: ServicesDep, path: ItemPath, body: JsonObject, actor: ActorDep) -> Any:
        return hierarchy.update_entity(svc, level, path, body, actor)

    def delete_item(svc: ServicesDep, path: ItemPath, actor: ActorDep) -> Response:
        hierarchy.delete_entity(svc, level, path, actor)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    common = {"response_model_exclude_none": True, "responses": MODEL_ERRORS}
    router.add_api_route(collection, list_items, methods=["GET"], name=f"list_{many}", response_model=list_model, dependencies=READ,
                         summary=f"List {many}", **common)
    router.add_api_route(collection, create_item, methods=["POST"], name=f"create_{one}", response_model=public_model,
                         status_code=201, summary=f"Create a {one}", openapi_extra=body_schema(create_model), dependencies=WRITE, **common)
    router.add_api_route(item, get_item, methods=["GET"], name=f"get_{one}", response_model=public_model, dependencies=READ,
                         summary=f"Get a {one}", **common)
    router.add_api_route(item, update_item, methods=["PATCH"], name=f"update_{one}", response_model=public_model,
                         summary=f"Update a {one}", description="Merges the given fields; a field set to null returns to its default.",
                         openapi_extra=body_schema(update_model), dependencies=WRITE, **common)
    router.add_api_route(item, delete_item, methods=["DELETE"], name=f"delete_{one}", status_code=204,
                         summary=f"Delete a {one} and everything below it", description="Stored history stays queryable.",
                         response_class=Response, responses=MODEL_ERRORS, dependencies=WRITE)


for _lv in LEVELS:
    _add_level(_lv)


def _unmatched_model_path(rest: str) -> Any:
    """Any other path under /model: a collection under a parent path of the wrong depth, an unknown level...
    404 naming what is expected (without this, a POST matching a GET-only route by shape would answer 405)."""
    levels = ", ".join(lv.plural for lv in LEVELS)
    raise NotFound(f"no model entity or collection at /api/model/{rest}: paths are /api/model/<level>/<path> and "
                   f"/api/model/<parent level>/<parent path>/<level>, with level one of {levels} and one path "
                   "segment per level ('site/area/line/asset/device/point')")


router.add_api_route("/model/{rest:path}", _unmatched_model_path, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                     include_in_schema=False, responses=MODEL_ERRORS, dependencies=READ)


# -- flat list of points ----------------------------------------------------------------------------------
class PointSummary(BaseModel):
    tag: str
    name: str | None = None
    unit: str
    data_type: str
    range: Range | None = None
    period: str | float
    criticality: str
    device: str
    auto: bool = False  # registered by ingest.unknown_points: auto_register, not part of the plant model
    shadow: bool = False  # the device runs in shadow mode: stored and flagged, no alarms


class PointSummariesPublic(BaseModel):
    data: list[PointSummary]
    count: int


@router.get("/points", response_model=PointSummariesPublic, dependencies=READ)
def list_all_points(svc: ServicesDep, prefix: Annotated[str | None, Query(description="only tags starting with this")] = None) -> Any:
    """Every point of the plant model, flat, then the points auto-registered by ingest."""
    rows = hierarchy.flat_points(svc, prefix)
    return {"data": rows, "count": len(rows)}
