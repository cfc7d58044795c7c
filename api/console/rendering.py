"""Console pages rendered from ``templates/console/``, and the answers to refusals.

Every page gets ``t`` (the catalog in the reader's language), ``csrf_token`` for its
forms, ``csp_nonce`` for a script it may carry, and ``me`` (the staff member, or None
before sign-in). Templates are autoescaped: a customer name holding ``<script>`` is
shown as text.
"""

from __future__ import annotations

from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.console.auth import ConsoleDenied, ConsoleRedirect, csrf_for, keep_anchor, locale_of
from api.console.messages import translator
from api.console.navigation import menu_for
from api.deps import deps_of
from api.watched_send import WatchedSend
from kakin.services import console_forms
from kakin.services.staff import StaffInfo


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    me: StaffInfo | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    me = me or getattr(request.state, "console_staff", None)
    locale = locale_of(request, me)
    templates: jinja2.Environment = request.app.state.templates
    # The navigation is for a finished sign-in (a page behind require_staff, or the one
    # that finishes enrolment), not for a pending one.
    signed_in = hasattr(request.state, "console_staff") or hasattr(
        request.state, "fresh_session_token"
    )
    html = templates.get_template(f"console/{template}").render(
        t=translator(locale),
        menu=menu_for(me) if signed_in and me else [],
        here=request.url.path,
        locale=locale,
        me=me,
        signed_in=signed_in,
        csrf_token=csrf_for(request),
        csp_nonce=getattr(request.state, "csp_nonce", ""),
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=headers)
    keep_anchor(request, response)
    return response


def see_other(location: str) -> RedirectResponse:
    """303: after a POST the browser GETs ``location``."""
    return RedirectResponse(location, status_code=303)


# A refusal with no sentence of its own (a path nothing serves, a bug) by its status.
STATUS_KEYS = {404: "error.not_found", 405: "error.not_found", 500: "error.internal"}


def error_page(request: Request, status: int, message: str | None) -> HTMLResponse:
    """A refusal on a console path as a page: the service's sentence, or one by status."""
    if message is None:
        return render(
            request, "error.html.j2", status=status,
            message_key=STATUS_KEYS.get(status, "error.internal"), params={},
        )  # fmt: skip
    return render(
        request, "error.html.j2", status=status, message_key=None, params={}, message=message
    )


def install(app: FastAPI) -> None:
    """Refusals on console pages are HTML pages (the API's are JSON)."""
    app.state.error_pages = [("/console", error_page)]

    app.add_middleware(GiveBackRefusedForms)

    @app.exception_handler(ConsoleRedirect)
    async def _redirect(_: Request, redirect: ConsoleRedirect) -> RedirectResponse:
        return see_other(redirect.location)

    @app.exception_handler(ConsoleDenied)
    async def _denied(request: Request, denied: ConsoleDenied) -> HTMLResponse:
        return render(
            request, "error.html.j2", status=denied.status, message_key=denied.key,
            params=denied.params,
        )  # fmt: skip


class GiveBackRefusedForms:
    """A console form refused (answered with 400 or more, or failing) gives its page's
    token back (``console_forms.release``): corrected and sent again, it acts then."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/console"):
            await self.app(scope, receive, send)
            return
        sending = WatchedSend(send)
        try:
            await self.app(scope, receive, sending)
        finally:
            # check_csrf keeps the token it spent in the request's state (scope["state"]).
            nonce = scope.get("state", {}).get("spent_form")
            if sending.status >= 400 and nonce is not None:
                sessions = deps_of(Request(scope)).sessions
                await run_in_threadpool(console_forms.release, sessions, nonce)
