"""The console's home page ("signed in as") and its static files.

The home page is a placeholder the dashboard replaces. (Staff: ``staff_pages``.)
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from api.console.auth import HOME, AnyStaff, ConsoleDenied
from api.console.rendering import render, see_other
from kakin.adapters.rendering import DEFAULT_TEMPLATES_DIR

router = APIRouter(include_in_schema=False)
STATIC = DEFAULT_TEMPLATES_DIR / "console" / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


@router.get("/console")
async def console_root() -> RedirectResponse:
    return see_other(HOME)


@router.get(HOME)
async def home(request: Request, me: AnyStaff) -> Response:
    return render(request, "home.html.j2")


@router.get("/console/static/{name}")
async def static_file(name: str) -> Response:
    # The console's styles and scripts, served from the project (CSP default-src 'self'):
    # no CDN, no inline style. Only a file directly in static/ of a known type.
    path = STATIC / name
    kind = STATIC_TYPES.get(path.suffix)
    if kind is None or "/" in name or name.startswith(".") or not path.is_file():
        raise ConsoleDenied(404, "error.not_found")
    return Response(
        path.read_bytes(), media_type=kind, headers={"Cache-Control": "public, max-age=3600"}
    )
