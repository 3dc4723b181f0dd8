"""The HTTP API: a thin FastAPI shell over a Platform.

The caller owns the Platform's lifecycle (start() before serving, stop() after): the same Platform may also
feed the CLI or a simulator, and one shutdown order (sources, pipeline drain, store) applies everywhere.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from plantguard import __version__, capabilities
from plantguard.runtime import Platform

from plantguard.api import dead_letters, gateway, health, ingest, model, telemetry
from plantguard.api.deps import BODY_MODELS
from plantguard.api.errors import ErrorPublic, install_error_handlers
from plantguard.api.guard import GuardMiddleware
from plantguard.api.metrics import build_registry
from plantguard.web import live, routes as web

API_PREFIX = "/api"
SWAGGER = "/static/vendor/swagger-ui-dist"  # vendored by scripts/vendor-web.sh


def operation_id(route: APIRoute) -> str:
    """Operation ids are the route names (list_sites, ingest_readings, ...): readable in generated clients."""
    return route.name


def create_app(platform: Platform) -> FastAPI:
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
    app.state.platform = platform
    app.state.metrics_registry = build_registry(platform)
    app.state.submit_timeout_s = ingest.SUBMIT_TIMEOUT_S
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX)
    for r in (model.router, ingest.router, telemetry.router, dead_letters.router, health.router, gateway.router, live.router):
        api.include_router(r)
    for cap in capabilities.registered():  # alarms, analytics, and whatever capability is registered
        for r in (cap.routers() if cap.routers is not None else []):
            api.include_router(r)
    app.include_router(api)
    app.include_router(health.metrics_router)
    # The operator dashboard at the root; the API stays under /api and its docs at /docs.
    app.include_router(web.router)
    app.mount("/static", StaticFiles(directory=web.STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="plantguard API",
                                   swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js", swagger_css_url=f"{SWAGGER}/swagger-ui.css",
                                   swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png")

    _document_bodies(app)
    app.add_middleware(GuardMiddleware, allowed_hosts=list(platform.cfg.api.allowed_hosts))
    return app


def _document_bodies(app: FastAPI) -> None:
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
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _schema(m, components: dict) -> dict:
    s = m.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, d in s.pop("$defs", {}).items():
        components.setdefault(name, d)
    return s
