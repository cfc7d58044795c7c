"""The messages support, services and Stripe send a subscription (``kakin.contracts``),
and what each does when the main loop applies it.

Signals (cancel, payment method updated, payment received) are queued and the loop
wakes. Updates are checked by their validator, which refuses before anything is
written to the history; then queued under the update's name, applied by the main loop
between steps (so activities never interleave) and answered with the status once
applied. An update whose check no longer holds when it is applied (a renewal may have
changed the status since) is refused with the same sentence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow

from billing.dunning import FIRST_FAILURE_EMAIL
from kakin import contracts
from models.payloads import (
    CancelRequest,
    ChangePlanRequest,
    ExternalPayment,
    GraceRequest,
    InvoiceChange,
    InvoiceStatus,
    PauseRequest,
    PaymentMethodChange,
    PaymentMethodUpdated,
    PaymentReceived,
    ResumeRequest,
    StatusView,
    SubscriptionChange,
    SubscriptionStatus,
    WaiveRequest,
)
from workflows.renewals import Renewals
from workflows.state import CHARGE_RETRY, CHARGE_TIMEOUT, RUNNING, invalid

_BUSY = "another change is being applied; try again"
_NOT_IN_DUNNING = "a grace period is for a subscription in dunning; nothing is overdue"
_NOTHING_TO_WAIVE = "there is no unpaid invoice to waive"


class SupportMessages(Renewals):
    """The public signals and updates, their validators, and applying them."""

    # -- signals ------------------------------------------------------------------------

    @workflow.signal(name=contracts.SIGNAL_CANCEL)
    def cancel(self, request: CancelRequest) -> None:
        self._cancel = request
        self._woken = True

    @workflow.signal(name=contracts.SIGNAL_PAYMENT_METHOD_UPDATED)
    def payment_method_updated(self, update: PaymentMethodUpdated) -> None:
        self._payment_methods.append(update)
        self._woken = True

    @workflow.signal(name=contracts.SIGNAL_PAYMENT_RECEIVED)
    def payment_received(self, payment: PaymentReceived) -> None:
        self._payments.append(payment)
        self._woken = True

    # -- updates ------------------------------------------------------------------------

    @workflow.update(name=contracts.UPDATE_PAUSE)
    async def pause(self, request: PauseRequest) -> StatusView:
        """No invoices until ``resume``; answers with the status once applied."""
        return await self._queue(contracts.UPDATE_PAUSE, request)

    @pause.validator
    def _check_pause(self, request: PauseRequest) -> None:
        self._refuse(self._not_running("be paused") or self._ending("be paused"))

    @workflow.update(name=contracts.UPDATE_RESUME)
    async def resume(self, request: ResumeRequest) -> StatusView:
        """Billing restarts; the paused time is added to the current period."""
        return await self._queue(contracts.UPDATE_RESUME, request)

    @resume.validator
    def _check_resume(self, request: ResumeRequest) -> None:
        self._refuse(_unless(self._state.status == SubscriptionStatus.PAUSED, self._no_resume()))

    @workflow.update(name=contracts.UPDATE_CHANGE_PLAN)
    async def change_plan(self, request: ChangePlanRequest) -> StatusView:
        """Upgrade now (prorated charge) or downgrade at the period end."""
        return await self._queue(contracts.UPDATE_CHANGE_PLAN, request)

    @change_plan.validator
    def _check_change_plan(self, request: ChangePlanRequest) -> None:
        same = request.price_id == self._plan() and not self._state.pending_price_id
        self._refuse(
            self._not_running("change plan")
            or _unless(not same, f"the subscription is already on {request.price_id}")
            or self._ending("change plan")
        )

    @workflow.update(name=contracts.UPDATE_GRANT_GRACE)
    async def grant_grace(self, request: GraceRequest) -> StatusView:
        """Postpone the rest of the dunning ladder by ``days``."""
        return await self._queue(contracts.UPDATE_GRANT_GRACE, request)

    @grant_grace.validator
    def _check_grace(self, request: GraceRequest) -> None:
        self._refuse(
            _unless(self._state.dunning is not None, _NOT_IN_DUNNING)
            or _unless(1 <= request.days <= 60, "a grace period is 1 to 60 days")
        )

    @workflow.update(name=contracts.UPDATE_WAIVE_INVOICE)
    async def waive_invoice(self, request: WaiveRequest) -> StatusView:
        """Void the invoice in dunning; the subscription is active again, unbilled."""
        return await self._queue(contracts.UPDATE_WAIVE_INVOICE, request)

    @waive_invoice.validator
    def _check_waive(self, request: WaiveRequest) -> None:
        marks = (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE)
        self._refuse(
            _unless(self._state.dunning is not None, _NOTHING_TO_WAIVE)
            or _unless(request.reason.strip(), "waiving an invoice needs a reason")
            or self._not_in_collection(request.invoice_id)
            or _unless(request.mark_as in marks, "a waived invoice is marked void or uncollectible")
        )

    async def _queue(self, name: str, request: Any) -> StatusView:
        """Queue an update's request for the main loop; the status once it is applied."""
        self._changes[name], self._refused, self._woken = request, None, True
        await workflow.wait_condition(lambda: name not in self._changes)
        refused, self._refused = self._refused, None
        if refused:
            raise invalid(refused)
        return self.status()

    def _refuse(self, refusal: str | None) -> None:
        """A validator's answer: the first rule that refuses, else one change at a time
        (the updates share one answer slot). Raised before anything is in the history."""
        if refusal is None and self._pending():
            refusal = _BUSY
        if refusal is not None:
            raise invalid(refusal)

    # -- why an update is refused (asked by the validator, and again when applied) ------

    def _not_running(self, what: str) -> str | None:
        status = self._state.status
        return _unless(
            status in RUNNING, f"only an active or trialing subscription can {what}; it is {status}"
        )

    def _ending(self, what: str) -> str | None:
        return _unless(
            not self._state.cancel_at_period_end,
            f"the subscription ends at the end of this period; it cannot {what}",
        )

    def _no_resume(self) -> str:
        return f"only a paused subscription can be resumed; it is {self._state.status}"

    def _still_refused(self, refusal: str | None) -> bool:
        """Asked again when applied: a refusal becomes the update's answer."""
        if refusal:
            self._refused = refusal
        return bool(refusal)

    def _not_in_collection(self, invoice_id: str | None) -> str | None:
        dunning = self._state.dunning
        assert dunning is not None
        return _unless(
            invoice_id is None or invoice_id == dunning.invoice_id,
            f"invoice {invoice_id} is not the one in collection",
        )

    # -- applying them (the main loop, between steps) -----------------------------------

    async def _handle_messages(self) -> None:
        now = self._now()
        while self._payments:
            await self._apply_payment(self._payments.pop(0), now)
        while self._payment_methods:
            await self._apply_payment_method(self._payment_methods.pop(0), now)
        updates: tuple[tuple[str, Callable[[Any, datetime], Awaitable[None]]], ...] = (
            (contracts.UPDATE_PAUSE, self._apply_pause),
            (contracts.UPDATE_RESUME, self._apply_resume),
            (contracts.UPDATE_CHANGE_PLAN, self._apply_plan_change),
            (contracts.UPDATE_GRANT_GRACE, self._apply_grace),
            (contracts.UPDATE_WAIVE_INVOICE, self._apply_waive),
        )
        for name, apply in updates:
            if name in self._changes:
                await apply(self._changes[name], now)
                del self._changes[name]  # answers the update
        request, self._cancel = self._cancel, None
        if request is not None and self._state.status != SubscriptionStatus.CANCELED:
            await self._apply_cancel(request, now)

    async def _apply_payment(self, payment: PaymentReceived, now: datetime) -> None:
        """A payment made outside our charge: if it pays the invoice in dunning, recover."""
        dunning = self._state.dunning
        if dunning is None or dunning.invoice_id != payment.invoice_id:
            return  # already paid, or not the invoice we are collecting: nothing to do
        applied: bool = await workflow.execute_activity(
            contracts.ACTIVITY_RECORD_EXTERNAL_PAYMENT,
            ExternalPayment(
                invoice_id=payment.invoice_id,
                payment_intent_id=payment.payment_intent_id,
                occurred_at=now,
                actor=payment.requested_by,
            ),
            result_type=bool,
            summary=f"record payment {payment.payment_intent_id}",
            start_to_close_timeout=CHARGE_TIMEOUT,
            retry_policy=CHARGE_RETRY,
        )
        if applied:
            await self._recover(now, payment.requested_by)

    async def _apply_payment_method(self, update: PaymentMethodUpdated, now: datetime) -> None:
        """Record the new card; in dunning, charge the invoice again at once."""
        if update.payment_method_id:
            await self._quick(
                contracts.ACTIVITY_RECORD_PAYMENT_METHOD,
                PaymentMethodChange(
                    subscription_id=self._input.subscription_id,
                    payment_method_id=update.payment_method_id,
                    occurred_at=now,
                    actor=update.requested_by,
                ),
                summary="record new payment method",
            )
        if self._state.dunning is not None and self._state.status != SubscriptionStatus.CANCELED:
            await self._retry(
                now, actor=update.requested_by, failure_email=FIRST_FAILURE_EMAIL, step=-1
            )

    async def _apply_cancel(self, request: CancelRequest, now: datetime) -> None:
        st = self._state
        st.cancel_reason = request.reason
        st.cancel_requested_by = request.requested_by
        # "At period end" needs a paid period or a trial to run out; otherwise it is
        # now. A paused subscription has no period running.
        has_period = (
            st.period_end is not None or st.trial_end is not None
        ) and st.status != SubscriptionStatus.PAUSED
        if request.at_period_end and has_period:
            if not st.cancel_at_period_end:
                st.cancel_at_period_end = True
                await self._change_status(
                    st.status, now, reason=request.reason, actor=request.requested_by,
                    cancel_at_period_end=True,
                )  # fmt: skip
                await self._email("canceled", f"email:canceled:{self._input.subscription_id}", now)
            return
        await self._end(now, request.requested_by, request.reason, email=True)

    async def _apply_pause(self, request: PauseRequest, now: datetime) -> None:
        st = self._state
        # Checked again: a renewal may have changed the status since the validator ran.
        if self._still_refused(self._not_running("be paused")):
            return
        st.status_before_pause, st.paused_at = st.status, now
        await self._change_status(
            SubscriptionStatus.PAUSED, now, reason=request.reason, actor=request.requested_by
        )

    async def _apply_resume(self, request: ResumeRequest, now: datetime) -> None:
        st = self._state
        if st.status != SubscriptionStatus.PAUSED or st.paused_at is None:
            self._refused = self._no_resume()
            return
        shift = now - st.paused_at
        if st.period_start is not None and st.period_end is not None:
            # The paid period keeps its remaining time; the billing cycle restarts at
            # its new end (the billing day moves by the length of the pause).
            st.period_start, st.period_end = st.period_start + shift, st.period_end + shift
            st.anchor, st.anchor_index = st.period_end, st.period_index + 1
        elif st.trial_end is not None:
            st.trial_end = st.trial_end + shift
            st.anchor = st.trial_end
        else:
            st.anchor = st.anchor + shift
        status = st.status_before_pause or SubscriptionStatus.ACTIVE
        st.paused_at, st.status_before_pause = None, None
        await self._change_status(
            status, now, reason="resumed", actor=request.requested_by,
            period_start=st.period_start, period_end=st.period_end,
        )  # fmt: skip

    async def _apply_plan_change(self, request: ChangePlanRequest, now: datetime) -> None:
        st = self._state
        if self._still_refused(self._not_running("change plan")):
            return
        if request.at_period_end and st.period_end is not None:
            # Downgrade: the paid period runs out on the plan it was paid for.
            st.pending_price_id = None if request.price_id == self._plan() else request.price_id
            await self._record_change(
                SubscriptionChange(
                    subscription_id=self._input.subscription_id, status=st.status,
                    occurred_at=now, actor=request.requested_by,
                    reason=f"plan change to {request.price_id} at period end: {request.reason}",
                    action="plan_change_scheduled",
                ),
                f"plan change to {request.price_id} at period end",
            )  # fmt: skip
            return
        st.pending_price_id = None
        # Upgrade (or any change during a trial, which has nothing to prorate).
        draft = await self._switch_price(
            request.price_id, max(st.period_index, 0), now,
            actor=request.requested_by, reason=request.reason,
            prorate=st.period_start is not None and st.status == SubscriptionStatus.ACTIVE,
        )  # fmt: skip
        if draft is None:
            return
        invoice = await self._finalize(
            draft.invoice_id, now, f"finalize proration {draft.invoice_id}"
        )
        await self._collect(invoice, now)

    async def _apply_grace(self, request: GraceRequest, now: datetime) -> None:
        dunning = self._state.dunning
        if dunning is None:
            self._refused = _NOT_IN_DUNNING
            return
        # Every remaining step is counted from started_at: moving it moves them all.
        dunning.started_at = dunning.started_at + timedelta(days=request.days)
        await self._record_change(
            SubscriptionChange(
                subscription_id=self._input.subscription_id, status=self._state.status,
                occurred_at=now, actor=request.requested_by,
                reason=f"grace of {request.days} days: {request.reason}",
                action="grace_granted",
            ),
            f"grace of {request.days} days",
        )  # fmt: skip

    async def _apply_waive(self, request: WaiveRequest, now: datetime) -> None:
        st = self._state
        dunning = st.dunning
        if dunning is None:
            self._refused = _NOTHING_TO_WAIVE
            return
        if self._still_refused(self._not_in_collection(request.invoice_id)):
            return
        await self._quick(
            contracts.ACTIVITY_RECORD_INVOICE_CHANGE,
            InvoiceChange(
                invoice_id=dunning.invoice_id, status=request.mark_as, occurred_at=now,
                actor=request.requested_by, reason=f"waived: {request.reason}",
            ),
            summary=f"waive {dunning.invoice_number}",
        )  # fmt: skip
        was_suspended = st.status == SubscriptionStatus.SUSPENDED
        st.dunning = None
        await self._change_status(
            SubscriptionStatus.ACTIVE, now, reason=f"invoice waived: {request.reason}",
            actor=request.requested_by,
        )  # fmt: skip
        if was_suspended:
            self._restart_cycle_if_over(now)


def _unless(ok: object, refusal: str) -> str | None:
    """``refusal`` unless ``ok`` holds."""
    return None if ok else refusal
