"""The console's root (to the dashboard, ``dashboard.py``), the staff list for admins,
the stylesheet.

The staff list is read-only until the back office adds inviting, disabling and
resetting two-factor.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.console.auth import HOME, ConsoleDenied, SignedIn, require_staff
from api.console.rendering import render, see_other
from api.deps import deps_of
from kakin.adapters.rendering import DEFAULT_TEMPLATES_DIR
from kakin.services import staff
from kakin.services.staff import StaffRole

router = APIRouter(include_in_schema=False)
STATIC = DEFAULT_TEMPLATES_DIR / "console" / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
Admin = Annotated[SignedIn, Depends(require_staff(StaffRole.ADMIN))]


@router.get("/console")
async def console_root() -> RedirectResponse:
    return see_other(HOME)


@router.get("/console/staff")
async def staff_list(request: Request, me: Admin) -> Response:
    members = await run_in_threadpool(staff.list_staff, deps_of(request).sessions)
    return render(request, "staff.html.j2", members=members)


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
