"""Outgoing webhooks in the console (admins only): the endpoints, adding one, disabling
and enabling, rotating the secret, and an endpoint's deliveries with each try and a
resend.

The same services as ``/v1/webhook-endpoints`` (``api/routers/webhook_endpoints.py``):
``kakin.services.webhook_endpoints`` and ``webhook_deliveries``, with the admin
(``staff:<email>``) as the audit row's actor. A new or rotated secret is in the one
response that answers the form (``Cache-Control: no-store``, never a redirect to a page
that could show it again), as the API shows it once.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import ValidationError

from api.console.auth import Admin, ConsoleDenied, SignedIn, form_of, locale_of
from api.console.messages import translator
from api.console.refusals import REFUSALS, refusal
from api.console.rendering import render, see_other
from api.deps import deps_of
from api.errors import SERVICE_ERRORS
from api.requests.webhook_endpoints import SecretRotation, WebhookEndpointCreate
from billing.webhooks import ALL_TYPES, KNOWN_TYPES
from kakin.platform.codec import keyring_from_settings
from kakin.services import webhook_deliveries, webhook_endpoints
from kakin.views.webhook_endpoints import (
    WebhookDeliveryOut,
    WebhookEndpointOut,
    WebhookEndpointWithSecret,
)

router = APIRouter(include_in_schema=False)
WEBHOOKS = "/console/webhooks"
DELIVERIES_SHOWN = 50
# A page holding a secret: no copy in the browser's cache or a proxy's.
NO_STORE = {"Cache-Control": "no-store"}
DONE = ("enabled", "disabled", "resent")
OUTCOMES = ("delivered", "failed", "timeout", "error", "refused", "gone")  # a try's, worded
EVENT_FIELD = "event."  # a checkbox per event type: form_of keeps one value per name


def _chosen_events(form: dict[str, str]) -> list[str]:
    if form.get("all_events"):
        return [ALL_TYPES]
    return [name[len(EVENT_FIELD) :] for name in form if name.startswith(EVENT_FIELD)]


async def _list_page(
    request: Request, me: SignedIn, *, status: int = 200, error: str = "",
    form: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    endpoints = await run_in_threadpool(
        webhook_endpoints.list_endpoints, deps_of(request).sessions, WebhookEndpointOut.of
    )
    return render(
        request, "webhooks.html.j2", status=status, endpoints=endpoints, error=error,
        form=form or {}, known_types=KNOWN_TYPES, event_field=EVENT_FIELD,
    )  # fmt: skip


@router.get(WEBHOOKS)
async def webhook_list(request: Request, me: Admin) -> Response:
    return await _list_page(request, me)


@router.post(WEBHOOKS)
async def add_endpoint(request: Request, me: Admin) -> Response:
    form = {k: v for k, v in (await form_of(request)).items() if k != "csrf_token"}
    t = translator(locale_of(request, me.staff))
    deps = deps_of(request)
    try:
        body = WebhookEndpointCreate(
            url=form.get("url", "").strip(), enabled_events=_chosen_events(form),
            description=form.get("description", "").strip(),
        )  # fmt: skip
    except ValidationError:
        return await _list_page(request, me, status=422, error=t("hooks.error.form"), form=form)
    try:
        created = await run_in_threadpool(
            lambda: webhook_endpoints.create_endpoint(
                deps.sessions,
                keyring_from_settings(deps.settings),
                WebhookEndpointWithSecret.with_secret,
                url=body.url,
                enabled_events=body.enabled_events,
                description=body.description,
                live_mode=deps.settings.live_mode,
                created_by=me.staff.actor,
            )
        )
    except REFUSALS as error:
        status, message = refusal(error)
        return await _list_page(request, me, status=status, error=message, form=form)
    return render(request, "webhook_secret.html.j2", endpoint=created, rotated=False,
                  headers=NO_STORE)  # fmt: skip


async def _endpoint(request: Request, endpoint_id: str) -> WebhookEndpointOut:
    try:
        found: WebhookEndpointOut = await run_in_threadpool(
            webhook_endpoints.get_endpoint, deps_of(request).sessions, endpoint_id,
            WebhookEndpointOut.of,
        )  # fmt: skip
    except SERVICE_ERRORS:
        raise ConsoleDenied(404, "error.not_found") from None
    return found


async def _endpoint_page(
    request: Request, endpoint_id: str, *, status: int = 200, error: str = ""
) -> Response:
    endpoint = await _endpoint(request, endpoint_id)
    deliveries = await run_in_threadpool(
        lambda: webhook_deliveries.list_deliveries(
            deps_of(request).sessions,
            endpoint_id,
            WebhookDeliveryOut.of,
            limit=DELIVERIES_SHOWN,
        )
    )
    done = request.query_params.get("done", "") if status == 200 else ""
    return render(
        request, "webhook.html.j2", status=status, endpoint=endpoint, deliveries=deliveries,
        error=error, done=done if done in DONE else "", outcomes=OUTCOMES,
    )  # fmt: skip


@router.get(WEBHOOKS + "/{endpoint_id}")
async def endpoint_page(request: Request, endpoint_id: str, me: Admin) -> Response:
    return await _endpoint_page(request, endpoint_id)


@router.post(WEBHOOKS + "/{endpoint_id}/enabled")
async def set_enabled(request: Request, endpoint_id: str, me: Admin) -> Response:
    """Disable (deliveries in flight stop at their next try) or enable it again."""
    enabled = (await form_of(request)).get("enabled") == "true"
    deps = deps_of(request)
    await _endpoint(request, endpoint_id)
    try:
        await run_in_threadpool(
            lambda: webhook_endpoints.update_endpoint(
                deps.sessions,
                endpoint_id,
                WebhookEndpointOut.of,
                actor=me.staff.actor,
                url=None,
                enabled_events=None,
                description=None,
                enabled=enabled,
                live_mode=deps.settings.live_mode,
            )
        )
    except REFUSALS as error:
        status, message = refusal(error)
        return await _endpoint_page(request, endpoint_id, status=status, error=message)
    return see_other(f"{WEBHOOKS}/{endpoint_id}?done={'enabled' if enabled else 'disabled'}")


@router.post(WEBHOOKS + "/{endpoint_id}/rotate")
async def rotate_secret(request: Request, endpoint_id: str, me: Admin) -> Response:
    """A new secret, shown once; the old one goes on signing beside it for the API's
    default overlap (``SecretRotation``)."""
    await form_of(request)
    deps = deps_of(request)
    await _endpoint(request, endpoint_id)
    overlap = timedelta(hours=SecretRotation().overlap_hours)
    try:
        rotated = await run_in_threadpool(
            lambda: webhook_endpoints.rotate_secret(
                deps.sessions,
                keyring_from_settings(deps.settings),
                endpoint_id,
                WebhookEndpointWithSecret.with_secret,
                actor=me.staff.actor,
                overlap=overlap,
            )
        )
    except REFUSALS as error:
        status, message = refusal(error)
        return await _endpoint_page(request, endpoint_id, status=status, error=message)
    return render(request, "webhook_secret.html.j2", endpoint=rotated, rotated=True,
                  headers=NO_STORE)  # fmt: skip


@router.post(WEBHOOKS + "/{endpoint_id}/deliveries/{delivery_id}/resend")
async def resend(request: Request, endpoint_id: str, delivery_id: str, me: Admin) -> Response:
    """As the API's resend: the same webhook-id and body, on the retry schedule again."""
    await form_of(request)
    deps = deps_of(request)
    try:
        found: WebhookDeliveryOut = await run_in_threadpool(
            webhook_deliveries.get_delivery, deps.sessions, delivery_id, WebhookDeliveryOut.of
        )  # a 404 before Temporal is asked
    except SERVICE_ERRORS:
        raise ConsoleDenied(404, "error.not_found") from None
    if found.endpoint_id != endpoint_id:
        raise ConsoleDenied(404, "error.not_found")
    try:
        client = await deps.connected()
        await webhook_deliveries.resend(
            deps.sessions, client, delivery_id, WebhookDeliveryOut.of,
            task_queue=deps.settings.task_queue, requested_by=me.staff.actor,
        )  # fmt: skip
    except REFUSALS as error:
        status, message = refusal(error)
        return await _endpoint_page(request, endpoint_id, status=status, error=message)
    return see_other(f"{WEBHOOKS}/{endpoint_id}?done=resent#{delivery_id}")
