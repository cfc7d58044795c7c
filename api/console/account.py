"""A staff member's own security: two-factor enrolment, recovery codes, the password.

Enrolment is forced at sign-in while two-factor is required (the pending ``enrol``
session can open nothing else); a staff member signed in without it (two-factor not
required) may enrol here too. Confirming shows the ten recovery codes once; so does
making new ones. Changing the password ends every other session of that person.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from markupsafe import Markup

from api.console.auth import (
    SIGN_IN,
    STAGE_PAGES,
    AnyStaff,
    ConsoleDenied,
    check_csrf,
    clear_session,
    console_of,
    current_session,
    locale_of,
    origin_of,
    set_session,
    started_session,
)
from api.console.messages import translator
from api.console.rendering import render, see_other
from api.console.sign_in import refusal_page
from api.deps import deps_of
from kakin.platform.codec import EncryptionKeyError, Keyring
from kakin.services import staff, staff_sessions, staff_two_factor
from kakin.services.errors import ConflictError
from kakin.services.staff import StaffInfo, StaffInputError
from kakin.services.staff_sessions import SessionEndedError, Stage
from kakin.services.staff_throttle import SignInRefusedError

router = APIRouter(include_in_schema=False)
ENROL = STAGE_PAGES[Stage.ENROL]
RECOVERY_CODES = "/console/recovery-codes"
PASSWORD = "/console/password"


def _keyring(request: Request) -> Keyring:
    try:
        return console_of(request).keyring()
    except EncryptionKeyError:
        raise ConsoleDenied(503, "error.keys") from None


def input_error(request: Request, error: StaffInputError) -> str:
    """A refused password or code, in the reader's language."""
    return translator(locale_of(request))(f"error.{error.reason}", limit=error.limit)


async def _enrol_page(
    request: Request, me: StaffInfo, *, status: int = 200, error: str = ""
) -> Response:
    if me.two_factor:
        return render(request, "enrol.html.j2", me=me, done=True, error="")
    keyring = _keyring(request)
    try:
        enrolment = await run_in_threadpool(
            staff_two_factor.begin_enrolment, deps_of(request).sessions, keyring, me.id
        )
    except ConflictError:  # confirmed meanwhile, in another tab
        return render(request, "enrol.html.j2", me=me, done=True, error="")
    grouped = " ".join(enrolment.secret[i : i + 4] for i in range(0, len(enrolment.secret), 4))
    return render(
        request,
        "enrol.html.j2",
        status=status,
        me=me,
        done=False,
        error=error,
        # segno's SVG of our own otpauth URI: markup we made, not input to escape.
        qr_svg=Markup(enrolment.qr_svg),
        secret=grouped,
    )


@router.get(ENROL)
async def enrol_page(request: Request) -> Response:
    found = await current_session(request)
    if found is None:
        return see_other(SIGN_IN)
    current = found[1]
    if current.stage is Stage.SECOND_FACTOR:
        return see_other(STAGE_PAGES[Stage.SECOND_FACTOR])
    return await _enrol_page(request, current.staff)


@router.post(ENROL)
async def enrol(request: Request) -> Response:
    form = await check_csrf(request)
    found = await current_session(request)
    if found is None or found[1].stage is Stage.SECOND_FACTOR:
        return see_other(SIGN_IN)
    token, current = found
    console, sessions = console_of(request), deps_of(request).sessions
    code, origin = form.get("code", ""), origin_of(request)
    keyring = _keyring(request)
    try:
        if current.stage is Stage.ENROL:
            started, codes = await run_in_threadpool(
                staff_sessions.finish_enrolment, sessions, keyring, token=token, code=code,
                origin=origin, now=console.clock(), policy=console.policy,
            )  # fmt: skip
            started_session(request, started.token)
            response = render(request, "recovery_codes.html.j2", me=started.staff, codes=codes)
            set_session(request, response, started.token)
            return response
        codes = await run_in_threadpool(
            staff_two_factor.confirm_enrolment, sessions, keyring, current.staff.id, code,
            origin=origin, now=console.clock(),
        )  # fmt: skip
    except SessionEndedError:
        ended: Response = see_other(f"{SIGN_IN}?ended=1")
        clear_session(ended)
        return ended
    except SignInRefusedError as error:
        return refusal_page(
            request, "enrol.html.j2", error, "error.code_wrong", done="", qr_svg="", secret=""
        )
    except StaffInputError as error:
        return await _enrol_page(
            request, current.staff, status=422, error=input_error(request, error)
        )
    except ConflictError:
        return await _enrol_page(request, current.staff)
    me = replace(current.staff, two_factor=True)
    return render(request, "recovery_codes.html.j2", me=me, codes=codes)


@router.get(RECOVERY_CODES)
async def recovery_codes_page(request: Request, me: AnyStaff) -> Response:
    left = await run_in_threadpool(
        staff_two_factor.recovery_codes_left, deps_of(request).sessions, me.staff.id
    )
    return render(request, "recovery_codes.html.j2", codes=None, left=left)


@router.post(RECOVERY_CODES)
async def new_recovery_codes(request: Request, me: AnyStaff) -> Response:
    try:
        codes = await run_in_threadpool(
            staff_two_factor.new_recovery_codes, deps_of(request).sessions, me.staff.id,
            origin=origin_of(request), now=console_of(request).clock(),
        )  # fmt: skip
    except ConflictError:  # no two-factor yet: enrol first
        return see_other(ENROL)
    return render(request, "recovery_codes.html.j2", codes=codes)


@router.get(PASSWORD)
async def password_page(request: Request, me: AnyStaff) -> Response:
    t = translator(locale_of(request, me.staff))
    notice = t("password.temporary") if me.staff.password_temporary else ""
    return render(request, "password.html.j2", error="", notice=notice)


@router.post(PASSWORD)
async def change_password(request: Request, me: AnyStaff) -> Response:
    form = await check_csrf(request)
    t = translator(locale_of(request, me.staff))
    new = form.get("new_password", "")
    if new != form.get("confirm_password", ""):
        return render(
            request, "password.html.j2", status=422, error=t("password.mismatch"), notice=""
        )
    try:
        ended = await run_in_threadpool(
            staff.change_password, deps_of(request).sessions, me.staff.id,
            current=form.get("current_password", ""), new=new, keep_session_id=me.session_id,
            origin=origin_of(request), now=console_of(request).clock(),
        )  # fmt: skip
    except StaffInputError as error:
        return render(
            request, "password.html.j2", status=422, error=input_error(request, error), notice=""
        )
    return render(request, "password.html.j2", error="", notice=t("password.changed", count=ended))
