"""The one place where plantguard errors become HTTP responses.

Every error body has the same shape: ``{"detail": "<message>"}``; configuration and request validation errors
add ``"problems": [{"path": ..., "message": ...}, ...]`` listing every problem with its field path.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from plantguard.errors import (Forbidden, TooManyAttempts, Unauthenticated,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    Overloaded,
    PlantguardError,
    Unavailable,
    StoreError,
)

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1


class PayloadTooLarge(InvalidInput):
    """A request body above the configured limit (413 rather than 400: the client must split it)."""


class ProblemPublic(BaseModel):
    path: str
    message: str


class ErrorPublic(BaseModel):
    detail: str
    problems: list[ProblemPublic] | None = None


# Most specific first: the first class in an error's MRO found here decides the status.
STATUS = {
    PayloadTooLarge: 413,
    ConfigError: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthenticated: 401,
    Forbidden: 403,
    TooManyAttempts: 429,
    InvalidInput: 400,
    Overloaded: 503,
    StoreError: 503,
    Unavailable: 503,
    PlantguardError: 500,
}


def status_of(exc: PlantguardError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


async def plantguard_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlantguardError)
    status = status_of(exc)
    if status == 401 and not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", ""):
        from urllib.parse import quote

        from fastapi.responses import RedirectResponse

        return RedirectResponse("/login?next=" + quote(request.url.path), status_code=303)
    if status == 403 and not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", ""):
        try:  # a page the role may not open: a page that says so, with the header and navigation it may use
            from plantguard.web.routes import render

            return render(request, "forbidden.html", "forbidden", status_code=403, message=str(exc))
        except Exception:  # noqa: BLE001 - the JSON answer below is still right
            log.exception("rendering the 403 page failed")
    if isinstance(exc, ConfigError):
        body = {
            "detail": f"{len(exc.problems)} configuration error(s)",
            "problems": [{"path": p.path, "message": p.message} for p in exc.problems],
        }
    else:
        body = {"detail": str(exc)}
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
    elif status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="plantguard"'}
    if status >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc)
    return JSONResponse(body, status_code=status, headers=headers)


def _loc(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


async def request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Query, path and small JSON bodies validated by FastAPI: same envelope as ConfigError."""
    assert isinstance(exc, RequestValidationError)
    problems = [{"path": _loc(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()]
    return JSONResponse({"detail": f"{len(problems)} invalid request parameter(s)", "problems": problems}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PlantguardError, plantguard_error)
    app.add_exception_handler(RequestValidationError, request_validation_error)


# Declared on routes so the OpenAPI document shows the error envelope.
ERROR_RESPONSES: dict[int | str, dict] = {
    400: {"model": ErrorPublic, "description": "invalid input"},
    404: {"model": ErrorPublic, "description": "not found"},
    503: {"model": ErrorPublic, "description": "overloaded or storage unavailable (see Retry-After)"},
}
