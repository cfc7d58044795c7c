"""Collecting an invoice: the charge, and when it is declined, the dunning ladder
(``billing.dunning``): retries, reminders, suspension, and at last cancellation.

Renewals during dunning are held, not billed (see subscription_core.py). A retry is a
new attempt with a new business key; a retried activity is the same attempt.
"""

from __future__ import annotations

from datetime import datetime

from billing.dunning import FIRST_FAILURE_EMAIL, DunningAction
from kakin import contracts
from models.payloads import (
    ChargeOutcome,
    ChargeResult,
    DunningState,
    InvoiceChange,
    InvoiceRef,
    InvoiceStatus,
    SubscriptionStatus,
)
from workflows.steps import Steps


class Dunning(Steps):
    """Charge a finalized invoice; climb the dunning ladder until it is paid or written off."""

    async def _collect(
        self, invoice: InvoiceRef, now: datetime, *, charged: ChargeResult | None = None
    ) -> None:
        """Charge a finalized invoice (unless ``charged`` is its first attempt's outcome,
        from issue_and_charge_invoice); a receipt, or the start of dunning."""
        st = self._state
        result = charged or await self._charge(invoice.invoice_id, invoice.number, 1, now)
        # Rendered with the email in one activity from PATCH_COMPACT_CYCLE on.
        compact = self._patched(contracts.PATCH_COMPACT_CYCLE)
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
        if self._patched(contracts.PATCH_RECORDS_WITH_EMAIL):
            change = self._set_status(SubscriptionStatus.PAST_DUE, now, reason=_why(result))
            await self._email(
                FIRST_FAILURE_EMAIL, key, now, invoice.invoice_id, render=compact,
                status_change=change,
            )  # fmt: skip
            return
        await self._change_status(SubscriptionStatus.PAST_DUE, now, reason=_why(result))
        await self._email(FIRST_FAILURE_EMAIL, key, now, invoice.invoice_id, render=compact)

    async def _dunning_step(self, at: datetime) -> None:
        dunning = self._state.dunning
        assert dunning is not None
        index = dunning.next_step
        step = self._input.dunning.steps[index]
        dunning.next_step = index + 1
        if step.action == DunningAction.RETRY:
            await self._retry(at, actor="dunning", failure_email=None, step=index)
        elif step.action == DunningAction.SUSPEND:
            await self._suspend(at)
        else:
            await self._cancel_unpaid(at)

    async def _suspend(self, at: datetime) -> None:
        dunning = self._state.dunning
        assert dunning is not None
        key = f"email:suspended:{dunning.invoice_id}"
        if self._patched(contracts.PATCH_RECORDS_WITH_EMAIL):
            change = self._set_status(SubscriptionStatus.SUSPENDED, at, reason="unpaid invoice")
            await self._email("suspended", key, at, dunning.invoice_id, status_change=change)
            return
        await self._change_status(SubscriptionStatus.SUSPENDED, at, reason="unpaid invoice")
        await self._email("suspended", key, at, dunning.invoice_id)

    async def _cancel_unpaid(self, at: datetime) -> None:
        """The last step of the ladder: the invoice is written off, the subscription ends."""
        dunning = self._state.dunning
        assert dunning is not None
        key = f"email:canceled_unpaid:{dunning.invoice_id}"
        if self._patched(contracts.PATCH_RECORDS_WITH_EMAIL):
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
                "canceled_unpaid", key, at, dunning.invoice_id,
                invoice_change=written_off, status_change=change,
            )  # fmt: skip
            return
        await self._mark_invoice(InvoiceStatus.UNCOLLECTIBLE, at, "unpaid after dunning")
        await self._change_status(
            SubscriptionStatus.CANCELED, at, reason="unpaid invoice after dunning"
        )
        await self._email("canceled_unpaid", key, at, dunning.invoice_id)

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
        if self._patched(contracts.PATCH_RECORDS_WITH_EMAIL):
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
        if was_suspended:
            self._restart_cycle_if_over(at)

    def _restart_cycle_if_over(self, at: datetime) -> None:
        """After a suspension: if the paid period is over, start a fresh cycle now
        rather than bill the time the service was suspended."""
        st = self._state
        if st.period_end is not None and st.period_end <= at:
            st.anchor, st.anchor_index, st.period_end = at, st.period_index + 1, at


def _why(result: ChargeResult) -> str:
    return f"payment declined ({result.decline_code or 'unknown'})"
