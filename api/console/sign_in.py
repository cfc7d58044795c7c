"""Signing in and out: the password, the second factor, sign-out.

``POST /console/sign-in`` checks the password and opens a pending session; the browser
then goes to ``/console/sign-in/2fa`` (a TOTP or recovery code) or, for a staff member
without two-factor while it is required, to ``/console/2fa/enrol``. Refusals re-show the
form: 401 for a wrong password or code, 429 with ``Retry-After`` when throttled or
locked (``kakin.services.staff_sessions``).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.console.auth import (
    HOME,
    SIGN_IN,
    STAGE_PAGES,
    check_csrf,
    clear_session,
    console_of,
    current_session,
    locale_of,
    origin_of,
    session_token,
    set_session,
)
from api.console.messages import translator
from api.console.rendering import render, see_other
from api.deps import deps_of
from kakin.services import staff_sessions
from kakin.services.staff_sessions import SessionEndedError, Stage
from kakin.services.staff_throttle import SignInRefusedError

router = APIRouter(include_in_schema=False)
TWO_FACTOR = STAGE_PAGES[Stage.SECOND_FACTOR]


def next_page(value: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    if value and value.startswith("/console/") and not value.startswith("/console//"):
        return value
    return HOME


def refusal_page(
    request: Request, template: str, error: SignInRefusedError, wrong_key: str, **context: Any
) -> HTMLResponse:
    """The form again, saying why: 429 with Retry-After when throttled, else 401."""
    t = translator(locale_of(request))
    if error.retry_at is None:
        return render(request, template, status=401, error=t(wrong_key), **context)
    seconds = max(1, math.ceil((error.retry_at - console_of(request).clock()).total_seconds()))
    message = (
        t("sign_in.locked", minutes=math.ceil(seconds / 60))
        if error.locked
        else t("sign_in.wait", seconds=seconds)
    )
    return render(
        request, template, status=429, error=message, headers={"Retry-After": str(seconds)},
        **context,
    )  # fmt: skip


@router.get(SIGN_IN)
async def sign_in_page(request: Request) -> Response:
    found = await current_session(request)
    if found is not None:
        stage = found[1].stage
        return see_other(HOME if stage is Stage.SIGNED_IN else STAGE_PAGES[stage])
    notice = ""
    t = translator(locale_of(request))
    if request.query_params.get("ended"):
        notice = t("sign_in.ended")
    elif request.query_params.get("signed_out"):
        notice = t("sign_in.signed_out")
    return render(
        request, "sign_in.html.j2", notice=notice, error="", email="",
        next=next_page(request.query_params.get("next")),
    )  # fmt: skip


@router.post(SIGN_IN)
async def sign_in(request: Request) -> Response:
    form = await check_csrf(request)
    console = console_of(request)
    email, target = form.get("email", ""), next_page(form.get("next"))
    try:
        started = await run_in_threadpool(
            staff_sessions.sign_in,
            deps_of(request).sessions,
            email=email,
            password=form.get("password", ""),
            origin=origin_of(request),
            now=console.clock(),
            policy=console.policy,
        )
    except SignInRefusedError as error:
        return refusal_page(
            request, "sign_in.html.j2", error, "sign_in.wrong", email=email[:320], next=target,
            notice="",
        )  # fmt: skip
    location = target if started.stage is Stage.SIGNED_IN else STAGE_PAGES[started.stage]
    if started.stage is not Stage.SIGNED_IN and target != HOME:
        location += f"?next={quote(target, safe='/')}"
    response = see_other(location)
    set_session(request, response, started.token)
    return response


@router.get(TWO_FACTOR)
async def two_factor_page(request: Request) -> Response:
    found = await current_session(request)
    if found is None or found[1].stage is not Stage.SECOND_FACTOR:
        return see_other(SIGN_IN)
    return render(
        request, "two_factor.html.j2", me=found[1].staff, error="",
        next=next_page(request.query_params.get("next")),
    )  # fmt: skip


@router.post(TWO_FACTOR)
async def two_factor(request: Request) -> Response:
    form = await check_csrf(request)
    console = console_of(request)
    token = session_token(request) or ""
    target = next_page(form.get("next"))
    try:
        started = await run_in_threadpool(
            staff_sessions.second_factor,
            deps_of(request).sessions,
            console.keyring(),
            token=token,
            code=form.get("code", ""),
            origin=origin_of(request),
            now=console.clock(),
            policy=console.policy,
        )
    except SessionEndedError:
        response: Response = see_other(f"{SIGN_IN}?ended=1")
        clear_session(response)
        return response
    except SignInRefusedError as error:
        return refusal_page(request, "two_factor.html.j2", error, "two_factor.wrong", next=target)
    response = see_other(target)
    set_session(request, response, started.token)
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request) -> RedirectResponse:
    await check_csrf(request)
    token = session_token(request)
    if token is not None:
        console = console_of(request)
        await run_in_threadpool(
            staff_sessions.sign_out,
            deps_of(request).sessions,
            token,
            origin=origin_of(request),
            now=console.clock(),
        )
    response = see_other(f"{SIGN_IN}?signed_out=1")
    clear_session(response)
    return response
