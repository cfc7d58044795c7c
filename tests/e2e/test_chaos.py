"""The fault-injection run at CI size: every invariant at zero violations.

200 subscriptions renew three times each on a test clock while the worker is
SIGKILLed and restarted, Stripe (localstripe behind tests/support/fault_proxy.py)
times out, answers 500 and 429 and drops connections -- also after it accepted a
charge -- PostgreSQL (a private cluster) is stopped for seconds and SendGrid (the
loopback) answers 503 for a while. Stripe's webhooks (the emulator's own sender) reach
the API through a relay that delays, duplicates (also at once) and reorders them,
while some customers' cards change at Stripe or through kakin. ``python -m tests.chaos``
runs the same thing from the command line, at this size or larger (README, "Fault
injection").
"""

from __future__ import annotations

import os

import pytest

from tests.chaos.__main__ import format_result
from tests.chaos.run import ChaosConfig, run_chaos

SUBSCRIPTIONS = int(os.environ.get("KAKIN_CHAOS_SUBSCRIPTIONS", "200"))
RENEWALS = int(os.environ.get("KAKIN_CHAOS_RENEWALS", "3"))

pytestmark = pytest.mark.devserver  # it runs its own dev server, PostgreSQL and worker


async def test_nothing_lost_nobody_charged_twice_under_faults() -> None:
    result = await run_chaos(ChaosConfig(subscriptions=SUBSCRIPTIONS, renewals=RENEWALS))
    print(format_result(result))  # the figures, shown with -s or when the test fails

    faults = result.faults
    assert faults.worker_kills >= 3, "the worker was hardly killed"
    assert sum(faults.stripe_faults.values()) >= 10, "Stripe hardly failed"
    assert (
        faults.stripe_faults.get("drop_after_forward", 0)
        + faults.stripe_faults.get("500_after_forward", 0)
        > 0
    ), "no fault after Stripe accepted a request"
    assert faults.db_outages == 1 and faults.email_failures > 0
    # The emulator's own webhooks, with copies at once, later copies and reordering.
    assert faults.webhook_deliveries > faults.webhook_events > SUBSCRIPTIONS
    assert faults.card_changes > 0
    assert result.report.figures["paid_period_invoices"] >= SUBSCRIPTIONS * 0.9 * (RENEWALS + 1)
    broken = {item.name: item.examples for item in result.report.invariants if item.violations}
    assert not broken, format_result(result)
