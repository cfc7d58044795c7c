"""What every part of ``SubscriptionWorkflow`` shares: the carried state, the messages
waiting for the main loop, the activity timeouts and retry policies, and the patches.

The workflow is one class composed of parts, each building on the one before:
``SubscriptionBase`` (here) < ``StatusReport`` (status.py: the query, the details and
the search attributes) < ``Steps`` (steps.py: one activity each, by contract name) <
``Dunning`` (dunning.py: charging an invoice and the dunning ladder) < ``Renewals``
(renewals.py: billing a period, ending the subscription) < ``SupportMessages``
(support.py: the signals and updates) < ``SubscriptionCore`` (subscription_core.py:
the main loop). Like the core, every part is passed through the sandbox: no module
state, no I/O, time from ``self._now()`` only (see subscription_core.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from billing import calendar
from kakin import contracts
from models.payloads import (
    CancelRequest,
    PaymentMethodUpdated,
    PaymentReceived,
    SubscriptionInput,
    SubscriptionState,
    SubscriptionStatus,
    TestClock,
)

# workflow.patched ids (kakin.contracts.PATCH_*): each guards a change that running
# subscriptions' histories do not have (README, "Changing workflow code").
# - PATCH_FINAL_USAGE_INVOICE: the last period's metered usage billed at cancellation.
# - PATCH_COMPACT_CYCLE: a renewal in five Temporal actions: issue (create + finalize),
#   charge, render + email, the timer and the continue-as-new.
# - PATCH_RECORDS_WITH_EMAIL: status changes (and the invoice written off at
#   cancellation) recorded by the email activity that announces them, not by an
#   activity of their own: a fully dunned cycle costs four Temporal actions less.
# - PATCH_LOCAL_CALENDAR: periods on the customer's local calendar
#   (SubscriptionInput.time_zone), not UTC's. Asked once, when a subscription's first
#   run starts with a zone other than UTC (the UTC calendar is the old one); the answer
#   is kept as SubscriptionState.time_zone, so running subscriptions keep their UTC
#   calendar for good and later runs never ask.
# - PATCH_RUN_OF_RENEWALS: a run holds up to RENEWALS_PER_RUN renewals instead of one
#   (continue-as-new when that many are done or the server suggests it), with
#   NextRenewalAt upserted after each renewal that moves it; and the renewal's invoice
#   issued and charged in one activity (issue_and_charge_invoice). A steady renewal:
#   four actions (timer, two activities, the upsert; every twelfth a continue-as-new
#   instead of the upsert), about 2.4 KB of history (bench cost).

# Renewals per run under PATCH_RUN_OF_RENEWALS (a year of a monthly subscription).
# Continue-as-new writes the input and the search attributes twice (about 2.1 KB) and
# makes the server close one run and start another; spread over twelve renewals that
# is about 180 bytes and a twelfth of an action each, while the history a worker
# replays after evicting a subscription from its cache stays at most a year long
# (about 30 KB). Changing it changes where recorded runs end: it needs a patch.
RENEWALS_PER_RUN = 12

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
    non_retryable_error_types=[contracts.ERROR_INVOICE_NOT_OPEN, contracts.ERROR_LIVE_MODE_REFUSED],
)

# The statuses a subscription bills in (and can be paused or change plan in).
RUNNING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)


class SubscriptionBase:
    """The state of one run: what continue-as-new carries, and the messages waiting."""

    def __init__(self, input: SubscriptionInput) -> None:
        self._input = input
        if input.state is not None:
            self._state = input.state
        else:
            local = input.time_zone not in ("", "UTC") and workflow.patched(
                contracts.PATCH_LOCAL_CALENDAR
            )
            self._state = initial_state(input, workflow.now(), input.time_zone if local else "")
        self._cancel: CancelRequest | None = None
        self._payment_methods: list[PaymentMethodUpdated] = []
        self._payments: list[PaymentReceived] = []
        # Updates queue their request here under the update's name; the main loop
        # applies it between steps (so activities never interleave) and removes it,
        # which answers the update.
        self._changes: dict[str, Any] = {}
        self._refused: str | None = None
        self._woken = False
        self._renewed = False
        # Renewals billed in this run (not carried: each run counts from zero).
        self._run_renewals = 0
        # The NextRenewalAt this run last wrote (at start, at continue-as-new, by an
        # upsert): a renewal upserts it only when it moved (see SubscriptionCore.main).
        self._renewal_shown: datetime | None = None

    def _plan(self) -> str:
        return self._state.price_id or self._input.price_id

    def _pending(self) -> bool:
        return bool(self._cancel or self._payment_methods or self._payments or self._changes)

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

    def _now(self) -> datetime:
        """Billing time: the workflow clock, sped up under a test clock."""
        real = workflow.now()
        clock = self._state.clock
        if clock is None or clock.real_origin is None or clock.virtual_origin is None:
            return real
        return clock.virtual_origin + (real - clock.real_origin) * clock.speed


def initial_state(input: SubscriptionInput, now: datetime, time_zone: str) -> SubscriptionState:
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


def invalid(message: str) -> ApplicationError:
    """A refused support request: the caller sees exactly this sentence."""
    return ApplicationError(message, type=contracts.ERROR_INVALID_REQUEST, non_retryable=True)
