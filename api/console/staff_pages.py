"""Staff in the console (admins only): the list, inviting, disabling, resetting two-factor.

The same service calls as ``kakin staff create|disable|reset-2fa`` (``kakin.services.staff``),
each audited with the admin as actor and the request's address. Inviting makes the
account with a temporary password (``staff.invite_staff``), shown once on the answer
to the form for the admin to hand over; the invited person signs in with it and enrols
two-factor as everyone does. Disabling and resetting ask first on a page of their own.
The service refuses an admin disabling themself; the page offers no such button either.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.console.account import input_error
from api.console.api_key_pages import NO_STORE
from api.console.auth import (
    SIGN_IN,
    Admin,
    ConsoleDenied,
    SignedIn,
    console_of,
    form_of,
    locale_of,
    origin_of,
)
from api.console.messages import translator
from api.console.rendering import render, see_other
from api.deps import deps_of
from kakin.services import staff
from kakin.services.errors import ConflictError, InvalidRequestError, NotFoundError
from kakin.services.staff import Origin, StaffInfo, StaffInputError, StaffRole

router = APIRouter(include_in_schema=False)
STAFF = "/console/staff"
ROLES = tuple(StaffRole)

DISABLE, RESET_2FA = "disable", "reset-2fa"
# The two actions on a member, each confirmed first, and the service call of each.
ACTIONS: dict[str, Callable[..., StaffInfo]] = {
    DISABLE: staff.disable_staff,
    RESET_2FA: staff.reset_two_factor,
}


async def _list_page(
    request: Request, me: SignedIn, *, status: int = 200, error: str = "",
    form: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    members = await run_in_threadpool(staff.list_staff, deps_of(request).sessions)
    return render(
        request, "staff.html.j2", status=status, members=members, roles=ROLES,
        locales=staff.LOCALES, error=error, form=form or {"locale": me.staff.locale},
        done=request.query_params.get("done", ""), done_email=request.query_params.get("email", ""),
    )  # fmt: skip


@router.get(STAFF)
async def staff_list(request: Request, me: Admin) -> Response:
    return await _list_page(request, me)


@router.post(STAFF)
async def invite(request: Request, me: Admin) -> Response:
    form = await form_of(request)  # its CSRF token checked by require_staff
    t = translator(locale_of(request, me.staff))
    try:
        invited = await run_in_threadpool(
            staff.invite_staff, deps_of(request).sessions, email=form.get("email", ""),
            name=form.get("name", ""), role=form.get("role", ""), locale=form.get("locale", ""),
            actor=me.staff.actor, origin=origin_of(request), now=console_of(request).clock(),
        )  # fmt: skip
    except StaffInputError as error:
        return await _list_page(
            request, me, status=422, error=input_error(request, error), form=form
        )
    except ConflictError:
        error_text = t("staff.email_taken", email=form.get("email", "").strip())
        return await _list_page(request, me, status=409, error=error_text, form=form)
    except InvalidRequestError:  # a role or language the form does not offer
        return await _list_page(request, me, status=422, error=t("staff.invalid"), form=form)
    return render(
        request, "staff_invited.html.j2", member=invited.member, password=invited.password,
        request_base=str(request.base_url).rstrip("/"), headers=NO_STORE,
    )  # fmt: skip


async def _member(request: Request, staff_id: str) -> StaffInfo:
    try:
        return await run_in_threadpool(staff.get_staff, deps_of(request).sessions, staff_id)
    except NotFoundError:
        raise ConsoleDenied(404, "error.not_found") from None


async def _confirm(request: Request, staff_id: str, action: str, me: SignedIn) -> Response:
    member = await _member(request, staff_id)
    own = action == DISABLE and member.id == me.staff.id
    return render(request, "staff_confirm.html.j2", member=member, action=action, own=own)


async def _act(request: Request, staff_id: str, action: str, me: SignedIn) -> Response:
    member = await _member(request, staff_id)
    origin: Origin = origin_of(request)
    try:
        await run_in_threadpool(
            ACTIONS[action], deps_of(request).sessions, member.email, actor=me.staff.actor,
            origin=origin, now=console_of(request).clock(),
        )  # fmt: skip
    except ConflictError:  # disabling oneself
        return render(
            request, "staff_confirm.html.j2", status=409, member=member, action=action, own=True
        )
    if member.id == me.staff.id:  # one's own two-factor reset: this session has ended too
        return see_other(f"{SIGN_IN}?ended=1")
    return see_other(f"{STAFF}?" + urlencode({"done": action, "email": member.email}))


@router.get(STAFF + "/{staff_id}/disable")
async def confirm_disable(request: Request, staff_id: str, me: Admin) -> Response:
    return await _confirm(request, staff_id, DISABLE, me)


@router.post(STAFF + "/{staff_id}/disable")
async def disable(request: Request, staff_id: str, me: Admin) -> Response:
    return await _act(request, staff_id, DISABLE, me)


@router.get(STAFF + "/{staff_id}/reset-2fa")
async def confirm_reset_two_factor(request: Request, staff_id: str, me: Admin) -> Response:
    return await _confirm(request, staff_id, RESET_2FA, me)


@router.post(STAFF + "/{staff_id}/reset-2fa")
async def reset_two_factor(request: Request, staff_id: str, me: Admin) -> Response:
    return await _act(request, staff_id, RESET_2FA, me)
