"""What ``SubscriptionWorkflow`` does: one durable workflow per subscription.

It sleeps until the next renewal, then creates, finalizes, charges and renders the
period's invoice and emails the customer. A declined charge starts the dunning ladder
(``billing.dunning``). It continues as new after every renewal, carrying its state.

Renewals during dunning: a renewal that falls due while the subscription is
``past_due`` or ``suspended`` is held, not billed. If the customer pays, a past-due
subscription bills the held periods at once on their usual dates (they had the
service); a suspended one whose paid period is over starts a fresh cycle at the
moment of recovery (the suspended time is not billed). If dunning ends in
cancellation, nothing more is billed.

This module is passed through the workflow sandbox (``workflows/subscription.py``
imports it with ``imports_passed_through``): the sandbox re-imports the module that
defines a workflow class for every workflow it loads, and with this code in that
module every cached subscription cost about 120 KiB more than a bare workflow
(``bench memory``). Passed through, the sandbox no longer checks it for
non-deterministic calls, so keep to the rules by hand: time from ``self._now()`` /
``workflow.now()``, waits through ``workflow`` timers, no I/O, no randomness, and no
module-level state (one copy is shared by every workflow in the worker). The replay
tests (tests/test_replay.py) check recorded histories against it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ApplicationError

from activities.billing import BillingActivities
from billing import calendar
from billing.dunning import FIRST_FAILURE_EMAIL, DunningAction
from models.payloads import (
    CancelRequest,
    ChangePlanRequest,
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    CreateInvoiceRequest,
    DunningState,
    EmailRequest,
    ExternalPayment,
    FinalInvoiceRequest,
    FinalizeInvoiceRequest,
    GraceRequest,
    InvoiceChange,
    InvoiceRef,
    InvoiceStatus,
    OutstandingInvoice,
    PauseRequest,
    PaymentMethodChange,
    PaymentMethodUpdated,
    PaymentReceived,
    PlanChange,
    RenderInvoiceRequest,
    ResumeRequest,
    StatusView,
    SubscriptionChange,
    SubscriptionInput,
    SubscriptionState,
    SubscriptionStatus,
    TestClock,
    WaiveRequest,
)
from workflows import search_attributes as sa

# workflow.patched ids: each guards a change that running subscriptions' histories
# do not have (README, "Changing workflow code").
FINAL_USAGE_INVOICE = "final-usage-invoice"
# A renewal in five Temporal actions: issue (create + finalize), charge, render + email,
# the timer and the continue-as-new.
COMPACT_CYCLE = "compact-cycle"
# Status changes (and the invoice written off at cancellation) recorded by the email
# activity that announces them, not by an activity of their own: a fully dunned cycle
# costs four Temporal actions less.
RECORDS_WITH_EMAIL = "records-with-email"
# Periods on the customer's local calendar (SubscriptionInput.time_zone), not UTC's.
# Asked once, when a subscription's first run starts with a zone other than UTC (the
# UTC calendar is the old one); the answer is kept as SubscriptionState.time_zone, so
# running subscriptions keep their UTC calendar for good and later runs never ask.
LOCAL_CALENDAR = "local-calendar"

# Database and email activities: short, retried until they succeed.
QUICK_TIMEOUT = timedelta(seconds=30)
QUICK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
# Stripe: network errors, 5xx and 429 raise and are retried with backoff; a decline
# is a result, not an error, so it is never retried here.
CHARGE_TIMEOUT = timedelta(seconds=60)
CHARGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["InvoiceNotOpen", "LiveModeRefused"],
)


class SubscriptionCore:
    """The workflow's handlers and steps; ``SubscriptionWorkflow`` adds init and run."""

    def __init__(self, input: SubscriptionInput) -> None:
        self._input = input
        if input.state is not None:
            self._state = input.state
        else:
            local = input.time_zone not in ("", "UTC") and workflow.patched(LOCAL_CALENDAR)
            self._state = _initial_state(input, workflow.now(), input.time_zone if local else "")
        self._cancel: CancelRequest | None = None
        self._payment_methods: list[PaymentMethodUpdated] = []
        self._payments: list[PaymentReceived] = []
        # Updates queue their request here; the main loop applies it between steps
        # (so activities never interleave) and clears it, which answers the update.
        self._pause: PauseRequest | None = None
        self._resume: ResumeRequest | None = None
        self._plan_change: ChangePlanRequest | None = None
        self._grace: GraceRequest | None = None
        self._waive: WaiveRequest | None = None
        self._refused: str | None = None
        self._woken = False
        self._renewed = False

    # -- public messages (contracts) ------------------------------------------------

    @workflow.signal(name="cancel")
    def cancel(self, request: CancelRequest) -> None:
        self._cancel = request
        self._woken = True

    @workflow.signal(name="payment_method_updated")
    def payment_method_updated(self, update: PaymentMethodUpdated) -> None:
        self._payment_methods.append(update)
        self._woken = True

    @workflow.signal(name="payment_received")
    def payment_received(self, payment: PaymentReceived) -> None:
        self._payments.append(payment)
        self._woken = True

    @workflow.update(name="pause")
    async def pause(self, request: PauseRequest) -> StatusView:
        """No invoices until ``resume``; answers with the status once applied."""
        self._pause, self._refused, self._woken = request, None, True
        await workflow.wait_condition(lambda: self._pause is None)
        return self._answer()

    @pause.validator
    def _check_pause(self, request: PauseRequest) -> None:
        # A validator rejects before anything is written to the history.
        status = self._state.status
        if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            raise _invalid(f"only an active or trialing subscription can be paused; it is {status}")
        if self._state.cancel_at_period_end:
            raise _invalid("the subscription ends at the end of this period; it cannot be paused")
        if self._pending():  # one support change at a time: they share one answer slot
            raise _invalid("another change is being applied; try again")

    @workflow.update(name="resume")
    async def resume(self, request: ResumeRequest) -> StatusView:
        """Billing restarts; the paused time is added to the current period."""
        self._resume, self._refused, self._woken = request, None, True
        await workflow.wait_condition(lambda: self._resume is None)
        return self._answer()

    @resume.validator
    def _check_resume(self, request: ResumeRequest) -> None:
        if self._state.status != SubscriptionStatus.PAUSED:
            raise _invalid(f"only a paused subscription can be resumed; it is {self._state.status}")
        if self._pending():  # one support change at a time: they share one answer slot
            raise _invalid("another change is being applied; try again")

    @workflow.update(name="change_plan")
    async def change_plan(self, request: ChangePlanRequest) -> StatusView:
        """Upgrade now (prorated charge) or downgrade at the period end."""
        self._plan_change, self._refused, self._woken = request, None, True
        await workflow.wait_condition(lambda: self._plan_change is None)
        return self._answer()

    @change_plan.validator
    def _check_change_plan(self, request: ChangePlanRequest) -> None:
        status = self._state.status
        if status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            raise _invalid(
                f"only an active or trialing subscription can change plan; it is {status}"
            )
        if request.price_id == self._plan() and not self._state.pending_price_id:
            raise _invalid(f"the subscription is already on {request.price_id}")
        if self._state.cancel_at_period_end:
            raise _invalid("the subscription ends at the end of this period; it cannot change plan")
        if self._pending():
            raise _invalid("another change is being applied; try again")

    @workflow.update(name="grant_grace")
    async def grant_grace(self, request: GraceRequest) -> StatusView:
        """Postpone the rest of the dunning ladder by ``days``."""
        self._grace, self._refused, self._woken = request, None, True
        await workflow.wait_condition(lambda: self._grace is None)
        return self._answer()

    @grant_grace.validator
    def _check_grace(self, request: GraceRequest) -> None:
        if self._state.dunning is None:
            raise _invalid("a grace period is for a subscription in dunning; nothing is overdue")
        if not 1 <= request.days <= 60:
            raise _invalid("a grace period is 1 to 60 days")
        if self._pending():
            raise _invalid("another change is being applied; try again")

    @workflow.update(name="waive_invoice")
    async def waive_invoice(self, request: WaiveRequest) -> StatusView:
        """Void the invoice in dunning; the subscription is active again, unbilled."""
        self._waive, self._refused, self._woken = request, None, True
        await workflow.wait_condition(lambda: self._waive is None)
        return self._answer()

    @waive_invoice.validator
    def _check_waive(self, request: WaiveRequest) -> None:
        if self._state.dunning is None:
            raise _invalid("there is no unpaid invoice to waive")
        if not request.reason.strip():
            raise _invalid("waiving an invoice needs a reason")
        dunning = self._state.dunning
        if request.invoice_id is not None and request.invoice_id != dunning.invoice_id:
            raise _invalid(f"invoice {request.invoice_id} is not the one in collection")
        if request.mark_as not in (InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
            raise _invalid("a waived invoice is marked void or uncollectible")
        if self._pending():
            raise _invalid("another change is being applied; try again")

    def _plan(self) -> str:
        return self._state.price_id or self._input.price_id

    def _answer(self) -> StatusView:
        refused, self._refused = self._refused, None
        if refused:
            raise _invalid(refused)
        return self.status()

    def _pending(self) -> bool:
        return bool(
            self._cancel
            or self._payment_methods
            or self._payments
            or self._pause
            or self._resume
            or self._plan_change
            or self._grace
            or self._waive
        )

    @workflow.query(name="status")
    def status(self) -> StatusView:
        st = self._state
        action, at = self._next_action()
        # A query is not recorded in the history, so what it computes needs no patch.
        upcoming = calendar.period(
            st.anchor,
            self._input.interval,
            self._input.interval_count,
            st.period_index + 1 - st.anchor_index,
            time_zone=st.time_zone,
        )
        outstanding = None
        if st.dunning is not None:
            outstanding = OutstandingInvoice(
                invoice_id=st.dunning.invoice_id,
                number=st.dunning.invoice_number,
                amount_due=st.dunning.amount_due,
                currency=st.dunning.currency,
            )
        return StatusView(
            subscription_id=self._input.subscription_id,
            status=st.status,
            current_period_start=st.period_start,
            current_period_end=st.period_end,
            next_action=action,
            next_action_at=at,
            dunning_step=st.dunning.next_step if st.dunning else None,
            outstanding_invoice=outstanding,
            cancel_at_period_end=st.cancel_at_period_end,
            now=self._now(),
            price_id=self._plan(),
            pending_price_id=st.pending_price_id,
            next_period_start=upcoming.start,
            next_period_end=upcoming.end,
        )

    # -- main loop ------------------------------------------------------------------------

    async def main(self, input: SubscriptionInput) -> str:
        if input.state is None:
            workflow.upsert_search_attributes(self._search_attribute_updates())
        while True:
            await self._handle_messages()
            if self._state.status == SubscriptionStatus.CANCELED:
                return str(self._state.status)
            if self._renewed:
                # Updates wait for the loop to apply them: wake for those too, or a pause
                # arriving now would wait for us while we wait for it.
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or self._pending()
                )
                if self._pending():
                    continue
                workflow.continue_as_new(
                    SubscriptionInput(
                        subscription_id=input.subscription_id,
                        customer_id=input.customer_id,
                        price_id=self._plan(),
                        interval=input.interval,
                        interval_count=input.interval_count,
                        # start_at, trial_days and test_clock_speed only build the
                        # first run's state: left out, they cost no history bytes.
                        dunning=input.dunning,
                        state=self._state,
                        stripe_task_queue=input.stripe_task_queue,
                    ),
                    # Set here, the search attributes cost no extra action per cycle.
                    search_attributes=TypedSearchAttributes(self._search_attribute_pairs()),
                )
            action, at = self._next_action()
            self._show_details(action, at)
            # The renewal timer is the hot path: its summary (an encrypted payload of
            # ~150 bytes) would repeat what the current details already show.
            summary = None if action == "renew" else _summary(action, at)
            if await self._sleep_until(at, summary):
                continue  # a message arrived first: handle it, then decide again
            await self._perform(action, at)

    def _next_action(self) -> tuple[str, datetime | None]:
        st = self._state
        steps = self._input.dunning.steps
        if st.status == SubscriptionStatus.CANCELED:
            return "none", None
        if st.status == SubscriptionStatus.PAUSED:
            return "resume", None  # nothing happens until someone resumes
        if st.dunning is not None:
            step = steps[st.dunning.next_step]
            at = st.dunning.started_at + timedelta(days=step.day)
            if st.cancel_at_period_end and st.period_end is not None and st.period_end <= at:
                return "end", st.period_end
            return _DUNNING_ACTIONS[step.action], at
        if st.period_index < 0:
            start = st.trial_end or st.anchor
            return ("end" if st.cancel_at_period_end else "start_billing"), start
        assert st.period_end is not None
        return ("end" if st.cancel_at_period_end else "renew"), st.period_end

    async def _perform(self, action: str, at: datetime | None) -> None:
        assert at is not None  # actions without a time only wait for a message
        if action in ("renew", "start_billing"):
            await self._bill_next_period(max(at, self._now()))
        elif action == "end":
            await self._end(at, self._cancel_actor(), self._state.cancel_reason)
        else:
            await self._dunning_step(at)

    # -- billing a period --------------------------------------------------------------

    async def _bill_next_period(self, now: datetime) -> None:
        st = self._state
        index = st.period_index + 1
        period = calendar.period(
            st.anchor, self._input.interval, self._input.interval_count, index - st.anchor_index,
            time_zone=st.time_zone,
        )  # fmt: skip
        if st.status == SubscriptionStatus.TRIALING:
            await self._change_status(SubscriptionStatus.ACTIVE, now, reason="trial ended")
        if st.pending_price_id is not None:
            # A downgrade asked for during the last period starts with this one.
            await self._switch_price(st.pending_price_id, index, now, actor="workflow")
            st.pending_price_id = None
        request = CreateInvoiceRequest(
            subscription_id=self._input.subscription_id,
            period_index=index,
            period_start=period.start,
            period_end=period.end,
            issued_at=now,
        )
        summary = f"invoice period {index}: {period.start:%Y-%m-%d} to {period.end:%Y-%m-%d}"
        if self._patched(COMPACT_CYCLE):
            # No summary on the hot path: the activity's name says it, and each summary
            # is an encrypted payload in the history (about 150 bytes).
            invoice = await workflow.execute_activity_method(
                BillingActivities.issue_invoice,
                request,
                start_to_close_timeout=QUICK_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )
        else:
            invoice = await workflow.execute_activity_method(
                BillingActivities.create_invoice,
                request,
                summary=summary,
                start_to_close_timeout=QUICK_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )
            invoice = await workflow.execute_activity_method(
                BillingActivities.finalize_invoice,
                FinalizeInvoiceRequest(invoice_id=invoice.invoice_id, finalized_at=now),
                summary=f"finalize {invoice.invoice_id}",
                start_to_close_timeout=QUICK_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )
        st.period_index, st.period_start, st.period_end = index, period.start, period.end
        st.renewals += 1
        self._renewed = True
        await self._collect(invoice, now)

    async def _collect(self, invoice: InvoiceRef, now: datetime) -> None:
        """Charge a finalized invoice; a receipt, or the start of dunning."""
        st = self._state
        result = await self._charge(invoice.invoice_id, invoice.number, 1, now)
        # Rendered with the email in one activity from COMPACT_CYCLE on.
        compact = self._patched(COMPACT_CYCLE)
        if not compact:
            await self._render(invoice.invoice_id, invoice.number)
        if result.outcome == ChargeOutcome.SUCCEEDED:
            await self._email(
                "receipt", f"email:receipt:{invoice.invoice_id}", now, invoice.invoice_id,
                render=compact,
            )  # fmt: skip
            return
        st.dunning = DunningState(
            invoice_id=invoice.invoice_id,
            invoice_number=invoice.number,
            amount_due=invoice.amount_due,
            currency=invoice.currency,
            started_at=now,
        )
        key = f"email:{FIRST_FAILURE_EMAIL}:{invoice.invoice_id}:1"
        if self._patched(RECORDS_WITH_EMAIL):
            change = self._set_status(SubscriptionStatus.PAST_DUE, now, reason=_why(result))
            await self._email(
                FIRST_FAILURE_EMAIL, key, now, invoice.invoice_id, render=compact,
                status_change=change,
            )  # fmt: skip
            return
        await self._change_status(SubscriptionStatus.PAST_DUE, now, reason=_why(result))
        await self._email(FIRST_FAILURE_EMAIL, key, now, invoice.invoice_id, render=compact)

    async def _charge(
        self, invoice_id: str, number: str | None, attempt: int, now: datetime
    ) -> ChargeResult:
        return await workflow.execute_activity_method(
            BillingActivities.charge_invoice,
            ChargeRequest(
                invoice_id=invoice_id,
                attempt=attempt,
                attempted_at=now,
                test_clock=self._state.clock is not None,
            ),
            # A first attempt is the hot path: no summary (see _bill_next_period).
            summary=f"charge {number or invoice_id}, attempt {attempt}" if attempt > 1 else None,
            # A queue of its own, rate-limited below Stripe's limit, when configured.
            task_queue=self._input.stripe_task_queue,
            start_to_close_timeout=CHARGE_TIMEOUT,
            retry_policy=CHARGE_RETRY,
        )

    async def _render(self, invoice_id: str, number: str | None) -> None:
        await workflow.execute_activity_method(
            BillingActivities.render_invoice,
            RenderInvoiceRequest(invoice_id=invoice_id),
            summary=f"render {number or invoice_id}",
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )

    # -- dunning ------------------------------------------------------------------------

    async def _dunning_step(self, at: datetime) -> None:
        st = self._state
        dunning = st.dunning
        assert dunning is not None
        index = dunning.next_step
        step = self._input.dunning.steps[index]
        dunning.next_step = index + 1
        if step.action == DunningAction.RETRY:
            await self._retry(at, actor="dunning", failure_email=None, step=index)
        elif step.action == DunningAction.SUSPEND:
            key = f"email:suspended:{dunning.invoice_id}"
            if self._patched(RECORDS_WITH_EMAIL):
                change = self._set_status(SubscriptionStatus.SUSPENDED, at, reason="unpaid invoice")
                await self._email("suspended", key, at, dunning.invoice_id, status_change=change)
                return
            await self._change_status(SubscriptionStatus.SUSPENDED, at, reason="unpaid invoice")
            await self._email("suspended", key, at, dunning.invoice_id)
        elif self._patched(RECORDS_WITH_EMAIL):
            written_off = InvoiceChange(
                invoice_id=dunning.invoice_id,
                status=InvoiceStatus.UNCOLLECTIBLE,
                occurred_at=at,
                reason="unpaid after dunning",
            )
            change = self._set_status(
                SubscriptionStatus.CANCELED, at, reason="unpaid invoice after dunning"
            )
            await self._email(
                "canceled_unpaid", f"email:canceled_unpaid:{dunning.invoice_id}", at,
                dunning.invoice_id, invoice_change=written_off, status_change=change,
            )  # fmt: skip
        else:
            await self._mark_invoice(InvoiceStatus.UNCOLLECTIBLE, at, "unpaid after dunning")
            await self._change_status(
                SubscriptionStatus.CANCELED, at, reason="unpaid invoice after dunning"
            )
            await self._email(
                "canceled_unpaid", f"email:canceled_unpaid:{dunning.invoice_id}", at,
                dunning.invoice_id,
            )  # fmt: skip

    async def _retry(
        self, at: datetime, *, actor: str, failure_email: str | None, step: int
    ) -> None:
        """Charge the outstanding invoice again: a new attempt, with a new business key."""
        dunning = self._state.dunning
        assert dunning is not None
        dunning.attempt += 1
        result = await self._charge(dunning.invoice_id, dunning.invoice_number, dunning.attempt, at)
        if result.outcome == ChargeOutcome.SUCCEEDED:
            await self._recover(at, actor)
            return
        kind = failure_email or self._input.dunning.email_after_failed_retry(step)
        await self._email(
            kind,
            f"email:{kind}:{dunning.invoice_id}:{dunning.attempt}",
            at,
            dunning.invoice_id,
        )

    async def _recover(self, at: datetime, actor: str) -> None:
        st = self._state
        dunning = st.dunning
        assert dunning is not None
        was_suspended = st.status == SubscriptionStatus.SUSPENDED
        st.dunning = None
        key = f"email:receipt:{dunning.invoice_id}"
        if self._patched(RECORDS_WITH_EMAIL):
            change = self._set_status(
                SubscriptionStatus.ACTIVE, at, reason="payment received", actor=actor
            )
            await self._email(
                "receipt", key, at, dunning.invoice_id, render=True, status_change=change
            )
        else:
            await self._change_status(
                SubscriptionStatus.ACTIVE, at, reason="payment received", actor=actor
            )
            await self._render(dunning.invoice_id, dunning.invoice_number)
            await self._email("receipt", key, at, dunning.invoice_id)
        if was_suspended and st.period_end is not None and st.period_end <= at:
            # The paid period is over: start a fresh cycle now rather than bill the
            # time the service was suspended.
            st.anchor, st.anchor_index, st.period_end = at, st.period_index + 1, at

    # -- messages -----------------------------------------------------------------------

    async def _handle_messages(self) -> None:
        now = self._now()
        while self._payments:
            await self._apply_payment(self._payments.pop(0), now)
        while self._payment_methods:
            update = self._payment_methods.pop(0)
            if update.payment_method_id:
                await workflow.execute_activity_method(
                    BillingActivities.record_payment_method,
                    PaymentMethodChange(
                        subscription_id=self._input.subscription_id,
                        payment_method_id=update.payment_method_id,
                        occurred_at=now,
                        actor=update.requested_by,
                    ),
                    summary="record new payment method",
                    start_to_close_timeout=QUICK_TIMEOUT,
                    retry_policy=QUICK_RETRY,
                )
            if (
                self._state.dunning is not None
                and self._state.status != SubscriptionStatus.CANCELED
            ):
                await self._retry(
                    now, actor=update.requested_by, failure_email=FIRST_FAILURE_EMAIL, step=-1
                )
        if self._pause is not None:
            await self._apply_pause(self._pause, now)
            self._pause = None
        if self._resume is not None:
            await self._apply_resume(self._resume, now)
            self._resume = None
        if self._plan_change is not None:
            await self._apply_plan_change(self._plan_change, now)
            self._plan_change = None
        if self._grace is not None:
            await self._apply_grace(self._grace, now)
            self._grace = None
        if self._waive is not None:
            await self._apply_waive(self._waive, now)
            self._waive = None
        request, self._cancel = self._cancel, None
        if request is None or self._state.status == SubscriptionStatus.CANCELED:
            return
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

    async def _apply_payment(self, payment: PaymentReceived, now: datetime) -> None:
        """A payment made outside our charge: if it pays the invoice in dunning, recover."""
        dunning = self._state.dunning
        if dunning is None or dunning.invoice_id != payment.invoice_id:
            return  # already paid, or not the invoice we are collecting: nothing to do
        applied = await workflow.execute_activity_method(
            BillingActivities.record_external_payment,
            ExternalPayment(
                invoice_id=payment.invoice_id,
                payment_intent_id=payment.payment_intent_id,
                occurred_at=now,
                actor=payment.requested_by,
            ),
            summary=f"record payment {payment.payment_intent_id}",
            start_to_close_timeout=CHARGE_TIMEOUT,
            retry_policy=CHARGE_RETRY,
        )
        if applied:
            await self._recover(now, payment.requested_by)

    async def _apply_plan_change(self, request: ChangePlanRequest, now: datetime) -> None:
        st = self._state
        if st.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            self._refused = (
                f"only an active or trialing subscription can change plan; it is {st.status}"
            )
            return
        if request.at_period_end and st.period_end is not None:
            # Downgrade: the paid period runs out on the plan it was paid for.
            st.pending_price_id = None if request.price_id == self._plan() else request.price_id
            await workflow.execute_activity_method(
                BillingActivities.record_subscription_change,
                SubscriptionChange(
                    subscription_id=self._input.subscription_id, status=st.status,
                    occurred_at=now, actor=request.requested_by,
                    reason=f"plan change to {request.price_id} at period end: {request.reason}",
                    action="plan_change_scheduled",
                ),
                summary=f"plan change to {request.price_id} at period end",
                start_to_close_timeout=QUICK_TIMEOUT,
                retry_policy=QUICK_RETRY,
            )  # fmt: skip
            return
        st.pending_price_id = None
        # Upgrade (or any change during a trial, which has nothing to prorate).
        invoice = await self._switch_price(
            request.price_id, max(st.period_index, 0), now,
            actor=request.requested_by, reason=request.reason,
            prorate=st.period_start is not None and st.status == SubscriptionStatus.ACTIVE,
        )  # fmt: skip
        if invoice is None:
            return
        invoice = await workflow.execute_activity_method(
            BillingActivities.finalize_invoice,
            FinalizeInvoiceRequest(invoice_id=invoice.invoice_id, finalized_at=now),
            summary=f"finalize proration {invoice.invoice_id}",
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        await self._collect(invoice, now)

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
        st = self._state
        invoice = await workflow.execute_activity_method(
            BillingActivities.change_plan,
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
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        st.price_id = price_id
        workflow.upsert_search_attributes([sa.PLAN_ID.value_set(price_id)])
        return invoice

    async def _apply_grace(self, request: GraceRequest, now: datetime) -> None:
        dunning = self._state.dunning
        if dunning is None:
            self._refused = "a grace period is for a subscription in dunning; nothing is overdue"
            return
        # Every remaining step is counted from started_at: moving it moves them all.
        dunning.started_at = dunning.started_at + timedelta(days=request.days)
        await workflow.execute_activity_method(
            BillingActivities.record_subscription_change,
            SubscriptionChange(
                subscription_id=self._input.subscription_id, status=self._state.status,
                occurred_at=now, actor=request.requested_by,
                reason=f"grace of {request.days} days: {request.reason}",
                action="grace_granted",
            ),
            summary=f"grace of {request.days} days",
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )  # fmt: skip

    async def _apply_waive(self, request: WaiveRequest, now: datetime) -> None:
        st = self._state
        dunning = st.dunning
        if dunning is None:
            self._refused = "there is no unpaid invoice to waive"
            return
        if request.invoice_id is not None and request.invoice_id != dunning.invoice_id:
            self._refused = f"invoice {request.invoice_id} is not the one in collection"
            return
        await workflow.execute_activity_method(
            BillingActivities.record_invoice_change,
            InvoiceChange(
                invoice_id=dunning.invoice_id, status=request.mark_as, occurred_at=now,
                actor=request.requested_by, reason=f"waived: {request.reason}",
            ),
            summary=f"waive {dunning.invoice_number}",
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )  # fmt: skip
        was_suspended = st.status == SubscriptionStatus.SUSPENDED
        st.dunning = None
        await self._change_status(
            SubscriptionStatus.ACTIVE, now, reason=f"invoice waived: {request.reason}",
            actor=request.requested_by,
        )  # fmt: skip
        if was_suspended and st.period_end is not None and st.period_end <= now:
            st.anchor, st.anchor_index, st.period_end = now, st.period_index + 1, now

    async def _apply_pause(self, request: PauseRequest, now: datetime) -> None:
        st = self._state
        # Checked again: a renewal may have changed the status since the validator ran.
        if st.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            self._refused = (
                f"only an active or trialing subscription can be paused; it is {st.status}"
            )
            return
        st.status_before_pause, st.paused_at = st.status, now
        await self._change_status(
            SubscriptionStatus.PAUSED, now, reason=request.reason, actor=request.requested_by
        )

    async def _apply_resume(self, request: ResumeRequest, now: datetime) -> None:
        st = self._state
        if st.status != SubscriptionStatus.PAUSED or st.paused_at is None:
            self._refused = f"only a paused subscription can be resumed; it is {st.status}"
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

    async def _end(self, at: datetime, actor: str, reason: str, *, email: bool = False) -> None:
        """Cancel now (support) or at the period end that was asked for."""
        st = self._state
        if st.dunning is not None:
            await self._mark_invoice(
                InvoiceStatus.UNCOLLECTIBLE, at, f"subscription canceled: {reason}"
            )
        await self._change_status(SubscriptionStatus.CANCELED, at, reason=reason, actor=actor)
        # Metered usage is billed in arrears: the last period's usage is still owed.
        # (Not in dunning: that card is failing, and the debt is written off.)
        if st.dunning is None and st.period_index >= 0 and self._patched(FINAL_USAGE_INVOICE):
            await self._bill_final_usage(at)
        if email:
            await self._email("canceled", f"email:canceled:{self._input.subscription_id}", at)

    async def _bill_final_usage(self, at: datetime) -> None:
        """One invoice for the last period's usage, charged once (no dunning after the end)."""
        st = self._state
        invoice = await workflow.execute_activity_method(
            BillingActivities.create_final_invoice,
            FinalInvoiceRequest(
                subscription_id=self._input.subscription_id,
                period_index=st.period_index + 1,
                ended_at=at,
            ),
            summary="final invoice: usage of the last period",
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        if invoice is None:
            return
        invoice = await workflow.execute_activity_method(
            BillingActivities.finalize_invoice,
            FinalizeInvoiceRequest(invoice_id=invoice.invoice_id, finalized_at=at),
            summary=f"finalize {invoice.invoice_id}",
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        result = await self._charge(invoice.invoice_id, invoice.number, 1, at)
        await self._render(invoice.invoice_id, invoice.number)
        if result.outcome == ChargeOutcome.SUCCEEDED:
            await self._email(
                "receipt", f"email:receipt:{invoice.invoice_id}", at, invoice.invoice_id
            )

    def _cancel_actor(self) -> str:
        return self._state.cancel_requested_by or "unknown"

    # -- small steps --------------------------------------------------------------------

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
        await workflow.execute_activity_method(
            BillingActivities.record_subscription_change,
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
            summary=f"status {status}" + (f": {reason}" if reason else ""),
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
        )
        if changed:
            workflow.upsert_search_attributes(self._search_attribute_updates())

    def _set_status(
        self, status: SubscriptionStatus, at: datetime, *, reason: str, actor: str = "workflow"
    ) -> SubscriptionChange:
        """Change the status here (and its search attribute); returns what the database
        needs, for the activity that records it with its email (RECORDS_WITH_EMAIL)."""
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
        await workflow.execute_activity_method(
            BillingActivities.record_invoice_change,
            InvoiceChange(
                invoice_id=dunning.invoice_id, status=status, occurred_at=at, reason=reason
            ),
            summary=f"invoice {dunning.invoice_number} {status}",
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
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
        await workflow.execute_activity_method(
            BillingActivities.render_and_email if render else BillingActivities.send_email,
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
            start_to_close_timeout=QUICK_TIMEOUT,
            retry_policy=QUICK_RETRY,
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

    def _patched(self, patch_id: str) -> bool:
        """``workflow.patched``, asked once per subscription instead of once per run.

        Asked in every run, every renewal's history would carry a patch marker and a
        ``TemporalChangeVersion`` upsert (about 230 bytes). Once true, the id is kept in
        the state that continue-as-new carries, and later runs take the new path
        without asking: their histories have no marker, and replay the same way.
        Histories recorded before this method carry no ids, so they still ask.
        """
        if patch_id in self._state.patches:
            return True
        if workflow.patched(patch_id):
            self._state.patches.append(patch_id)
            return True
        return False

    # -- time ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        """Billing time: the workflow clock, sped up under a test clock."""
        real = workflow.now()
        clock = self._state.clock
        if clock is None or clock.real_origin is None or clock.virtual_origin is None:
            return real
        return clock.virtual_origin + (real - clock.real_origin) * clock.speed

    async def _sleep_until(self, at: datetime | None, summary: str | None) -> bool:
        """Sleep until billing time ``at`` (forever if None); True if a message woke us."""
        self._woken = False
        if at is None:
            await workflow.wait_condition(lambda: self._woken)
            return True
        delay = at - self._now()
        clock = self._state.clock
        if clock is not None:
            delay = delay / clock.speed
        if delay <= timedelta(0) and not self._woken:
            return False
        try:
            await workflow.wait_condition(
                lambda: self._woken, timeout=delay, timeout_summary=summary
            )
        except TimeoutError:
            return False
        return True

    def _show_details(self, action: str, at: datetime | None) -> None:
        st = self._state
        period = (
            f"{st.period_start:%Y-%m-%d} → {st.period_end:%Y-%m-%d}"
            if st.period_start and st.period_end
            else "not started"
        )
        lines = [
            f"**{st.status}** · period {period}",
            f"next: {_summary(action, at)}",
        ]
        if st.dunning is not None:
            lines.append(
                f"dunning: invoice {st.dunning.invoice_number}, {st.dunning.amount_due} "
                f"{st.dunning.currency} due, step {st.dunning.next_step}"
            )
        if st.clock is not None:
            lines.append(
                f"test clock ×{st.clock.speed:g}, billing time {self._now():%Y-%m-%d %H:%M}"
            )
        workflow.set_current_details("\n\n".join(lines))

    # -- search attributes ---------------------------------------------------------------

    def _search_attribute_pairs(self) -> list[SearchAttributePair]:
        pairs: list[SearchAttributePair] = [
            SearchAttributePair(sa.SUBSCRIPTION_STATUS, str(self._state.status)),
            SearchAttributePair(sa.CUSTOMER_ID, self._input.customer_id),
            SearchAttributePair(sa.PLAN_ID, self._plan()),
        ]
        renewal = self._next_renewal()
        if renewal is not None:
            pairs.append(SearchAttributePair(sa.NEXT_RENEWAL_AT, renewal))
        return pairs

    def _search_attribute_updates(self) -> list[SearchAttributeUpdate[Any]]:
        updates: list[SearchAttributeUpdate[Any]] = [
            sa.SUBSCRIPTION_STATUS.value_set(str(self._state.status)),
            sa.CUSTOMER_ID.value_set(self._input.customer_id),
            sa.PLAN_ID.value_set(self._plan()),
        ]
        renewal = self._next_renewal()
        updates.append(
            sa.NEXT_RENEWAL_AT.value_set(renewal) if renewal else sa.NEXT_RENEWAL_AT.value_unset()
        )
        return updates

    def _next_renewal(self) -> datetime | None:
        action, at = self._next_action()
        return at if action in ("renew", "start_billing") else None


_DUNNING_ACTIONS = {
    DunningAction.RETRY: "retry_payment",
    DunningAction.SUSPEND: "suspend",
    DunningAction.CANCEL: "cancel",
}


def _initial_state(input: SubscriptionInput, now: datetime, time_zone: str) -> SubscriptionState:
    """The first run's state; ``time_zone`` is the calendar's ("": UTC)."""
    clock = None
    start = input.start_at or now
    if input.test_clock_speed:
        clock = TestClock(speed=input.test_clock_speed, real_origin=now, virtual_origin=start)
    trial_end = None
    if input.trial_days > 0:
        # Local days: the trial (and so the first period) ends at the start's local time
        # of day even across a DST change. On UTC, start + trial_days * 24 h as before.
        trial_end = calendar.boundary(
            start, calendar.Interval.DAY, input.trial_days, 1, time_zone=time_zone
        )
    return SubscriptionState(
        status=SubscriptionStatus.TRIALING if trial_end else SubscriptionStatus.ACTIVE,
        anchor=trial_end or start,
        trial_end=trial_end,
        clock=clock,
        time_zone=time_zone,
    )


def _invalid(message: str) -> ApplicationError:
    """A refused support request: the caller sees exactly this sentence."""
    return ApplicationError(message, type="InvalidRequest", non_retryable=True)


def _summary(action: str, at: datetime | None) -> str:
    return f"{action} at {at:%Y-%m-%d %H:%M} UTC" if at else f"waiting to {action}"


def _why(result: ChargeResult) -> str:
    return f"payment declined ({result.decline_code or 'unknown'})"
