"""The HTTP API: a thin FastAPI shell over the platform's services (plantguard.services.Services).

The caller owns the platform's lifecycle (start() before serving, stop() after): the same platform may also
feed the CLI or a simulator, and one shutdown order (sources, pipeline drain, store) applies everywhere.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from plantguard import __version__, capabilities

from plantguard.api.permissions import check_routes, require
from plantguard.domain.roles import Permission
from plantguard.api import dead_letters, gateway, health, ingest, model, telemetry
from plantguard.api.deps import BODY_MODELS
from plantguard.api.errors import ErrorPublic, install_error_handlers
from plantguard.api.guard import DEFAULT_MAX_BODY, GuardMiddleware
from plantguard.api.metrics import build_registry
from plantguard.services import Services
from plantguard.web import live, routes as web

API_PREFIX = "/api"
SWAGGER = "/static/vendor/swagger-ui-dist"  # vendored by scripts/vendor-web.sh
SWAGGER_PAGE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>plantguard API</title>
<link rel="stylesheet" href="{SWAGGER}/swagger-ui.css"><link rel="icon" href="{SWAGGER}/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="{SWAGGER}/swagger-ui-bundle.js"></script><script src="/static/js/swagger-init.js"></script></body></html>
"""


def operation_id(route: APIRoute) -> str:
    """Operation ids are the route names (list_sites, ingest_readings, ...): readable in generated clients."""
    return route.name


def create_app(svc: Services) -> FastAPI:
    app = FastAPI(
        title="plantguard",
        version=__version__,
        description="Industrial IoT operations: plant model, telemetry ingest and queries, alarms, health. "
                    "The operator dashboard is at /.",
        docs_url=None,  # served below from the vendored Swagger UI: /docs works offline, as plants often are
        redoc_url=None,
        openapi_url="/openapi.json",
        generate_unique_id_function=operation_id,
    )
    app.state.services = svc
    app.state.metrics_registry = build_registry(svc)
    app.state.submit_timeout_s = ingest.SUBMIT_TIMEOUT_S
    install_error_handlers(app)

    api_routers = [model.router, ingest.router, telemetry.router, dead_letters.router, health.router, gateway.router, live.router]
    pages = []
    for cap in capabilities.registered():  # security, alarms, analytics, and whatever capability is registered
        api_routers += cap.routers() if cap.routers is not None else []
        pages += cap.pages() if cap.pages is not None else []
    # the login page before the dashboard, whose pages need a session; the API under /api, its docs at /docs
    root_routers = [health.metrics_router, *pages, web.router]
    # deny by default: a route that declares no permission is a start-up error, not an open door
    permissions = check_routes([(API_PREFIX, r) for r in api_routers] + [("", r) for r in root_routers])
    api = APIRouter(prefix=API_PREFIX)
    for r in api_routers:
        api.include_router(r)
    app.include_router(api)
    for r in root_routers:
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False, dependencies=[require(Permission.READ)])
    def swagger_ui() -> HTMLResponse:
        # FastAPI's page starts Swagger UI from an inline script, which the Content-Security-Policy forbids: the
        # same page with the start-up in a static file
        return HTMLResponse(SWAGGER_PAGE)

    _document_bodies(app, permissions)
    app.add_middleware(GuardMiddleware, allowed_hosts=list(svc.model.current().api.allowed_hosts),
                       max_body=max(svc.model.current().ingest.max_payload_bytes, DEFAULT_MAX_BODY))
    return app


def _document_bodies(app: FastAPI, permissions: dict | None = None) -> None:
    """Adds the schemas of bodies that routes read themselves (see deps.body_schema), and shows request
    validation errors with the API's own error envelope instead of FastAPI's default."""
    base = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = base()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, m in BODY_MODELS.items():
            components[name] = _schema(m, components)
        if "HTTPValidationError" in components:
            components["HTTPValidationError"] = _schema(ErrorPublic, components)
        for path, ops in schema.get("paths", {}).items():
            for method, op in ops.items():
                perm = (permissions or {}).get((method.upper(), path))
                if perm is not None:
                    op["x-permission"] = perm.value
                    op.setdefault("security", [] if perm.value == "public" else [{"bearer": []}, {"session": []}])
        components_root = schema.setdefault("components", {})
        components_root.setdefault("securitySchemes", {
            "bearer": {"type": "http", "scheme": "bearer", "description": "an API token: pgt_..."},
            "session": {"type": "apiKey", "in": "cookie", "name": "pg_session"}})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _schema(m, components: dict) -> dict:
    s = m.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, d in s.pop("$defs", {}).items():
        components.setdefault(name, d)
    return s
