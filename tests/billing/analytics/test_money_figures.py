"""Revenue, receivables aging and dunning, hand-checked on one small ledger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing.analytics.booking import book
from billing.analytics.buckets import bucket_range
from billing.analytics.dunning import dunning, observed_recovery_rate
from billing.analytics.ledger import EntryKind as K
from billing.analytics.receivables import aging, band_of, open_invoices
from billing.analytics.revenue import revenue
from tests.billing.analytics.ledger_builder import Ledger, utc

MONTHS = bucket_range(from_=utc(1), to=utc(4), interval="month")  # Jan..Mar 2027


def fixture() -> Ledger:
    led = Ledger()
    # in_1: 3,300 JPY (300 of it usage), paid at once.
    led.add(K.INVOICE_FINALIZED, utc(1, 5), invoice_id="in_1", amount=3300,
            details={"usage_amount": "300"})  # fmt: skip
    led.add(K.PAYMENT_SUCCEEDED, utc(1, 5), invoice_id="in_1", amount=3300, attempt=1)
    led.add(K.INVOICE_PAID, utc(1, 5), invoice_id="in_1", amount=3300, attempt=1)
    # in_2: 5,000 JPY, fails (insufficient_funds), recovered at retry 2 after 3 days.
    led.add(K.INVOICE_FINALIZED, utc(1, 30), invoice_id="in_2", amount=5000, due_at=utc(1, 30))
    led.add(K.PAYMENT_FAILED, utc(1, 30), invoice_id="in_2", amount=5000, attempt=1,
            decline_code="insufficient_funds")  # fmt: skip
    led.add(K.PAYMENT_FAILED, utc(2, 1), invoice_id="in_2", amount=5000, attempt=2,
            decline_code="insufficient_funds", dunning_step="retry_1")  # fmt: skip
    led.add(K.INVOICE_PAID, utc(2, 2), invoice_id="in_2", amount=5000, attempt=3,
            dunning_step="retry_2")  # fmt: skip
    # in_3: $20.00, fails (card_declined) and is written off in March.
    led.add(K.INVOICE_FINALIZED, utc(2, 10), invoice_id="in_3", amount=2000, currency="USD")
    led.add(K.PAYMENT_FAILED, utc(2, 10), invoice_id="in_3", amount=2000, attempt=1,
            currency="USD", decline_code="card_declined")  # fmt: skip
    led.add(K.INVOICE_WRITTEN_OFF, utc(3, 20), invoice_id="in_3", amount=2000, currency="USD")
    # in_4: 10,000 JPY due Feb 15, a 1,000 credit note; still open.
    led.add(K.INVOICE_FINALIZED, utc(2, 1), invoice_id="in_4", amount=10000, due_at=utc(2, 15))
    led.add(K.CREDIT_NOTE_ISSUED, utc(2, 20), invoice_id="in_4", amount=1000)
    # A refund of 500 on in_1, and a voided invoice.
    led.add(K.REFUND_CREATED, utc(2, 25), invoice_id="in_1", amount=500)
    led.add(K.INVOICE_FINALIZED, utc(3, 1), invoice_id="in_5", amount=800, due_at=utc(3, 31))
    led.add(K.INVOICE_VOIDED, utc(3, 2), invoice_id="in_5", amount=800)
    return led


def test_revenue_per_bucket_and_currency() -> None:
    rows = {(r.currency, r.bucket.label): r for r in revenue(fixture().entries, buckets=MONTHS)}
    jan, feb, mar = (rows["JPY", m] for m in ("2027-01", "2027-02", "2027-03"))
    assert (jan.invoiced, jan.usage, jan.collected, jan.failed_payments) == (8300, 300, 3300, 1)
    assert jan.failed_amount == 5000  # the failed renewal is not collected
    # Feb: in_4 finalized 10,000; in_2 paid 5,000; its 2nd failure; credit 1,000; refund 500
    assert (feb.invoiced, feb.collected, feb.credited, feb.refunded) == (10000, 5000, 1000, 500)
    assert feb.net_collected == 4500
    assert (mar.invoiced, mar.voided) == (800, 800)
    assert rows["USD", "2027-03"].written_off == 2000
    assert len(rows) == 6  # two currencies x three months, zeros included


def test_aging_bands_are_half_open_and_sum_to_the_open_balance() -> None:
    led = fixture()
    # As of Mar 17 00:00: in_4 has 9,000 open, 30 days late exactly (due Feb 15): 1-30.
    (jpy,) = aging(led.entries, as_of=utc(3, 17), currency="JPY")
    assert (jpy.current, jpy.days_1_30, jpy.open_balance, jpy.invoices) == (0, 9000, 9000, 1)
    # One microsecond later it is 31-60.
    (later,) = aging(led.entries, as_of=utc(3, 17) + timedelta(microseconds=1), currency="JPY")
    assert later.days_31_60 == 9000
    usd = aging(led.entries, as_of=utc(3, 1))
    # in_3 ($20, due when finalized on Feb 10) is 19 days late; written off later.
    assert [(a.currency, a.days_1_30) for a in usd] == [("JPY", 9000), ("USD", 2000)]
    assert [i.invoice_id for i in open_invoices(led.entries, as_of=utc(3, 21))] == ["in_4"]
    # Feb 1 00:00: in_2 finalized Jan 30 and unpaid (due then: 1-30); in_4 booked at
    # Feb 1 00:00 is not yet in (state at t counts what is booked before t).
    (feb1,) = aging(led.entries, as_of=utc(2, 1))
    assert (feb1.days_1_30, feb1.open_balance) == (5000, 5000)


@pytest.mark.parametrize(
    ("days", "band"),
    [(-1, "current"), (0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (60, "31-60"),
     (61, "61-90"), (90, "61-90"), (91, "90+")],
)  # fmt: skip
def test_band_edges(days: int, band: str) -> None:
    assert band_of(timedelta(days=days)) == band


def test_dunning_figures() -> None:
    rows = {(r.currency, r.bucket.label): r for r in dunning(fixture().entries, buckets=MONTHS)}
    jan, feb = rows["JPY", "2027-01"], rows["JPY", "2027-02"]
    # Jan: two first attempts (in_1 succeeded, in_2 failed): 1 / 2.
    assert jan.first_attempt_failure_rate == Decimal("0.5000")
    assert jan.recovery_rate is None  # nothing ended in January
    # Feb: in_2 recovered at retry_2, 5,000, first declined for insufficient_funds,
    # 3 days after the first failure (Jan 30 -> Feb 2).
    assert (feb.recovered, feb.recovered_amount, feb.recovery_rate) == (1, 5000, Decimal(1))
    assert feb.recovered_by_step == {"retry_2": 5000}
    assert feb.recovered_by_decline_code == {"insufficient_funds": 5000}
    assert feb.time_to_recover_median == feb.time_to_recover_mean == timedelta(days=3)
    usd_feb, usd_mar = rows["USD", "2027-02"], rows["USD", "2027-03"]
    assert usd_feb.first_attempt_failure_rate == Decimal(1)
    assert (usd_mar.lost, usd_mar.lost_amount, usd_mar.recovery_rate) == (1, 2000, Decimal(0))
    usd = [r for r in rows.values() if r.currency == "USD"]
    assert observed_recovery_rate(usd) == Decimal("0.0000")


def test_booking_refuses_a_correction_that_moves_an_entry() -> None:
    led = fixture()
    led.add(K.CORRECTION, utc(1, 5), corrects=1, invoice_id="in_1", customer_id="cus_z")
    with pytest.raises(ValueError, match="customer_id"):
        book(led.entries)
    led.entries.pop()
    led.add(K.CORRECTION, utc(1, 5), corrects=99)
    with pytest.raises(ValueError, match="not an earlier entry"):
        book(led.entries)
