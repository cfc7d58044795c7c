"""Stripe webhooks: authenticated by ``Stripe-Signature``, not by an API key."""

from __future__ import annotations

import asyncio
import logging

import stripe
from fastapi import APIRouter, Request
from sqlalchemy.exc import InterfaceError, OperationalError
from temporalio.service import RPCError

from api.deps import CONNECT_TIMEOUT, DepsDep
from api.errors import ApiError, ErrorBody
from api.workflow_calls import capitalized
from kakin.services import stripe_events as stripe_webhooks
from kakin.views.webhooks import WebhookReceived

log = logging.getLogger("kakin.api")


router = APIRouter(prefix="/v1", tags=["webhooks"])


@router.post(
    "/webhooks/stripe",
    response_model=WebhookReceived,
    responses={
        400: {"model": ErrorBody, "description": "bad or stale signature, or not an event"},
        503: {
            "model": ErrorBody,
            "description": "not configured, Temporal or the database unreachable, "
            "or the event being processed by another delivery",
        },
    },
    # The body is read raw (the signature covers its exact bytes) and a missing
    # signature is our 400, not a validation 422: so both are described by hand.
    openapi_extra={
        "parameters": [
            {
                "name": "Stripe-Signature",
                "in": "header",
                "required": True,
                "description": "Stripe's signature of the body and its timestamp",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "description": "a Stripe event, as Stripe sent it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def stripe_webhook(deps: DepsDep, request: Request) -> WebhookReceived:
    """Stripe events, authenticated by their ``Stripe-Signature`` (no API key).

    400 for a bad signature, a timestamp outside the tolerance (past or future) or
    a body that is not an event; 200 for a replayed event id (acknowledged,
    nothing changes) and for an event about a subscription whose workflow has
    ended; 503 while no webhook secret is set, when Temporal or the database
    cannot be reached, or while another delivery of the same event is still at
    work (Stripe redelivers, and the event is processed then, once).
    """
    if not deps.settings.stripe_webhook_secret:
        # Our configuration, not Stripe's request, is at fault: a 503 makes Stripe
        # redeliver, so events sent before the secret is set are not lost.
        raise ApiError(503, "Webhooks are disabled: KAKIN_STRIPE_WEBHOOK_SECRET is not set")
    payload = await request.body()
    try:
        payload.decode("utf-8")  # the stripe SDK decodes it to check the signature
    except UnicodeDecodeError:
        raise ApiError(400, "The body is not a Stripe event: it is not UTF-8 text") from None
    try:
        client = await asyncio.wait_for(deps.temporal_client(), CONNECT_TIMEOUT)
    except Exception as error:
        log.warning("webhook: Temporal unavailable: %s", error)
        raise ApiError(503, "Temporal cannot be reached; Stripe will redeliver") from None
    try:
        outcome = await stripe_webhooks.receive(
            client,
            deps.sessions,
            payload,
            request.headers.get("Stripe-Signature"),
            secret=deps.settings.stripe_webhook_secret,
            tolerance=deps.settings.stripe_webhook_tolerance,
            stripe_gateway=deps.stripe,
        )
    except stripe_webhooks.WebhookRejectedError as error:
        raise ApiError(400, capitalized(str(error))) from None
    except stripe_webhooks.WebhookBusyError:
        # Another delivery of this event is still at work: "done" would be a promise
        # it may not keep; Stripe delivers again and finds it processed (or its claim
        # run out, and takes over).
        raise ApiError(503, "This event is being processed; Stripe will redeliver") from None
    except RPCError as error:
        # A workflow that has ended is acknowledged inside receive(): this is
        # Temporal itself failing.
        log.warning("webhook: signalling failed: %s", error)
        raise ApiError(503, "Temporal cannot be reached; Stripe will redeliver") from None
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as error:
        # Asking Stripe (the current default card, a late payment) failed.
        log.warning("webhook: Stripe unavailable: %s", type(error).__name__)
        raise ApiError(503, "Stripe cannot be reached; Stripe will redeliver") from None
    except (OperationalError, InterfaceError) as error:
        log.warning("webhook: database unavailable: %s", type(error).__name__)
        raise ApiError(503, "The database cannot be reached; Stripe will redeliver") from None
    return WebhookReceived(id=outcome.event_id, duplicate=outcome.duplicate)
