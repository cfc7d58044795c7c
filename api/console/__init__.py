"""The staff console under ``/console``: server-rendered pages (Jinja2, ja and en).

``mount`` adds it to the API app: the pages (``sign_in``, ``account``, ``home``,
``dashboard``, the admins' ``staff_pages`` and ``api_key_pages``), their HTML refusals
(``rendering.install``) and security headers (``headers``). Who may see a page is
``auth.require_staff``; the pages call the services as the API does and hold no
business rule.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from api.console import (
    account,
    alert_pages,
    api_key_pages,
    catalog,
    catalog_prices,
    catalog_terms,
    customers,
    dashboard,
    home,
    invoices,
    rendering,
    sign_in,
    staff_pages,
    subscriptions,
    webhook_pages,
)
from api.console.auth import build_console
from api.console.headers import ConsoleHeaders
from kakin.platform.settings import Settings

ROUTERS = (
    sign_in.router,
    account.router,
    home.router,
    invoices.router,
    subscriptions.router,
    dashboard.router,
    customers.router,
    staff_pages.router,
    api_key_pages.router,
    catalog.router,
    catalog_prices.router,
    catalog_terms.router,
    alert_pages.router,
    webhook_pages.router,
)


def mount(app: FastAPI, settings: Settings, *, clock: Callable[[], datetime] | None) -> None:
    """Serve the console from ``app``; ``clock`` (tests) stands in for the wall clock.

    Raises ``ConfigurationError`` for settings a live key forbids.
    """
    app.state.console = build_console(settings, clock)
    app.add_middleware(ConsoleHeaders)
    rendering.install(app)
    for router in ROUTERS:
        app.include_router(router)
