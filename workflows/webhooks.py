"""The outgoing webhooks' workflows: the dispatcher and one workflow per delivery.

Why this split is in ``kakin.services.webhook_deliveries``' docstring. Both are new
workflow types: ``SubscriptionWorkflow``'s histories are untouched and replay as before.

Deterministic: time from ``workflow.now()``, waits as timers (the Svix schedule of
``billing.webhooks``, so the time-skipping server runs it), every side effect in an
activity.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from billing.webhooks import TRIES, next_wait
    from kakin.contracts import (
        ACTIVITY_DISPATCH_WEBHOOKS,
        ACTIVITY_MARK_WEBHOOKS_DISPATCHED,
        ACTIVITY_TRY_WEBHOOK,
        SIGNAL_WEBHOOK_POKE,
        WEBHOOK_DELIVERY_WORKFLOW,
        WEBHOOK_DISPATCH_WORKFLOW,
        webhook_delivery_workflow_id,
    )
    from models.webhook_payloads import (
        DeliveryInput,
        Dispatched,
        DispatchInput,
        TryInput,
        TryOutcome,
    )

# A try's activity: the request's own timeout (15 s by default, at most 30) plus the
# database work around it. Retried (a worker killed mid-try) without end: the schedule
# is the workflow's, an activity retry is the same try.
_TRY_TIMEOUT = timedelta(seconds=60)
_LONG = 10_000  # history events: continue as new past this many
_ACTIVITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1)
)


@workflow.defn(name=WEBHOOK_DISPATCH_WORKFLOW)
class WebhookDispatchWorkflow:
    """Looks at the ledger every ``poll_seconds`` (or when poked) and starts a
    ``WebhookDeliveryWorkflow`` for each new delivery; continues as new after
    ``looks_per_run`` looks, or sooner when its history grows long (a busy month start
    starts thousands of deliveries), so a run's history stays small."""

    def __init__(self) -> None:
        self._poked = False

    @workflow.signal(name=SIGNAL_WEBHOOK_POKE)
    def poke(self) -> None:
        self._poked = True

    @workflow.run
    async def run(self, input: DispatchInput) -> None:
        for _ in range(input.looks_per_run):
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > _LONG:
                break
            self._poked = False
            found = await workflow.execute_activity(
                ACTIVITY_DISPATCH_WEBHOOKS,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_ACTIVITY_RETRY,
                result_type=Dispatched,
            )
            for delivery_id in found.delivery_ids:
                # Started before a crash, not yet marked: it runs once.
                with contextlib.suppress(WorkflowAlreadyStartedError):
                    await workflow.start_child_workflow(
                        WEBHOOK_DELIVERY_WORKFLOW,
                        DeliveryInput(delivery_id=delivery_id),
                        id=webhook_delivery_workflow_id(delivery_id),
                        # Deliveries outlive this run (it continues as new) and its stop.
                        parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    )
            if found.delivery_ids:
                await workflow.execute_activity(
                    ACTIVITY_MARK_WEBHOOKS_DISPATCHED,
                    found.delivery_ids,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=_ACTIVITY_RETRY,
                )
            if found.more:
                continue
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._poked, timeout=timedelta(seconds=input.poll_seconds)
                )
        workflow.continue_as_new(input)


@workflow.defn(name=WEBHOOK_DELIVERY_WORKFLOW)
class WebhookDeliveryWorkflow:
    """One run of one delivery: tries on the schedule until one is final."""

    @workflow.run
    async def run(self, input: DeliveryInput) -> str:
        number = 1
        while True:
            outcome = await workflow.execute_activity(
                ACTIVITY_TRY_WEBHOOK,
                TryInput(
                    delivery_id=input.delivery_id, run=input.run, number=number,
                    scheduled_at=workflow.now(), last=number >= TRIES,
                ),
                start_to_close_timeout=_TRY_TIMEOUT,
                retry_policy=_ACTIVITY_RETRY,
                result_type=TryOutcome,
            )  # fmt: skip
            if outcome.final:
                return outcome.status
            asked = outcome.retry_after_seconds
            wait = next_wait(number, None if asked is None else timedelta(seconds=asked))
            if wait is None:
                return outcome.status
            await workflow.sleep(wait)
            number += 1
