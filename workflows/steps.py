"""The small steps every part of the workflow takes, each one activity.

Activities are called by their contract names (``kakin.contracts.ACTIVITY_*``), never
through the activity classes: workflows import no I/O code. The name is what the
history records, so this is the same command as calling the method was. Each step
says its result type, which the payload converter decodes the result into.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from temporalio import workflow

from billing.dunning import DunningAction
from kakin import contracts
from models.payloads import (
    ChargeRequest,
    ChargeResult,
    EmailRequest,
    FinalizeInvoiceRequest,
    InvoiceChange,
    InvoiceRef,
    InvoiceStatus,
    IssueAndChargeRequest,
    IssuedCharge,
    PlanChange,
    RenderInvoiceRequest,
    SubscriptionChange,
    SubscriptionStatus,
)
from workflows.state import CHARGE_RETRY, CHARGE_TIMEOUT, QUICK_RETRY, QUICK_TIMEOUT
from workflows.status import StatusReport

# Activities that may find nothing to do answer None (no usage to bill, nothing to prorate).
MAYBE_INVOICE = cast(type, InvoiceRef | None)  # what the SDK read from the method's hint


class Steps(StatusReport):
    """One activity each: record, charge, render, email, change plan."""

    async def _quick(
        self, activity: str, arg: Any, *, summary: str | None, result_type: type | None = None
    ) -> Any:
        """A database or email activity: short, retried until it succeeds."""
        return await workflow.execute_activity(
            activity,
            arg,
            result_type=result_type,
            summary=summary,
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )

    async def _finalize(self, invoice_id: str, at: datetime, summary: str) -> InvoiceRef:
        invoice: InvoiceRef = await self._quick(
            contracts.ACTIVITY_FINALIZE_INVOICE,
            FinalizeInvoiceRequest(invoice_id=invoice_id, finalized_at=at),
            summary=summary,
            result_type=InvoiceRef,
        )
        return invoice

    async def _record_change(self, change: SubscriptionChange, summary: str) -> None:
        await self._quick(contracts.ACTIVITY_RECORD_SUBSCRIPTION_CHANGE, change, summary=summary)

    async def _change_status(
        self,
        status: SubscriptionStatus,
        at: datetime,
        *,
        reason: str = "",
        actor: str = "workflow",
        cancel_at_period_end: bool | None = None,
        period_start: datetime | None = None,
        period_end: datetime | None = None,
    ) -> None:
        st = self._state
        changed = st.status != status
        st.status = status
        await self._record_change(
            SubscriptionChange(
                subscription_id=self._input.subscription_id,
                status=status,
                occurred_at=at,
                actor=actor,
                reason=reason,
                cancel_at_period_end=cancel_at_period_end,
                period_start=period_start,
                period_end=period_end,
            ),
            f"status {status}" + (f": {reason}" if reason else ""),
        )
        if changed:
            workflow.upsert_search_attributes(self._search_attribute_updates())

    def _set_status(
        self, status: SubscriptionStatus, at: datetime, *, reason: str, actor: str = "workflow"
    ) -> SubscriptionChange:
        """Change the status here (and its search attribute); returns what the database
        needs, for the activity that records it with its email (PATCH_RECORDS_WITH_EMAIL)."""
        changed = self._state.status != status
        self._state.status = status
        if changed:
            workflow.upsert_search_attributes(self._search_attribute_updates())
        return SubscriptionChange(
            subscription_id=self._input.subscription_id,
            status=status,
            occurred_at=at,
            actor=actor,
            reason=reason,
        )

    async def _mark_invoice(self, status: InvoiceStatus, at: datetime, reason: str) -> None:
        dunning = self._state.dunning
        assert dunning is not None
        await self._quick(
            contracts.ACTIVITY_RECORD_INVOICE_CHANGE,
            InvoiceChange(
                invoice_id=dunning.invoice_id, status=status, occurred_at=at, reason=reason
            ),
            summary=f"invoice {dunning.invoice_number} {status}",
        )

    async def _email(
        self,
        kind: str,
        key: str,
        at: datetime,
        invoice_id: str | None = None,
        *,
        render: bool = False,
        invoice_change: InvoiceChange | None = None,
        status_change: SubscriptionChange | None = None,
    ) -> None:
        """Send one email; with ``render``, (re)render its invoice first, in the same activity.

        ``invoice_change`` and ``status_change`` are recorded by that activity before it
        sends: what the email announces is in the database before the customer reads it.
        """
        summary = f"render and email {kind}" if render else f"email {kind}"
        if status_change is not None:
            summary = f"status {status_change.status}: {status_change.reason}; {summary}"
        await self._quick(
            contracts.ACTIVITY_RENDER_AND_EMAIL if render else contracts.ACTIVITY_SEND_EMAIL,
            EmailRequest(
                kind=kind,
                business_key=key,
                subscription_id=self._input.subscription_id,
                invoice_id=invoice_id,
                occurred_at=at,
                next_retry_at=self._upcoming(DunningAction.RETRY),
                cancel_at=self._upcoming(DunningAction.CANCEL),
                invoice_change=invoice_change,
                status_change=status_change,
            ),
            # The receipt is the hot path: no summary (an encrypted payload of ~150 bytes).
            summary=None if kind == "receipt" and status_change is None else summary,
        )

    def _upcoming(self, action: DunningAction) -> datetime | None:
        """When the dunning ladder next takes ``action``, for the customer's email."""
        dunning = self._state.dunning
        if dunning is None:
            return None
        for step in self._input.dunning.steps[dunning.next_step :]:
            if step.action == action:
                return dunning.started_at + timedelta(days=step.day)
        return None

    async def _charge(
        self, invoice_id: str, number: str | None, attempt: int, now: datetime
    ) -> ChargeResult:
        result: ChargeResult = await workflow.execute_activity(
            contracts.ACTIVITY_CHARGE_INVOICE,
            ChargeRequest(
                invoice_id=invoice_id,
                attempt=attempt,
                attempted_at=now,
                test_clock=self._state.clock is not None,
            ),
            result_type=ChargeResult,
            # A first attempt is the hot path: no summary (see Renewals._bill_next_period).
            summary=f"charge {number or invoice_id}, attempt {attempt}" if attempt > 1 else None,
            # A queue of its own, rate-limited below Stripe's limit, when configured.
            task_queue=self._input.stripe_task_queue,
            start_to_close_timeout=CHARGE_TIMEOUT,
            retry_policy=CHARGE_RETRY,
        )
        return result

    async def _issue_and_charge(self, request: IssueAndChargeRequest) -> IssuedCharge:
        """A renewal's invoice issued and charged (attempt 1) in one activity: it runs
        where charges run, with the charge's timeout and retries (PATCH_RUN_OF_RENEWALS)."""
        issued: IssuedCharge = await workflow.execute_activity(
            contracts.ACTIVITY_ISSUE_AND_CHARGE_INVOICE,
            request,
            result_type=IssuedCharge,
            summary=None,  # the hot path (see Renewals._issue)
            task_queue=self._input.stripe_task_queue,
            start_to_close_timeout=CHARGE_TIMEOUT,
            retry_policy=CHARGE_RETRY,
        )
        return issued

    async def _render(self, invoice_id: str, number: str | None) -> None:
        await self._quick(
            contracts.ACTIVITY_RENDER_INVOICE,
            RenderInvoiceRequest(invoice_id=invoice_id),
            summary=f"render {number or invoice_id}",
        )

    async def _switch_price(
        self,
        price_id: str,
        period_index: int,
        now: datetime,
        *,
        actor: str,
        reason: str = "",
        prorate: bool = False,
    ) -> InvoiceRef | None:
        """Bill ``price_id`` from now on; the proration invoice (a draft) if one is due."""
        st = self._state
        invoice: InvoiceRef | None = await self._quick(
            contracts.ACTIVITY_CHANGE_PLAN,
            PlanChange(
                subscription_id=self._input.subscription_id,
                price_id=price_id,
                period_index=period_index,
                occurred_at=now,
                period_start=st.period_start if prorate else None,
                period_end=st.period_end if prorate else None,
                prorate_from=now if prorate else None,
                actor=actor,
                reason=reason,
            ),
            summary=f"change plan to {price_id}",
            result_type=MAYBE_INVOICE,
        )
        st.price_id = price_id
        workflow.upsert_search_attributes([contracts.PLAN_ID.value_set(price_id)])
        return invoice
