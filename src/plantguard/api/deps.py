"""Dependencies shared by the routers, declared once as Annotated aliases."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from pydantic import BaseModel

from plantguard.domain.actor import Actor
from plantguard.errors import InvalidInput
from plantguard.services import Services

from plantguard.api.errors import PayloadTooLarge

MAX_JSON_BODY_BYTES = 16 * 1024 * 1024  # model documents and small command bodies; ingest has its own limit


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]

def get_actor(request: Request) -> Actor:
    """Who sends this request: the authenticated user, token or device (api/permissions.py). A route that
    records an actor also requires a permission, so an anonymous request never reaches it."""
    from plantguard.api.permissions import principal_of

    p = principal_of(request)
    if p.via == "none":
        from plantguard.errors import Unauthenticated

        raise Unauthenticated("log in, or send an API token (Authorization: Bearer ...)")
    return p.actor


ActorDep = Annotated[Actor, Depends(get_actor)]


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refusing it as soon as it exceeds max_bytes: by Content-Length before reading anything,
    and while streaming for chunked uploads that announce no length."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise InvalidInput(f"invalid Content-Length {declared!r}") from None
        if n > max_bytes:
            raise PayloadTooLarge(f"payload of {n} bytes exceeds the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"payload exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise InvalidInput("the request body is empty; expected JSON")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"malformed JSON: {e}") from None


async def json_object(request: Request) -> dict:
    """A JSON object body read without a pydantic model, so that the plant model's own validation (with
    document field paths) decides what is valid."""
    doc = parse_json(await read_body(request, MAX_JSON_BODY_BYTES))
    if not isinstance(doc, dict):
        raise InvalidInput("the request body must be a JSON object")
    return doc


JsonObject = Annotated[dict, Depends(json_object)]

# Request body schemas for routes that read their body themselves; app.py adds them to the OpenAPI components.
BODY_MODELS: dict[str, type[BaseModel]] = {}


def body_schema(model: type[BaseModel], *, yaml: bool = False) -> dict:
    """openapi_extra documenting a body the route reads itself."""
    BODY_MODELS[model.__name__] = model
    ref = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    content = {"application/json": ref}
    if yaml:
        content["application/yaml"] = ref
    return {"requestBody": {"required": True, "content": content}}
