"""The card-update page that dunning emails link to (``KAKIN_PAYMENT_UPDATE_URL``).

GET shows the amount due and a form; POST turns a Stripe *test* card number into a
payment method through the Stripe API (never stored, logged or echoed by kakin) and
sends ``payment_method_updated``, so the workflow retries the charge at once. The
link is signed (``kakin.adapters.links``); an altered or expired link is refused. With a
live key the form is refused: live card entry belongs to Stripe's own hosted forms. A
form that is not UTF-8 is a 400 page in the customer's language (the browser's, when
the link does not name a customer).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from api.deps import Deps, deps_of
from api.forms import preferred_locale, read_form
from kakin.adapters import links
from kakin.platform.settings import Settings
from kakin.services import payments as payment_service

log = logging.getLogger("kakin.api.payment_page")


def page(request: Request, status: int, **context: Any) -> HTMLResponse:
    settings = deps_of(request).settings
    templates: jinja2.Environment = request.app.state.templates
    defaults = {"locale": "en", "seller_name": settings.seller_name, "form": False,
                "message": "", "error": False, "billing_url": ""}  # fmt: skip
    html = templates.get_template("pay_update.html.j2").render(defaults | context)
    return HTMLResponse(html, status_code=status)


def check(deps: Deps, values: dict[str, str]) -> tuple[str, dict[str, Any] | None, str | None]:
    subscription_id = values.get("subscription", "")
    refusal = links.verify(
        subscription_id, values.get("expires", ""), values.get("token", ""),
        secret=deps.settings.link_secret, now=time.time(),
    )  # fmt: skip
    context = (
        None if refusal else payment_service.card_update_context(deps.sessions, subscription_id)
    )
    if refusal is None and context is None:
        refusal = "This link is not valid."
    return subscription_id, context, refusal


def show(request: Request) -> HTMLResponse:
    values = {k: v for k, v in request.query_params.items()}
    subscription_id, context, refusal = check(deps_of(request), values)
    if refusal or context is None:
        return page(request, 403, message=refusal, error=True)
    # The same link opens the customer's billing page (usage, invoices, card, cancel).
    query = urlencode({k: values[k] for k in ("subscription", "expires", "token")})
    billing_url = f"{urlsplit(deps_of(request).settings.billing_page_url).path}?{query}"
    return page(
        request, 200, form=True, subscription_id=subscription_id,
        expires=values["expires"], token=values["token"], billing_url=billing_url, **context,
    )  # fmt: skip


async def unreadable(request: Request, body: bytes) -> HTMLResponse:
    """The 400 page for a form that is not UTF-8, in the customer's language if known."""
    # The link's own fields are ASCII, so they can still be read to find the customer.
    fields = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
    subscription_id, context, refusal = await run_in_threadpool(check, deps_of(request), fields)
    locale = context["locale"] if context else preferred_locale(request)
    message = (
        "フォームを読み取れませんでした。もう一度入力してください。"
        if locale.startswith("ja")
        else "We could not read the form; please enter your card again."
    )
    if refusal or context is None:
        return page(request, 400, error=True, message=message, locale=locale)
    return page(
        request, 400, error=True, message=message, form=True, subscription_id=subscription_id,
        expires=fields["expires"], token=fields["token"], **context,
    )  # fmt: skip


async def submit(request: Request) -> HTMLResponse:
    deps = deps_of(request)
    body = await request.body()
    form = read_form(body)
    if form is None:
        return await unreadable(request, body)
    subscription_id, context, refusal = await run_in_threadpool(check, deps, form)
    if refusal or context is None:
        return page(request, 403, message=refusal, error=True)
    again = {"form": True, "subscription_id": subscription_id,
             "expires": form["expires"], "token": form["token"], **context}  # fmt: skip
    refused = await replace_card(
        deps, subscription_id, form.get("card_number", ""), locale=context["locale"]
    )
    if refused is not None:
        status, message = refused
        return page(request, status, error=True, message=message, **again)
    ja = context["locale"].startswith("ja")
    thanks = (
        "ありがとうございます。新しいお支払い方法で、ただちにお支払いを再試行します。"
        if ja
        else "Thank you. We are retrying your payment with the new card now."
    )
    return page(request, 200, message=thanks, locale=context["locale"])


async def replace_card(
    deps: Deps, subscription_id: str, card_number: str, *, locale: str
) -> tuple[int, str] | None:
    """Put the (test) card on file and tell the workflow; None when done, else the page's
    status and what to tell the customer (the card-update page and the billing page)."""
    ja = locale.startswith("ja")
    if deps.stripe.live_mode:
        return 422, "Card entry here is for test mode only."
    try:
        await payment_service.update_payment_method(
            await deps.temporal_client(), deps.sessions, deps.stripe, subscription_id,
            card_number=card_number, requested_by="customer",
        )  # fmt: skip
    except ValueError:
        # The number itself is never put in the page or a log.
        message = ("Stripe のテストカード番号を入力してください。" if ja
                   else "Please enter a Stripe test card number.")  # fmt: skip
        return 422, message
    except Exception as error:  # Stripe or Temporal unreachable: say so, keep the form
        log.warning("card update for %s failed: %s", subscription_id, type(error).__name__)
        message = (
            "ただいま更新できませんでした。しばらくしてからもう一度お試しください。"
            if ja
            else "We could not update your card just now; please try again shortly."
        )
        return 503, message
    return None


def router(settings: Settings) -> APIRouter:
    """The page's two routes, at the path of ``KAKIN_PAYMENT_UPDATE_URL`` (a setting, so
    the routes are made per app; what they do is the module-level ``show`` and ``submit``,
    which reach the app's dependencies through ``request.app.state``)."""
    path = "/" + settings.payment_update_url.split("://", 1)[-1].split("/", 1)[-1]
    pages = APIRouter(tags=["customer pages"], include_in_schema=False)
    pages.add_api_route(path, show, methods=["GET"], response_class=HTMLResponse)
    pages.add_api_route(path, submit, methods=["POST"], response_class=HTMLResponse)
    return pages
