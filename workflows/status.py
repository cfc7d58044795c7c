"""What a subscription's workflow shows: the ``status`` query, the next action and when
it happens, the current details in the Temporal UI, and the search attributes.

Nothing here runs an activity or changes the state: a query is not recorded in the
history, and the search attributes are upserted by the parts that change what they show.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, SearchAttributeUpdate

from billing import calendar
from billing.dunning import DunningAction
from kakin import contracts
from models.payloads import OutstandingInvoice, StatusView, SubscriptionStatus
from workflows.state import SubscriptionBase

_DUNNING_ACTIONS = {
    DunningAction.RETRY: "retry_payment",
    DunningAction.SUSPEND: "suspend",
    DunningAction.CANCEL: "cancel",
}


class StatusReport(SubscriptionBase):
    """The status query, the next action, the UI details and the search attributes."""

    @workflow.query(name=contracts.QUERY_STATUS)
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

    def _show_details(self, action: str, at: datetime | None) -> None:
        st = self._state
        period = (
            f"{st.period_start:%Y-%m-%d} → {st.period_end:%Y-%m-%d}"
            if st.period_start and st.period_end
            else "not started"
        )
        lines = [
            f"**{st.status}** · period {period}",
            f"next: {summary(action, at)}",
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

    # -- search attributes (kakin.contracts: public, and not encrypted) -------------------

    def _search_attribute_pairs(self) -> list[SearchAttributePair]:
        pairs: list[SearchAttributePair] = [
            SearchAttributePair(contracts.SUBSCRIPTION_STATUS, str(self._state.status)),
            SearchAttributePair(contracts.CUSTOMER_ID, self._input.customer_id),
            SearchAttributePair(contracts.PLAN_ID, self._plan()),
        ]
        renewal = self._next_renewal()
        if renewal is not None:
            pairs.append(SearchAttributePair(contracts.NEXT_RENEWAL_AT, renewal))
        return pairs

    def _search_attribute_updates(self) -> list[SearchAttributeUpdate[Any]]:
        """Every search attribute as the state shows it, for an upsert (which follows)."""
        renewal = self._next_renewal()
        self._renewal_shown = renewal
        return [
            contracts.SUBSCRIPTION_STATUS.value_set(str(self._state.status)),
            contracts.CUSTOMER_ID.value_set(self._input.customer_id),
            contracts.PLAN_ID.value_set(self._plan()),
            contracts.NEXT_RENEWAL_AT.value_set(renewal)
            if renewal
            else contracts.NEXT_RENEWAL_AT.value_unset(),
        ]

    def _next_renewal(self) -> datetime | None:
        action, at = self._next_action()
        return at if action in ("renew", "start_billing") else None


def summary(action: str, at: datetime | None) -> str:
    """The next action in a line, for the details and the timer's summary."""
    return f"{action} at {at:%Y-%m-%d %H:%M} UTC" if at else f"waiting to {action}"
