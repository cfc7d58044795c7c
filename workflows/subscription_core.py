"""What ``SubscriptionWorkflow`` does: one durable workflow per subscription.

It sleeps until the next renewal, then creates, finalizes, charges and renders the
period's invoice and emails the customer. A declined charge starts the dunning ladder
(``billing.dunning``). It continues as new after every renewal, carrying its state;
since PATCH_RUN_OF_RENEWALS after every twelfth (``RENEWALS_PER_RUN``), or sooner if
the server suggests it, upserting NextRenewalAt after each renewal in between.

Renewals during dunning: a renewal that falls due while the subscription is
``past_due`` or ``suspended`` is held, not billed. If the customer pays, a past-due
subscription bills the held periods at once on their usual dates (they had the
service); a suspended one whose paid period is over starts a fresh cycle at the
moment of recovery (the suspended time is not billed). If dunning ends in
cancellation, nothing more is billed.

This module is passed through the workflow sandbox (``workflows/subscription.py``
imports it with ``imports_passed_through``), and so are the parts it is made of
(``workflows/state.py`` lists them): the sandbox takes the module the worker imported,
whose own imports brought the parts, and runs none of their code. The sandbox
re-imports the module that defines a workflow class for every workflow it loads, and
with this code in that module every cached subscription cost about 120 KiB more than
a bare workflow (``bench memory``). Passed through, the sandbox no longer checks them
for non-deterministic calls, so keep to the rules by hand: time from ``self._now()`` /
``workflow.now()``, waits through ``workflow`` timers, no I/O, no randomness, and no
module-level state (one copy is shared by every workflow in the worker). The replay
tests (tests/subscriptions/test_replay.py) check recorded histories against it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import TypedSearchAttributes

from kakin import contracts
from models.payloads import SubscriptionInput, SubscriptionStatus
from workflows.state import RENEWALS_PER_RUN
from workflows.status import summary as _summary
from workflows.support import SupportMessages


class SubscriptionCore(SupportMessages):
    """The main loop; ``SubscriptionWorkflow`` adds init and run.

    The parts it is made of, each building on the one before, are listed in
    ``workflows/state.py``.
    """

    async def main(self, input: SubscriptionInput) -> str:
        if input.state is None:
            workflow.upsert_search_attributes(self._search_attribute_updates())
        else:  # as the continue-as-new that started this run set them
            self._renewal_shown = self._next_renewal()
        while True:
            await self._handle_messages()
            if self._state.status == SubscriptionStatus.CANCELED:
                return str(self._state.status)
            if self._renewed and self._stays_in_run():
                self._renewed = False
                self._show_next_renewal()
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

    def _stays_in_run(self) -> bool:
        """After a renewal: bill the next one in this run (PATCH_RUN_OF_RENEWALS), or
        continue as new (every renewal before it; now every RENEWALS_PER_RUN-th, or
        when the server suggests it because the history has grown long)."""
        if contracts.PATCH_RUN_OF_RENEWALS not in self._state.patches:
            return False  # asked (and remembered) by the renewal that just ran
        if self._run_renewals >= RENEWALS_PER_RUN:
            return False
        return not workflow.info().is_continue_as_new_suggested()

    def _show_next_renewal(self) -> None:
        """NextRenewalAt, upserted when the renewal moved it (an action each time: at
        continue-as-new it was free). A declined renewal's status change has already
        unset it with the other search attributes."""
        renewal = self._next_renewal()
        if renewal == self._renewal_shown:
            return
        self._renewal_shown = renewal
        workflow.upsert_search_attributes(
            [
                contracts.NEXT_RENEWAL_AT.value_set(renewal)
                if renewal
                else contracts.NEXT_RENEWAL_AT.value_unset()
            ]
        )

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
