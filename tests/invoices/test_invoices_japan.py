"""Invoices an accountant accepts: tax once per rate, credit notes, credit used first.

The real workflow on the time-skipping server bills real PostgreSQL rows and charges
localstripe; refunds are looked up at localstripe afterwards.
"""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pymupdf
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.pdf import html_to_pdf
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.platform.settings import Settings
from kakin.services import subscriptions
from kakin.services.credit_notes import CreditNoteRefusedError, issue_credit_note
from models.repositories import catalog as catalog_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import new_id
from models.tables import CreditNote, CreditTransaction, Price, SubscriptionItem, TaxRate
from tests.helpers import customer_and_price, observe
from tests.invoices.test_pdf import missing_glyphs


def add_tax_rates(sessions: sessionmaker[Session]) -> tuple[str, str]:
    with sessions() as session:
        standard = TaxRate(id=new_id("txr"), name="消費税", percentage="10", jurisdiction="JP")
        reduced = TaxRate(
            id=new_id("txr"), name="消費税", percentage="8", jurisdiction="JP", reduced=True
        )
        session.add_all([standard, reduced])
        session.commit()
        return standard.id, reduced.id


def add_items(
    sessions: sessionmaker[Session], subscription_id: str, items: list[tuple[str, int, str]]
) -> None:
    """Flat prices (description, amount, tax rate id) added to the subscription."""
    with sessions() as session:
        subscription = subscription_sql.subscription(session, subscription_id)
        for nickname, amount, rate_id in items:
            price = Price(
                id=new_id("price"),
                product_id=subscription.price.product_id,
                nickname=nickname,
                currency="JPY",
                unit_amount=amount,
                interval="month",
                tax_rate_ids=[rate_id],
            )
            session.add(price)
            subscription.items.append(SubscriptionItem(id=new_id("si"), price=price))
        session.commit()


async def start(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    task_queue: str,
    *,
    unit_amount: int,
    tax_rate_ids: list[str] | None = None,
) -> str:
    customer_id, price_id = customer_and_price(sessions, stripe, unit_amount=unit_amount)
    if tax_rate_ids:
        with sessions() as session:
            catalog_sql.price(session, price_id).tax_rate_ids = tax_rate_ids
            session.commit()
    return await subscriptions.start_subscription(
        env.client,
        sessions,
        task_queue=task_queue,
        customer_id=customer_id,
        price_id=price_id,
        start_at=(await env.get_current_time()) + timedelta(hours=1),
    )


async def test_tax_is_rounded_once_per_rate_and_both_rates_are_shown(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    outbox: Path,
) -> None:
    standard, reduced = add_tax_rates(pg_sessions)
    subscription_id = await start(
        time_env, pg_sessions, stripe_gateway, task_queue, unit_amount=105,
        tax_rate_ids=[standard],
    )  # fmt: skip
    # Three lines of 105 JPY at 10% (31.5 -> 31 once, not 10 x 3 = 30) and one at 8%.
    add_items(
        pg_sessions,
        subscription_id,
        [("サポート", 105, standard), ("保守", 105, standard), ("お弁当", 540, reduced)],
    )
    await time_env.sleep(timedelta(hours=2))

    invoice = observe(pg_sessions, subscription_id).invoices[0]
    assert [(t["percentage"], t["taxable"], t["tax"]) for t in invoice.tax_breakdown] == [
        ("10", 315, 31),
        ("8", 540, 43),
    ]
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (855, 74, 929)
    assert invoice.status == "paid" and invoice.amount_paid == 929
    assert invoice.registration_number == "T9234567890123"  # the seller's, at finalization

    html = invoice.html or ""
    for text in ("10%対象", "消費税（10%）", "8%対象 ※", "消費税（8%）", "お弁当 ※"):
        assert text in html
    page = pymupdf.open(stream=html_to_pdf(html), filetype="pdf")[0]
    printed = page.get_text()
    for text in ("登録番号: T9234567890123", "315円", "31円", "540円", "43円", "929円"):
        assert text in printed
    assert missing_glyphs(page, printed) == set()

    # The receipt email carries the invoice as a PDF that says it is paid.
    (eml,) = outbox.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{invoice.number}.pdf"
    attached = pymupdf.open(stream=attachment.get_content(), filetype="pdf")[0].get_text()
    assert "支払済み" in attached and "929円" in attached


