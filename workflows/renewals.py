"""A subscription's lifecycle steps: start billing, renew (bill the next period) and end
(cancel now or at the period end, billing the last period's metered usage).
"""

from __future__ import annotations

from datetime import datetime

from billing import calendar
from kakin import contracts
from models.payloads import (
    ChargeOutcome,
    CreateInvoiceRequest,
    FinalInvoiceRequest,
    InvoiceRef,
    InvoiceStatus,
    IssueAndChargeRequest,
    SubscriptionStatus,
)
from workflows.dunning import Dunning
from workflows.steps import MAYBE_INVOICE


class Renewals(Dunning):
    """What the main loop performs when the time of the next action comes."""

    async def _perform(self, action: str, at: datetime | None) -> None:
        assert at is not None  # actions without a time only wait for a message
        if action in ("renew", "start_billing"):
            await self._bill_next_period(max(at, self._now()))
        elif action == "end":
            await self._end(at, self._cancel_actor(), self._state.cancel_reason)
        else:
            await self._dunning_step(at)

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
        if self._patched(contracts.PATCH_RUN_OF_RENEWALS):
            issued = await self._issue_and_charge(
                IssueAndChargeRequest(
                    subscription_id=self._input.subscription_id,
                    period_index=index,
                    period_start=period.start,
                    period_end=period.end,
                    issued_at=now,
                    test_clock=st.clock is not None,
                )
            )
            self._billed(index, period.start, period.end)
            await self._collect(issued.invoice, now, charged=issued.charge)
            return
        invoice = await self._issue(
            CreateInvoiceRequest(
                subscription_id=self._input.subscription_id,
                period_index=index,
                period_start=period.start,
                period_end=period.end,
                issued_at=now,
            )
        )
        self._billed(index, period.start, period.end)
        await self._collect(invoice, now)

    def _billed(self, index: int, start: datetime, end: datetime) -> None:
        """Period ``index`` is the current one now: its invoice is issued."""
        st = self._state
        st.period_index, st.period_start, st.period_end = index, start, end
        st.renewals += 1
        self._run_renewals += 1
        self._renewed = True

    async def _issue(self, request: CreateInvoiceRequest) -> InvoiceRef:
        """The period's invoice, created and finalized (numbered)."""
        if self._patched(contracts.PATCH_COMPACT_CYCLE):
            # No summary on the hot path: the activity's name says it, and each summary
            # is an encrypted payload in the history (about 150 bytes).
            issued: InvoiceRef = await self._quick(
                contracts.ACTIVITY_ISSUE_INVOICE, request, summary=None, result_type=InvoiceRef
            )
            return issued
        start, end = request.period_start, request.period_end
        draft: InvoiceRef = await self._quick(
            contracts.ACTIVITY_CREATE_INVOICE,
            request,
            summary=f"invoice period {request.period_index}: {start:%Y-%m-%d} to {end:%Y-%m-%d}",
            result_type=InvoiceRef,
        )
        return await self._finalize(
            draft.invoice_id, request.issued_at, f"finalize {draft.invoice_id}"
        )

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
        if (
            st.dunning is None
            and st.period_index >= 0
            and self._patched(contracts.PATCH_FINAL_USAGE_INVOICE)
        ):
            await self._bill_final_usage(at)
        if email:
            await self._email("canceled", f"email:canceled:{self._input.subscription_id}", at)

    async def _bill_final_usage(self, at: datetime) -> None:
        """One invoice for the last period's usage, charged once (no dunning after the end)."""
        st = self._state
        draft: InvoiceRef | None = await self._quick(
            contracts.ACTIVITY_CREATE_FINAL_INVOICE,
            FinalInvoiceRequest(
                subscription_id=self._input.subscription_id,
                period_index=st.period_index + 1,
                ended_at=at,
            ),
            summary="final invoice: usage of the last period",
            result_type=MAYBE_INVOICE,
        )
        if draft is None:
            return
        invoice = await self._finalize(draft.invoice_id, at, f"finalize {draft.invoice_id}")
        result = await self._charge(invoice.invoice_id, invoice.number, 1, at)
        await self._render(invoice.invoice_id, invoice.number)
        if result.outcome == ChargeOutcome.SUCCEEDED:
            await self._email(
                "receipt", f"email:receipt:{invoice.invoice_id}", at, invoice.invoice_id
            )

    def _cancel_actor(self) -> str:
        return self._state.cancel_requested_by or "unknown"
