"""The hand-worked fixture of issue 13: ten customers, January to April 2031 (Asia/Tokyo),
JPY and USD, run through the real workflow on the time-skipping server; every figure
read back through the analytics service and held to a value worked out by hand.

The lives (``fixture_life.live``), renewal day the 5th unless said:

JPY, on the 5th of January (7 customers):
- ``yearly``: 36,000 a year (MRR 36,000 / 12 = 3,000), billed once, in January.
- ``upgrader``: 3,000 with a ``forever`` 10 % coupon (MRR 2,700); upgraded now to 5,000
  on Feb 19, the middle of its Feb 5 - Mar 5 period (MRR 4,500).
- ``downgrader``: 5,000 with a ``once`` 1,000 off coupon (MRR stays 5,000; January's
  invoice is 4,000); a downgrade to 3,000 asked on Feb 10 takes effect on Mar 5.
- ``pauser``: 3,000; paused Feb 15, resumed Mar 10 (the paused 23 days are added to the
  period: it renews on Mar 28, then Apr 28).
- ``leaver``: 3,000; a cancel at period end asked on Feb 10 takes effect on Mar 5.
- ``recovered``: 3,000 on a declining card: the first charge (Jan 5) and the retry of
  Jan 8 fail (past due keeps MRR); a new card on Jan 10 pays at retry 2.
- ``returner``: 3,000; canceled now on Feb 10; subscribes again on Apr 10 (reactivation).
JPY, on Feb 10: ``trial``: 3,000 after a 14-day trial (MRR 0 until Feb 24, then billed
the 24th).
USD:
- ``lost``: $10.00 from Jan 20; its card declines from February: the Feb 20 renewal fails
  (past due), retries Feb 23 and 27, suspended Mar 6 (day 14, MRR 0), retry Mar 13,
  canceled and written off Mar 22 (day 30).
- ``refunded``: $20.00 from Feb 5; on Feb 10 its first invoice takes a $5.00 refund and a
  $3.00 credit note (to the balance), which the Mar 5 invoice uses ($17.00 charged).

No tax, no usage: invoiced = the invoices' totals.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import analytics
from tests.analytics.fixture_life import Life, live, private_database

MONTHS = ("2031-01", "2031-02", "2031-03", "2031-04")
REPORTS = ("mrr", "customers", "revenue", "receivables", "dunning")


@pytest.fixture(scope="module")
def pg_sessions() -> Iterator[sessionmaker[Session]]:
    """The fixture's own database (see ``fixture_life``): no other test's MRR in it."""
    with private_database() as sessions:
        yield sessions


def read(
    sessions: sessionmaker[Session], report: str, currency: str, now: object, **span: str
) -> analytics.Report:
    query = analytics.ReportQuery(
        time_zone="Asia/Tokyo", from_=span.get("from_", "2031-01-01"),
        to=span.get("to", "2031-05-01"), interval="month", currency=currency,
        now=now,  # type: ignore[arg-type]
    )  # fmt: skip
    found: analytics.Report = getattr(analytics, report)(sessions, query)
    return found


def rows(report: analytics.Report) -> tuple[object, ...]:
    (block,) = report.blocks
    return block.rows


def check_mrr(jpy: analytics.Report, usd: analytics.Report) -> None:
    """(start, new, expansion, contraction, churn, reactivation, end) per month."""

    def movements(report: analytics.Report) -> list[tuple[int, ...]]:
        return [
            (m.start, m.new, m.expansion, m.contraction, m.churn, m.reactivation, m.end)
            for m in (row.movements for row in rows(report))  # type: ignore[attr-defined]
        ]

    assert movements(jpy) == [
        # Jan: new 3,000 (yearly 36,000 / 12) + 2,700 (upgrader, 3,000 - 10 % forever)
        # + 5,000 (downgrader: the once coupon is not MRR) + 3,000 x 4 (pauser, leaver,
        # recovered: past due counts, returner) = 22,700
        (0, 22700, 0, 0, 0, 0, 22700),
        # Feb: new 3,000 (trial converted Feb 24); expansion 4,500 - 2,700 = 1,800
        # (upgrader); churn 3,000 (returner, canceled now) + 3,000 (pauser, paused);
        # the downgrade and the cancel at period end wait: 22,700 + 3,000 + 1,800 - 6,000
        (22700, 3000, 1800, 0, 6000, 0, 21500),
        # Mar: contraction 5,000 - 3,000 = 2,000 (downgrader, Mar 5); churn 3,000 (leaver,
        # Mar 5); reactivation 3,000 (pauser, resumed): 21,500 - 2,000 - 3,000 + 3,000
        (21500, 0, 0, 2000, 3000, 3000, 19500),
        # Apr: reactivation 3,000 (returner: a new subscription, MRR before): 19,500 + 3,000
        (19500, 0, 0, 0, 0, 3000, 22500),
    ]
    assert movements(usd) == [
        (0, 1000, 0, 0, 0, 0, 1000),  # Jan: lost, $10.00
        # Feb: new 2,000 (refunded); lost is past due from Feb 20: still counted
        (1000, 2000, 0, 0, 0, 0, 3000),
        (3000, 0, 0, 0, 1000, 0, 2000),  # Mar: lost suspended Mar 6: churn 1,000
        (2000, 0, 0, 0, 0, 0, 2000),
    ]
    arr = [row.movements.arr for row in rows(jpy)]  # type: ignore[attr-defined]
    assert arr == [22700 * 12, 21500 * 12, 19500 * 12, 22500 * 12]
    assert {row.usage_revenue for row in (*rows(jpy), *rows(usd))} == {0}  # type: ignore[attr-defined]


def check_customers(jpy: analytics.Report, usd: analytics.Report) -> None:
    """(subscriptions, customers at start, at end, ARPA, customer churn rate, gross and
    net MRR churn rate, quick ratio, LTV) per month; rates to four decimals."""

    def figures(report: analytics.Report) -> list[tuple[object, ...]]:
        return [
            (f.subscriptions, f.customers_start, f.customers, f.arpa, f.customer_churn_rate,
             f.gross_mrr_churn_rate, f.net_mrr_churn_rate, f.quick_ratio, f.ltv)
            for f in rows(report)  # type: ignore[attr-defined]
        ]  # fmt: skip

    d = Decimal
    assert figures(jpy) == [
        # Jan: 7 customers; ARPA 22,700 / 7 = 3,242.86 -> 3,243; no one at the start
        (7, 0, 7, 3243, None, None, None, None, None),
        # Feb: 6 subscriptions active or past due at the end (pauser paused, returner
        # canceled; leaver runs to Mar 5); 7 - 2 churned + 1 new = 6 customers;
        # ARPA 21,500 / 6 = 3,583.33 -> 3,583; churn 2 / 7 = 0.2857; gross 6,000 / 22,700
        # = 0.2643; net (6,000 - 1,800) / 22,700 = 0.1850; quick (3,000 + 1,800) / 6,000
        # = 0.8; LTV (21,500 / 6) / (2 / 7) = 12,541.67 -> 12,542
        (6, 7, 6, 3583, d("0.2857"), d("0.2643"), d("0.1850"), d("0.8000"), 12542),
        # Mar: 6 - 1 (leaver) + 1 (pauser) = 6; ARPA 19,500 / 6 = 3,250; churn 1 / 6 =
        # 0.1667; gross (3,000 + 2,000) / 21,500 = 0.2326; net (5,000 - 3,000) / 21,500 =
        # 0.0930; quick 3,000 / 5,000 = 0.6; LTV 3,250 / (1 / 6) = 19,500
        (6, 6, 6, 3250, d("0.1667"), d("0.2326"), d("0.0930"), d("0.6000"), 19500),
        # Apr: + returner = 7; ARPA 22,500 / 7 = 3,214.29 -> 3,214; no churn: net
        # (0 - 3,000) / 19,500 = -0.1538; quick ratio and LTV undefined (divide by 0)
        (7, 6, 7, 3214, d("0.0000"), d("0.0000"), d("-0.1538"), None, None),
    ]
    assert figures(usd) == [
        (1, 0, 1, 1000, None, None, None, None, None),
        # Feb: ARPA 3,000 / 2 = 1,500; nobody churned of the 1 at the start
        (2, 1, 2, 1500, d("0"), d("0"), d("0"), None, None),
        # Mar: churn 1 / 2 = 0.5; gross = net = 1,000 / 3,000 = 0.3333; quick 0 / 1,000;
        # LTV 2,000 / 0.5 = 4,000
        (1, 2, 1, 2000, d("0.5"), d("0.3333"), d("0.3333"), d("0"), 4000),
        (1, 1, 1, 2000, d("0"), d("0"), d("0"), None, None),
    ]


def check_revenue(jpy: analytics.Report, usd: analytics.Report) -> None:
    """(invoiced, collected, refunded, credited, written off, failed payments, their
    amount) per month."""

    def money(report: analytics.Report) -> list[tuple[int, ...]]:
        return [
            (r.invoiced, r.collected, r.refunded, r.credited, r.written_off,
             r.failed_payments, r.failed_amount)
            for r in rows(report)  # type: ignore[attr-defined]
        ]  # fmt: skip

    assert money(jpy) == [
        # Jan: 36,000 + 2,700 + 4,000 (5,000 - the once 1,000) + 3,000 x 4 = 54,700, all
        # paid (recovered on Jan 10); its two declines (Jan 5, Jan 8) 3,000 each
        (54700, 54700, 0, 0, 0, 2, 6000),
        # Feb: renewals on the 5th 2,700 + 5,000 (the once coupon is spent) + 3,000 x 4
        # (pauser, leaver, recovered, returner) = 19,700; the upgrade's proration on
        # Feb 19: half of 5,000 charged - half of 3,000 credited = 1,000 (coupons
        # discount period invoices); trial's first 3,000 on Feb 24: 23,700
        (23700, 23700, 0, 0, 0, 0, 0),
        # Mar: 4,500 (upgrader, 5,000 - 10 %) + 3,000 (downgrader) + 3,000 (recovered) on
        # the 5th, trial 3,000 (24th), pauser 3,000 (28th): 16,500; leaver billed no more
        (16500, 16500, 0, 0, 0, 0, 0),
        # Apr: the same five 16,500 + returner 3,000 (Apr 10) = 19,500
        (19500, 19500, 0, 0, 0, 0, 0),
    ]
    assert money(usd) == [
        (1000, 1000, 0, 0, 0, 0, 0),  # Jan: lost's first $10.00
        # Feb: refunded 2,000 (5th) + lost 1,000 (20th, declined: not collected);
        # refund 500; credited 300 (the credit note to the balance; the refund's own
        # credit note is in refunded only); lost's declines Feb 20, 23, 27
        (3000, 2000, 500, 300, 0, 3, 3000),
        # Mar: refunded's 2,000 with the 300 balance: 1,700 taken; lost's retry Mar 13
        # declined; its 1,000 written off Mar 22
        (2000, 1700, 0, 0, 1000, 1, 1000),
        (2000, 2000, 0, 0, 0, 0, 0),
    ]


def check_receivables(jpy: analytics.Report, usd: analytics.Report) -> None:
    """Open balance by band at each month end (current, 1-30, 31-60, 61-90, 90+, count)."""

    def bands(report: analytics.Report) -> list[tuple[int, ...]]:
        return [
            (a.current, a.days_1_30, a.days_31_60, a.days_61_90, a.days_over_90, a.invoices)
            for a in rows(report)  # type: ignore[attr-defined]
        ]

    nothing = (0, 0, 0, 0, 0, 0)
    assert bands(jpy) == [nothing] * 4  # every JPY invoice paid by its month's end
    assert bands(usd) == [
        nothing,
        # Mar 1 00:00: lost's Feb 20 invoice (1,000) is 9 days past due
        (0, 1000, 0, 0, 0, 1),
        # Mar 31: written off; refunded's Mar 5 invoice (2,000) was due 1,700 after the
        # 300 balance and 1,700 was paid: nothing open (not 300 for ever)
        nothing,
        nothing,
    ]
    assert [a.open_balance for a in rows(usd)] == [0, 1000, 0, 0]  # type: ignore[attr-defined]


def check_dunning(jpy: analytics.Report, usd: analytics.Report) -> None:
    """(first attempts, failed, failure rate, recovered, lost, recovered and lost amount,
    recovery rate) per month; an episode counts in the month it ends."""

    def ladder(report: analytics.Report) -> list[tuple[object, ...]]:
        return [
            (b.first_attempts, b.first_attempt_failures, b.first_attempt_failure_rate,
             b.recovered, b.lost, b.recovered_amount, b.lost_amount, b.recovery_rate)
            for b in rows(report)  # type: ignore[attr-defined]
        ]  # fmt: skip

    d = Decimal
    assert ladder(jpy) == [
        # Jan: 7 first invoices, recovered's declined: 1 / 7 = 0.1429; recovered at retry 2
        (7, 1, d("0.1429"), 1, 0, 3000, 0, d("1")),
        # Feb: 6 renewals + the proration + trial's first = 8 first attempts
        (8, 0, d("0"), 0, 0, 0, 0, None),
        (5, 0, d("0"), 0, 0, 0, 0, None),  # Mar: upgrader, downgrader, recovered, trial, pauser
        (6, 0, d("0"), 0, 0, 0, 0, None),  # Apr: those five + returner
    ]
    assert ladder(usd) == [
        (1, 0, d("0"), 0, 0, 0, 0, None),
        (2, 1, d("0.5"), 0, 0, 0, 0, None),  # Feb: refunded's first, lost's renewal declined
        (1, 0, d("0"), 0, 1, 0, 1000, d("0")),  # Mar: lost's episode ends written off
        (1, 0, d("0"), 0, 0, 0, 0, None),
    ]
    january = rows(jpy)[0]
    assert january.recovered_by_step == {"retry_2": 3000}  # type: ignore[attr-defined]
    assert january.recovered_by_decline_code == {"card_declined": 3000}  # type: ignore[attr-defined]
    # Jan 5 00:00 to Jan 10 00:00: 5 days, give or take the milliseconds the server's
    # clock runs on while the decline and the new card's charge are being made.
    took = january.time_to_recover_median  # type: ignore[attr-defined]
    assert abs(took - timedelta(days=5)) < timedelta(seconds=1)
    assert january.time_to_recover_mean == took  # type: ignore[attr-defined]


async def test_the_hand_worked_fixture(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    life = Life(time_env, pg_sessions, stripe_gateway, task_queue)
    february: dict[tuple[str, str], analytics.Report] = {}

    async def in_march() -> None:
        """February, asked on Mar 1 (before March's changes)."""
        now = await time_env.get_current_time()
        for report in REPORTS:
            for code in ("JPY", "USD"):
                february[report, code] = read(
                    pg_sessions, report, code, now, from_="2031-02-01", to="2031-03-01"
                )

    await live(life, in_march)
    now = await time_env.get_current_time()
    seen = {(r, c): read(pg_sessions, r, c, now) for r in REPORTS for c in ("JPY", "USD")}
    for key, report in seen.items():
        assert [bucket.label for bucket in report.range.buckets] == list(MONTHS), key
    check_mrr(seen["mrr", "JPY"], seen["mrr", "USD"])
    check_customers(seen["customers", "JPY"], seen["customers", "USD"])
    check_revenue(seen["revenue", "JPY"], seen["revenue", "USD"])
    check_receivables(seen["receivables", "JPY"], seen["receivables", "USD"])
    check_dunning(seen["dunning", "JPY"], seen["dunning", "USD"])

    # A past month asked again after two more months of activity: the same figures.
    for key, before in february.items():
        again = read(pg_sessions, *key, now, from_="2031-02-01", to="2031-03-01")
        assert again.blocks == before.blocks, key
        assert rows(before)[0] == rows(seen[key])[1], key
