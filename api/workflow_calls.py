"""Asking a subscription's workflow something from a request.

Temporal's answers become API errors: an update's refusal is a 409 carrying the
workflow's own reason, a workflow that no longer runs is a 409, and Temporal not
answering is a 503 (the client may retry; an idempotency key is released on 5xx).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.concurrency import run_in_threadpool
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Deps
from api.errors import ApiError, ErrorBody
from api.lookups import load_subscription
from api.schemas import SubscriptionStatusOut
from kakin.services import errors as service_errors
from models.payloads import StatusView, SubscriptionStatus

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
    return ApiError(409, f"Subscription {subscription_id!r} has ended; its workflow no longer runs")


def rpc_failure(error: RPCError, subscription_id: str, what: str) -> ApiError:
    """A workflow that is gone is a 409; any other RPC failure a 503 naming ``what``."""
    if error.status == RPCStatusCode.NOT_FOUND:
        return ended(subscription_id)
    log.warning("Temporal did not take the %s: %s", what, error)
    return ApiError(503, f"Temporal did not take the {what}; try again")


def _check_running(deps: Deps, subscription_id: str) -> None:
    with deps.sessions() as session:
        row = load_subscription(session, subscription_id)
        if row.status == SubscriptionStatus.CANCELED:
            raise ApiError(409, f"Subscription {subscription_id!r} is canceled")


async def run_update(
    deps: Deps,
    subscription_id: str,
    action: str,
    send: Callable[[Client], Awaitable[StatusView]],
) -> SubscriptionStatusOut:
    """Run a validated update; the validator's refusal becomes a 409 with its reason."""
    await run_in_threadpool(_check_running, deps, subscription_id)
    client = await deps.connected()
    try:
        view = await send(client)
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        reason = cause.message if isinstance(cause, FailureError) else ""
        if not reason:
            log.warning("the %s update failed without a reason: %s", action, error)
            reason = f"the {action} was refused"
        raise ApiError(409, capitalized(reason)) from None
    except service_errors.InvalidRequestError as error:
        message = str(error)
        status = 404 if message.endswith("does not exist") else 422
        raise ApiError(status, capitalized(message)) from None
    except RPCError as error:
        raise rpc_failure(error, subscription_id, f"{action}") from None
    return SubscriptionStatusOut.of(view)