async def test_credit_notes_refund_or_credit_and_the_next_invoice_uses_credit_first(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    subscription_id = await start(
        time_env, pg_sessions, stripe_gateway, task_queue, unit_amount=3000
    )
    await time_env.sleep(timedelta(hours=2))
    first = observe(pg_sessions, subscription_id).invoices[0]
    assert first.status == "paid"

    refund_id = issue_credit_note(
        pg_sessions, stripe_gateway, invoice_id=first.id, reason="order_change",
        method="refund", actor="support:ken", amount=1000, memo="downgraded by phone",
    )  # fmt: skip
    credit_id = issue_credit_note(
        pg_sessions, stripe_gateway, invoice_id=first.id, reason="product_unsatisfactory",
        method="credit", actor="support:ken",
    )  # fmt: skip
    with pytest.raises(CreditNoteRefusedError, match="only 0 of the invoice's 3000"):
        issue_credit_note(
            pg_sessions, stripe_gateway, invoice_id=first.id, reason="duplicate",
            method="credit", actor="support:ken", amount=1,
        )  # fmt: skip

    with pg_sessions() as session:
        refund = session.get(CreditNote, refund_id)
        credit = session.get(CreditNote, credit_id)
        assert refund is not None and credit is not None
        assert (refund.amount, refund.status, refund.method) == (1000, "refunded", "refund")
        assert (credit.amount, credit.status) == (2000, "credited")
        assert refund.number != credit.number
        assert refund.number.startswith("CN-") and credit.number.startswith("CN-")
        balance = session.scalars(
            select(CreditTransaction.amount).where(
                CreditTransaction.customer_id == first.customer_id
            )
        ).all()
        assert balance == [2000]
    # Stripe holds the refund, found by the note's key (so a retry cannot refund twice).
    attempt = observe(pg_sessions, subscription_id).attempts[0]
    assert (
        stripe_gateway.find_refund(
            payment_intent_id=attempt.stripe_payment_intent_id or "",
            kakin_key=f"refund:{refund_id}",
        )
        == refund.stripe_refund_id
    )

    # The renewal uses the 2,000 of credit first and charges the card 1,000.
    await time_env.sleep(first.period_end + timedelta(hours=1) - await time_env.get_current_time())
    seen = observe(pg_sessions, subscription_id)
    renewal = seen.invoices[1]
    assert (renewal.total, renewal.credit_applied, renewal.amount_paid) == (3000, 2000, 1000)
    assert renewal.status == "paid"
    assert [a.amount for a in seen.attempts] == [3000, 1000]
    with pg_sessions() as session:
        left = session.scalars(
            select(CreditTransaction.amount).where(
                CreditTransaction.customer_id == first.customer_id
            )
        ).all()
    assert sum(left) == 0
    assert "クレジット充当" in (renewal.html or "")


async def test_japanese_documents_print_the_last_day_of_the_period(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    outbox: Path,
) -> None:
    """Started 12月31日 09:00 JST, the month ends on 1月30日: ご利用期間 2026年12月31日〜
    2027年1月30日, not 〜1月31日 (the next period's first day), in the invoice, its PDF
    and the receipt email. The API's instants stay half-open."""
    jst = ZoneInfo("Asia/Tokyo")
    now = await time_env.get_current_time()
    year = now.astimezone(jst).year
    start = datetime(year, 12, 31, 9, tzinfo=jst)
    if start <= now:
        start = start.replace(year=year + 1)
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue,
        customer_id=customer_id, price_id=price_id, start_at=start,
    )  # fmt: skip
    await time_env.sleep(start + timedelta(hours=1) - now)

    (invoice,) = observe(pg_sessions, subscription_id).invoices
    assert invoice.period_end == datetime(start.year + 1, 1, 31, 9, tzinfo=jst)  # half-open
    period = f"{start.year}年12月31日〜{start.year + 1}年1月30日"
    next_first_day = f"{start.year + 1}年1月31日"
    html = invoice.html or ""
    assert "ご利用期間" in html and period in html and next_first_day not in html
    printed = pymupdf.open(stream=html_to_pdf(html), filetype="pdf")[0].get_text()
    assert period in printed and next_first_day not in printed

    (eml,) = outbox.glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(preferencelist=("plain",))
    body = message.get_body(preferencelist=("html",))
    assert text is not None and body is not None
    assert f"ご利用期間　：{period}" in text.get_content()
    assert period in body.get_content() and next_first_day not in body.get_content()
    (attachment,) = list(message.iter_attachments())
    attached = pymupdf.open(stream=attachment.get_content(), filetype="pdf")[0].get_text()
    assert period in attached


async def test_an_open_invoice_takes_no_credit_note(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, card="4000000000000341")
    subscription_id = await subscriptions.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue, customer_id=customer_id,
        price_id=price_id, start_at=(await time_env.get_current_time()) + timedelta(hours=1),
    )  # fmt: skip
    await time_env.sleep(timedelta(hours=2))
    invoice = observe(pg_sessions, subscription_id).invoices[0]
    assert invoice.status == "open"
    with pytest.raises(CreditNoteRefusedError, match="only paid invoices take credit notes"):
        issue_credit_note(
            pg_sessions, stripe_gateway, invoice_id=invoice.id, reason="duplicate",
            method="credit", actor="support:ken",
        )  # fmt: skip


def test_the_sellers_registration_number_is_checked_when_kakin_starts() -> None:
    # 7000012050002 is the National Tax Agency's own corporate number.
    typed = Settings(seller_registration_number="Ｔ７０００-０１２０-５０００２")
    assert typed.seller_registration_number == "T7000012050002"
    with pytest.raises(ValidationError, match="wrong check digit"):
        Settings(seller_registration_number="T8000012050002")
    with pytest.raises(ValidationError, match="not T followed by 13 digits"):
        Settings(seller_registration_number="7000012050002")
    assert Settings(seller_registration_number="").seller_registration_number == ""
