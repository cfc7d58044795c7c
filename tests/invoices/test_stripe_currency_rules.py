"""Invoices charge only what real Stripe accepts: through the real stripe SDK and localstripe.

- Three-decimal currencies (BHD, JOD, KWD, OMR, TND) are charged in steps of 10: a
  price of 1.235 is invoiced with a visible rounding line and charged 1.230, and the
  invoice total is what is charged.
- An invoice whose amount due is below Stripe's minimum charge (50 JPY) is not
  charged: it is marked paid, its amount goes to the customer's balance as a debit,
  and the next invoice collects it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import stripe
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import subscriptions
from kakin.services.invoice_drafts import upcoming_draft
from kakin.views.invoices import InvoiceDetail
from models.payloads import ChargeOutcome, ChargeRequest, RenderInvoiceRequest, SubscriptionStatus
from models.repositories import credit_notes as credit_sql
from models.repositories import invoices as invoice_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import new_id
from models.tables import Subscription
from tests.conftest import make_activities
from tests.helpers import customer_and_price, observe
from tests.models.test_database import START, invoice_request

THREE_DECIMALS = ["BHD", "JOD", "KWD", "OMR", "TND"]


def intents_for_invoice(localstripe_url: str, invoice_id: str) -> list[stripe.PaymentIntent]:
    client = stripe.StripeClient("sk_test_kakin", base_addresses={"api": localstripe_url})
    return [
        intent
        for intent in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        if intent.to_dict().get("metadata", {}).get("kakin_invoice_id") == invoice_id
    ]


def subscribe(
    sessions: sessionmaker[Session], stripe_gateway: StripeGateway, **price: str | int
) -> str:
    customer_id, price_id = customer_and_price(sessions, stripe_gateway, **price)  # type: ignore[arg-type]
    subscription_id = new_id("sub")
    with sessions() as session:
        session.add(
            Subscription(
                id=subscription_id,
                customer_id=customer_id,
                price_id=price_id,
                status=SubscriptionStatus.ACTIVE,
                workflow_id=f"subscription-{subscription_id}",
            )
        )
        session.commit()
    return subscription_id


@pytest.mark.parametrize("currency", THREE_DECIMALS)
def test_a_three_decimal_price_is_rounded_on_the_invoice_and_charged_as_stripe_accepts(
    currency: str,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    localstripe_url: str,
    tmp_path: Path,
) -> None:
    billing = make_activities(pg_sessions, stripe_gateway, tmp_path / "outbox")
    env = ActivityEnvironment()
    subscription_id = subscribe(
        pg_sessions, stripe_gateway, currency=currency, unit_amount=1235, locale="en"
    )

    ref = env.run(billing.invoicing.issue_invoice, invoice_request(subscription_id, 0))
    assert (ref.amount_due, ref.currency) == (1230, currency)
    result = env.run(billing.payments.charge_invoice, ChargeRequest(ref.invoice_id, 1, START))
    env.run(billing.invoicing.render_invoice, RenderInvoiceRequest(ref.invoice_id))

    assert result.outcome == ChargeOutcome.SUCCEEDED
    [intent] = intents_for_invoice(localstripe_url, ref.invoice_id)
    assert (intent.amount, intent.currency, intent.status) == (1230, currency.lower(), "succeeded")
    with pg_sessions() as session:
        invoice = invoice_sql.invoice(session, ref.invoice_id)
        assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (1235, 1230, 1230)
        assert invoice.status == "paid" and invoice.amount_due == 0
        assert [(line.kind, line.amount) for line in invoice.lines] == [
            ("subscription", 1235),
            ("rounding", -5),
        ]
        html = invoice.html or ""
        body = InvoiceDetail.with_lines(invoice).model_dump(mode="json")
    # The page prints the rounding among the totals, and the total that was charged.
    assert f'<th>Rounding</th><td class="num">-0.005 {currency}</td>' in html
    assert f"1.230 {currency}" in html
    assert [line["kind"] for line in body["lines"]] == ["subscription", "rounding"]
    assert body["total"] == intent.amount


def test_an_invoice_below_the_minimum_charge_is_carried_to_the_next_invoice(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    localstripe_url: str,
    tmp_path: Path,
) -> None:
    billing = make_activities(pg_sessions, stripe_gateway, tmp_path / "outbox")
    env = ActivityEnvironment()
    subscription_id = subscribe(pg_sessions, stripe_gateway, currency="JPY", unit_amount=40)

    first = env.run(billing.invoicing.issue_invoice, invoice_request(subscription_id, 0))
    charged = env.run(billing.payments.charge_invoice, ChargeRequest(first.invoice_id, 1, START))
    env.run(billing.invoicing.render_invoice, RenderInvoiceRequest(first.invoice_id))

    # 40 JPY is below Stripe's 50 JPY: nothing reaches Stripe, the invoice is settled.
    assert first.amount_due == 0 and charged.outcome == ChargeOutcome.SUCCEEDED
    assert intents_for_invoice(localstripe_url, first.invoice_id) == []
    with pg_sessions() as session:
        invoice = invoice_sql.invoice(session, first.invoice_id)
        assert (invoice.total, invoice.carried_forward, invoice.amount_paid) == (40, 40, 0)
        assert invoice.status == "paid"
        assert '次回請求へ繰越（最低請求額未満）</th><td class="num">-40円' in (invoice.html or "")
        customer_id = invoice.customer_id
        assert credit_sql.credit_balance(session, customer_id, "JPY") == -40  # a debit
        # The preview of the next invoice already shows it.
        preview = upcoming_draft(
            session,
            subscription_sql.subscription(session, subscription_id),
            next_start=invoice.period_end,
            next_end=invoice.period_end + timedelta(days=31),
        )
        assert (preview.totals.credit_applied, preview.totals.amount_due) == (-40, 80)

    second = env.run(billing.invoicing.issue_invoice, invoice_request(subscription_id, 1))
    env.run(billing.payments.charge_invoice, ChargeRequest(second.invoice_id, 1, START))
    env.run(billing.invoicing.render_invoice, RenderInvoiceRequest(second.invoice_id))

    # The next invoice: its own 40 and the 40 carried, charged together at Stripe.
    assert second.amount_due == 80
    [intent] = intents_for_invoice(localstripe_url, second.invoice_id)
    assert (intent.amount, intent.status) == (80, "succeeded")
    with pg_sessions() as session:
        invoice = invoice_sql.invoice(session, second.invoice_id)
        assert (invoice.total, invoice.credit_applied, invoice.amount_paid) == (40, -40, 80)
        assert '前回請求からの繰越</th><td class="num">40円' in (invoice.html or "")
        assert credit_sql.credit_balance(session, customer_id, "JPY") == 0
        body = InvoiceDetail.with_lines(invoice).model_dump(mode="json")
    assert (body["credit_applied"], body["carried_forward"], body["amount_due"]) == (-40, 0, 0)


async def test_a_subscription_below_the_minimum_is_charged_every_other_period(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    localstripe_url: str,
    task_queue: str,
) -> None:
    """The workflow, unchanged: a 40 JPY plan is carried, then charged 80, and so on."""
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, unit_amount=40)
    subscription_id = await subscriptions.start_subscription(
        time_env.client,
        pg_sessions,
        task_queue=task_queue,
        customer_id=customer_id,
        price_id=price_id,
        start_at=start,
    )
    await time_env.sleep(timedelta(days=100))

    seen = observe(pg_sessions, subscription_id)
    assert seen.status == "active"
    invoices = seen.invoices[:4]
    assert [i.status for i in invoices] == ["paid"] * 4
    assert [(i.total, i.carried_forward, i.credit_applied) for i in invoices] == [
        (40, 40, 0), (40, 0, -40), (40, 40, 0), (40, 0, -40),
    ]  # fmt: skip
    charged = [[x.amount for x in intents_for_invoice(localstripe_url, i.id)] for i in invoices]
    assert charged == [[], [80], [], [80]]
    assert seen.email_kinds[:4] == ["receipt"] * 4


def test_an_open_invoice_stripe_would_refuse_is_declined_with_the_reason_not_sent(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    localstripe_url: str,
    tmp_path: Path,
) -> None:
    """An invoice finalized before the rounding rule (1.235 KWD due) never reaches Stripe,
    which would refuse it on every retry: the attempt is declined with why."""
    billing = make_activities(pg_sessions, stripe_gateway, tmp_path / "outbox")
    env = ActivityEnvironment()
    subscription_id = subscribe(pg_sessions, stripe_gateway, currency="KWD", unit_amount=1235)
    ref = env.run(billing.invoicing.issue_invoice, invoice_request(subscription_id, 0))
    with pg_sessions() as session:  # as such an invoice was stored before
        invoice = invoice_sql.invoice(session, ref.invoice_id)
        invoice.lines = [line for line in invoice.lines if line.kind != "rounding"]
        invoice.total = 1235
        session.commit()

    result = env.run(billing.payments.charge_invoice, ChargeRequest(ref.invoice_id, 1, START))

    assert (result.outcome, result.decline_code) == (
        ChargeOutcome.DECLINED,
        "amount_not_chargeable",
    )
    assert "1235 minor units of KWD (steps of 10" in result.message
    assert intents_for_invoice(localstripe_url, ref.invoice_id) == []
