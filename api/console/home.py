"""The console's root (to the dashboard, ``dashboard.py``) and its static files.

(Staff: ``staff_pages``; API keys: ``api_key_pages``.)
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from api.console.auth import HOME, ConsoleDenied
from api.console.rendering import see_other
from kakin.adapters.rendering import DEFAULT_TEMPLATES_DIR

router = APIRouter(include_in_schema=False)
STATIC = DEFAULT_TEMPLATES_DIR / "console" / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


@router.get("/console")
async def console_root() -> RedirectResponse:
    return see_other(HOME)


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
