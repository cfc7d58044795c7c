"""Two rules the fixture found wrong: receivables age what an invoice left to pay, and
a refund's credit note is not credited on top of the refund."""

from __future__ import annotations

from billing.analytics.buckets import bucket_range
from billing.analytics.ledger import EntryKind as K
from billing.analytics.receivables import aging
from billing.analytics.revenue import revenue
from tests.billing.analytics.ledger_builder import Ledger, utc


def test_an_invoice_partly_paid_by_the_balance_is_not_left_open() -> None:
    led = Ledger()
    # 2,000 invoiced, 300 of it from the customer's balance: 1,700 charged and paid.
    led.add(K.INVOICE_FINALIZED, utc(3, 5), invoice_id="in_1", amount=2000,
            details={"amount_due": "1700", "credit_applied": "300"})  # fmt: skip
    led.add(K.INVOICE_PAID, utc(3, 5), invoice_id="in_1", amount=1700, attempt=1)
    # A debit carried from an earlier invoice: 1,000 invoiced, 1,040 due; 1,000 paid.
    led.add(K.INVOICE_FINALIZED, utc(3, 6), invoice_id="in_2", amount=1000,
            details={"amount_due": "1040", "credit_applied": "-40"})  # fmt: skip
    led.add(K.INVOICE_PAID, utc(3, 6), invoice_id="in_2", amount=1000, attempt=1)
    (as_of_april,) = aging(led.entries, as_of=utc(4, 1), currency="JPY")
    assert (as_of_april.open_balance, as_of_april.days_1_30, as_of_april.invoices) == (40, 40, 1)


def test_a_refund_counts_once_in_refunded_and_credit_notes_in_credited() -> None:
    led = Ledger()
    led.add(K.CREDIT_NOTE_ISSUED, utc(2, 10), invoice_id="in_1", amount=500,
            details={"method": "refund"})  # fmt: skip
    led.add(K.REFUND_CREATED, utc(2, 10), invoice_id="in_1", amount=500)
    led.add(K.CREDIT_NOTE_ISSUED, utc(2, 10), invoice_id="in_1", amount=300,
            details={"method": "credit"})  # fmt: skip
    (feb,) = revenue(led.entries, buckets=bucket_range(from_=utc(2), to=utc(3), interval="month"))
    assert (feb.refunded, feb.credited, feb.net_collected) == (500, 300, -500)
