"""MRR movements, hand-checked: per customer, net per bucket, per currency; corrections."""

from __future__ import annotations

from decimal import Decimal

from billing.analytics.buckets import bucket_range
from billing.analytics.customers import customer_figures
from billing.analytics.ledger import EntryKind as K
from billing.analytics.movements import MrrBucket, mrr_movements
from tests.billing.analytics.ledger_builder import Ledger, utc

MONTHS = bucket_range(from_=utc(1), to=utc(5), interval="month")  # Jan..Apr 2027, UTC


def fixture() -> Ledger:
    led = Ledger()
    # cus_a (JPY): new 3,000 in Jan, +2,000 in Feb, cancels in Mar, back at 2,000 in Apr.
    led.mrr(K.SUBSCRIPTION_STARTED, utc(1, 5), "a1", 0, 3000)
    # cus_b (JPY): a trial in Jan (MRR 0), converts at 1,000 in Feb.
    led.mrr(K.SUBSCRIPTION_STARTED, utc(1, 20), "b1", 0, 0, "trialing", customer_id="cus_b")
    # cus_c (USD): $12.00 from Jan 1 00:00 (the bucket's first instant: January).
    led.mrr(K.SUBSCRIPTION_STARTED, utc(1, 1), "c1", 0, 1200, customer_id="cus_c", currency="USD")
    led.mrr(K.PAUSED, utc(2, 1), "c1", 1200, 0, "paused", customer_id="cus_c", currency="USD")
    led.mrr(K.TRIAL_CONVERTED, utc(2, 3), "b1", 0, 1000, customer_id="cus_b")
    led.mrr(K.PLAN_CHANGED, utc(2, 10), "a1", 3000, 5000)
    # cus_d (JPY): starts and cancels inside February: no movement in February.
    led.mrr(K.SUBSCRIPTION_STARTED, utc(2, 2), "d1", 0, 4000, customer_id="cus_d")
    led.mrr(K.CANCELED, utc(2, 20), "d1", 4000, 0, "canceled", customer_id="cus_d")
    led.mrr(K.RESUMED, utc(3, 1), "c1", 0, 1200, customer_id="cus_c", currency="USD")
    led.mrr(K.CANCELED, utc(3, 3), "a1", 5000, 0, "canceled")
    # cus_b in March: downgrade 1,000 -> 800 and a second subscription at 500: net +300.
    led.mrr(K.PLAN_CHANGED, utc(3, 15), "b1", 1000, 800, customer_id="cus_b")
    led.mrr(K.SUBSCRIPTION_STARTED, utc(3, 20), "b2", 0, 500, customer_id="cus_b")
    led.mrr(K.SUBSCRIPTION_STARTED, utc(4, 2), "a2", 0, 2000)
    led.mrr(K.SUBSCRIPTION_STARTED, utc(4, 9), "d2", 0, 4000, customer_id="cus_d")
    return led


def moves(row: MrrBucket) -> tuple[int, ...]:
    return (row.start, row.new, row.expansion, row.contraction, row.churn, row.reactivation,
            row.end)  # fmt: skip


def test_hand_worked_movements_per_currency() -> None:
    rows = mrr_movements(fixture().entries, buckets=MONTHS)
    assert [(r.currency, r.bucket.label) for r in rows[:1]] == [("JPY", "2027-01")]
    jpy = [moves(r) for r in rows if r.currency == "JPY"]
    usd = [moves(r) for r in rows if r.currency == "USD"]
    #            start  new   exp   contr churn react end
    assert jpy == [
        (0,     3000, 0,    0,    0,    0,    3000),  # a new; b trialing counts 0
        (3000,  1000, 2000, 0,    0,    0,    6000),  # b new 1,000; a +2,000; d nets 0
        (6000,  0,    300,  0,    5000, 0,    1300),  # a churns 5,000; b 1,000 -> 1,300
        (1300,  0,    0,    0,    0,    6000, 7300),  # a back (2,000), d back (4,000)
    ]  # fmt: skip
    assert usd == [
        (0,    1200, 0, 0, 0,    0,    1200),
        (1200, 0,    0, 0, 1200, 0,    0),  # paused: out of MRR
        (0,    0,    0, 0, 0,    1200, 1200),  # resumed: a reactivation
        (1200, 0,    0, 0, 0,    0,    1200),
    ]  # fmt: skip
    april = rows[3]
    assert april.arr == 7300 * 12
    assert (april.customers_start, april.customers_end, april.reactivated_customers) == (1, 3, 2)
    assert april.subscriptions_end == 4  # a2, b1, b2, d2


def test_customer_figures_of_march() -> None:
    rows = [r for r in mrr_movements(fixture().entries, buckets=MONTHS) if r.currency == "JPY"]
    feb, march = customer_figures(rows, interval="month")[1:3]
    assert feb.arpa == 3000  # 6,000 / 2 customers
    assert feb.customer_churn_rate == Decimal("0.0000")
    assert feb.quick_ratio is None and feb.ltv is None  # nothing lost: no ratio, no LTV
    assert march.customers_start == 2 and march.customers == 1
    assert march.customer_churn_rate == Decimal("0.5000")  # 1 of 2
    assert march.gross_mrr_churn_rate == Decimal("0.8333")  # 5,000 / 6,000
    assert march.net_mrr_churn_rate == Decimal("0.7833")  # (5,000 - 300) / 6,000
    assert march.quick_ratio == Decimal("0.0600")  # 300 / 5,000
    assert march.arpa == 1300
    assert march.ltv == 2600  # 1,300 / 0.5
    assert customer_figures(rows, interval="week")[2].ltv is None  # ARPA is monthly


def test_a_late_entry_is_booked_when_written_and_never_moves_a_closed_month() -> None:
    led = fixture()
    january = mrr_movements(led.entries, buckets=MONTHS)[0]
    # A start dated Jan 25 but written on Feb 5 (a late webhook, say).
    led.mrr(K.SUBSCRIPTION_STARTED, utc(1, 25), "e1", 0, 700, customer_id="cus_e",
            recorded_at=utc(2, 5))  # fmt: skip
    again = mrr_movements(led.entries, buckets=MONTHS)
    assert again[0] == january
    assert (again[1].new, again[1].end) == (1000 + 700, 6700)


def test_a_correction_restates_the_past_visibly_and_known_at_reproduces_before() -> None:
    led = fixture()
    before = mrr_movements(led.entries, buckets=MONTHS, currency="jpy")
    # a1 really started at 3,300, found out on May 2.
    correction = led.add(K.CORRECTION, utc(1, 5), recorded_at=utc(5, 2), corrects=1,
                         subscription_id="a1", mrr_after=3300, status_after="active")  # fmt: skip
    after = mrr_movements(led.entries, buckets=MONTHS, currency="JPY")
    assert (after[0].new, after[0].end, after[0].corrections) == (3300, 3300, (correction.id,))
    assert after[1].expansion == 1700 and after[1].corrections == ()  # 3,300 -> 5,000
    assert mrr_movements(led.entries, buckets=MONTHS, currency="JPY", known_at=utc(5)) == before
