"""Replay catches an incompatible change: proof that tests/subscriptions/test_replay.py has teeth.

Each test replays a real recorded history (tests/histories/) against a test-only
variant of SubscriptionWorkflow registered under the same workflow type name, the way
a deployment of changed code would meet running subscriptions. Changing the order of
activities, or adding a timer, must be reported as nondeterminism; the same change
guarded by ``workflow.patched`` (the procedure in the README, "Changing workflow
code") must replay cleanly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, WorkflowReplayResult

from billing.dunning import FIRST_FAILURE_EMAIL
from models.payloads import (
    ChargeOutcome,
    DunningState,
    InvoiceRef,
    SubscriptionInput,
    SubscriptionStatus,
)
from tests.helpers import HISTORIES
from tests.support.encryption import converter_for_tests
from workflows.subscription import SubscriptionWorkflow

# Runs whose history bills a period with a charge activity of its own (issue, charge,
# render and email): recorded before run-of-renewals merged the issue and the charge,
# the shape whose reordering the variants below make.
BILLING_RUNS = [
    "renewals.v3.run00.json", "dunning_to_cancel.v3.run00.json", "cancel_now.v3.run00.json",
]  # fmt: skip


@workflow.defn(name="SubscriptionWorkflow", sandboxed=False)
class RenderBeforeCharge(SubscriptionWorkflow):
    """Renders the invoice before charging it: the README's example, without a patch."""

    @workflow.run
    async def run(self, input: SubscriptionInput) -> str:
        return await super().run(input)

    async def _collect(self, invoice: InvoiceRef, now: datetime) -> None:
        # SubscriptionWorkflow._collect with the render moved before the charge.
        await self._render(invoice.invoice_id, invoice.number)
        result = await self._charge(invoice.invoice_id, invoice.number, 1, now)
        if result.outcome == ChargeOutcome.SUCCEEDED:
            await self._email(
                "receipt", f"email:receipt:{invoice.invoice_id}", now, invoice.invoice_id
            )
            return
        self._state.dunning = DunningState(
            invoice_id=invoice.invoice_id,
            invoice_number=invoice.number,
            amount_due=invoice.amount_due,
            currency=invoice.currency,
            started_at=now,
        )
        await self._change_status(SubscriptionStatus.PAST_DUE, now, reason="declined")
        await self._email(
            FIRST_FAILURE_EMAIL,
            f"email:{FIRST_FAILURE_EMAIL}:{invoice.invoice_id}:1",
            now,
            invoice.invoice_id,
        )


@workflow.defn(name="SubscriptionWorkflow", sandboxed=False)
class PatchedRenderBeforeCharge(RenderBeforeCharge):
    """The same change done right: new runs take the new path, old histories the old."""

    @workflow.run
    async def run(self, input: SubscriptionInput) -> str:
        return await super().run(input)

    async def _collect(self, invoice: InvoiceRef, now: datetime) -> None:
        if workflow.patched("render-before-charge"):
            await RenderBeforeCharge._collect(self, invoice, now)
        else:
            await SubscriptionWorkflow._collect(self, invoice, now)


@workflow.defn(name="SubscriptionWorkflow", sandboxed=False)
class GraceTimerFirst(SubscriptionWorkflow):
    """Waits a minute before anything else: a new timer running workflows never had."""

    @workflow.run
    async def run(self, input: SubscriptionInput) -> str:
        await workflow.sleep(timedelta(minutes=1))
        return await super().run(input)


def load(name: str) -> WorkflowHistory:
    path: Path = HISTORIES / name
    return WorkflowHistory.from_json("subscription-replay", path.read_text())


async def replay(workflow_class: type, name: str) -> WorkflowReplayResult:
    # With the test keys, like a production worker: recorded (unencrypted) histories
    # pass through the codec unchanged.
    return await Replayer(
        workflows=[workflow_class], data_converter=converter_for_tests()
    ).replay_workflow(load(name), raise_on_replay_failure=False)


@pytest.mark.parametrize("name", BILLING_RUNS)
async def test_the_real_workflow_replays(name: str) -> None:
    assert (await replay(SubscriptionWorkflow, name)).replay_failure is None


@pytest.mark.parametrize("name", BILLING_RUNS)
async def test_reordered_activities_are_caught_as_nondeterminism(name: str) -> None:
    failure = (await replay(RenderBeforeCharge, name)).replay_failure
    assert isinstance(failure, workflow.NondeterminismError), repr(failure)
    # The history scheduled the charge where the changed code schedules the render.
    assert "charge_invoice" in str(failure) and "render_invoice" in str(failure), str(failure)


@pytest.mark.parametrize("name", BILLING_RUNS)
async def test_an_added_timer_is_caught_as_nondeterminism(name: str) -> None:
    failure = (await replay(GraceTimerFirst, name)).replay_failure
    assert isinstance(failure, workflow.NondeterminismError), repr(failure)


@pytest.mark.parametrize("name", BILLING_RUNS)
async def test_the_same_change_behind_a_patch_replays(name: str) -> None:
    assert (await replay(PatchedRenderBeforeCharge, name)).replay_failure is None
