"""The /shift-notes/{line} page of the dashboard."""

from __future__ import annotations

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from plantguard.api.permissions import require
from plantguard.domain.roles import Permission

router = APIRouter(include_in_schema=False, dependencies=[require(Permission.READ)])


@router.get("/shift-notes/{line:path}", response_class=HTMLResponse)
def notes_page(line: str, request: Request) -> HTMLResponse:
    notes = request.app.state.services.of("shift_notes").list(line)
    items = "".join(f"<li><b>{html.escape(n.author)}</b>: {html.escape(n.text)}</li>" for n in notes)
    return HTMLResponse(f"<!doctype html><title>Shift notes</title><h1>Shift notes: {html.escape(line)}</h1><ul>{items}</ul>")
