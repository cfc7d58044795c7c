"""Asking a subscription's workflow something from a request.

Temporal's answers become typed errors in the subscriptions service
(``workflow_errors``), which ``api.errors`` maps: an update's refusal is a 409 carrying
the workflow's own reason, a workflow that no longer runs is a 409, and Temporal not
answering is a 503 (the client may retry; an idempotency key is released on 5xx).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from temporalio.client import Client

from api.deps import Deps
from api.errors import ApiError, ErrorBody, status_of
from api.writes import Write
from kakin.services import errors as service_errors
from kakin.services import subscriptions as subscription_service
from kakin.views.subscriptions import SubscriptionStatusOut
from models.payloads import StatusView

log = logging.getLogger("kakin.api")

TEMPORAL_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "Temporal did not answer; try again"}
}
UPDATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "refused by the subscription (the message says why), the workflow "
        "has ended, or the Idempotency-Key was used otherwise",
    },
    **TEMPORAL_DOWN,
}


def capitalized(message: str) -> str:
    """Service and workflow messages start lower-case; error bodies are sentences."""
    return message[:1].upper() + message[1:]


def ended(subscription_id: str) -> ApiError:
    return ApiError(409, subscription_service.ended_message(subscription_id))


async def run_update(
    deps: Deps,
    subscription_id: str,
    action: str,
    send: Callable[[Client], Awaitable[StatusView]],
) -> SubscriptionStatusOut:
    """Run a validated update; the validator's refusal becomes a 409 with its reason."""
    await run_in_threadpool(subscription_service.check_not_canceled, deps.sessions, subscription_id)
    client = await deps.connected()
    try:
        async with subscription_service.workflow_errors(subscription_id, action):
            view = await send(client)
    except service_errors.InvalidRequestError as error:
        # The status by the error's type (a MissingError names a price: 404); the
        # message as a sentence, as the update's other answers are.
        raise ApiError(status_of(error), capitalized(str(error))) from None
    return SubscriptionStatusOut.of(view)


async def update_once(
    write: Write,
    subscription_id: str,
    action: str,
    call: Callable[..., Awaitable[StatusView]],
    **fields: Any,
) -> JSONResponse:
    """The validated update ``call(client, subscription_id, requested_by=..., **fields)``
    at most once per Idempotency-Key (``run_update``), answering the status after it."""
    requested_by = write.requested_by

    def send(client: Client) -> Awaitable[StatusView]:
        return call(client, subscription_id, requested_by=requested_by, **fields)

    return await write.run(lambda: run_update(write.deps, subscription_id, action, send))
