"""API keys in the console (admins only): the list, a new key shown once, revoking one.

The same service as ``kakin keys`` (``kakin.services.api_keys``), with the admin as the
audit row's actor. A new key's secret is in the one response that answers the form
(never a redirect to a page that could show it again, and ``Cache-Control: no-store``
so the browser keeps no copy); afterwards only its prefix is ever shown. Revoking asks
first on a page of its own, so it works without JavaScript.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.console.auth import Admin, ConsoleDenied, form_of, locale_of
from api.console.messages import translator
from api.console.rendering import render, see_other
from api.deps import deps_of
from kakin.services import api_keys
from kakin.services.api_keys import KeyInputError, Role
from kakin.services.errors import NotFoundError

router = APIRouter(include_in_schema=False)
KEYS = "/console/api-keys"
ROLES = tuple(Role)
# A page holding a secret: no copy in the browser's cache or a proxy's.
NO_STORE = {"Cache-Control": "no-store"}


async def _list_page(
    request: Request, *, status: int = 200, error: str = "", form: dict[str, str] | None = None
) -> Response:
    keys = await run_in_threadpool(api_keys.list_keys, deps_of(request).sessions)
    # Newest first, the active ones before the revoked.
    keys.sort(key=lambda k: k.created_at, reverse=True)
    keys.sort(key=lambda k: k.revoked_at is not None)
    revoked = request.query_params.get("revoked", "")
    return render(
        request, "api_keys.html.j2", status=status, keys=keys, roles=ROLES, error=error,
        form=form or {}, revoked=next((k for k in keys if k.id == revoked), None),
    )  # fmt: skip


@router.get(KEYS)
async def key_list(request: Request, me: Admin) -> Response:
    return await _list_page(request)


@router.post(KEYS)
async def create_key(request: Request, me: Admin) -> Response:
    form = await form_of(request)  # its CSRF token checked by require_staff
    try:
        created = await run_in_threadpool(
            api_keys.create_key, deps_of(request).sessions, name=form.get("name", ""),
            role=form.get("role", ""), actor=me.staff.actor,
        )  # fmt: skip
    except KeyInputError as error:
        t = translator(locale_of(request, me.staff))
        words = "keys.name_missing" if error.field == "name" else "keys.role_unknown"
        return await _list_page(request, status=422, error=t(words), form=form)
    return render(
        request, "api_key_created.html.j2", key=created.info, secret=created.secret,
        headers=NO_STORE,
    )  # fmt: skip


async def _key(request: Request, key_id: str) -> api_keys.KeyInfo:
    try:
        return await run_in_threadpool(api_keys.get_key, deps_of(request).sessions, key_id)
    except NotFoundError:
        raise ConsoleDenied(404, "error.not_found") from None


@router.get(KEYS + "/{key_id}/revoke")
async def confirm_revoke(request: Request, key_id: str, me: Admin) -> Response:
    return render(request, "api_key_revoke.html.j2", key=await _key(request, key_id))


@router.post(KEYS + "/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str, me: Admin) -> Response:
    key = await _key(request, key_id)
    await run_in_threadpool(
        api_keys.revoke_key, deps_of(request).sessions, key.id, actor=me.staff.actor
    )
    return see_other(f"{KEYS}?revoked={key.id}")
