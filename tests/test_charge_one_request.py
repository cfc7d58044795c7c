"""A charge is one Stripe request, and a retry after a lost answer finds, not repeats, it.

The charge activity is called the way Temporal calls it, retry included, through
``ActivityEnvironment``, against the real emulator behind the fault-injecting proxy
(which counts the requests). The crash window is the one the single request opens:
Stripe created and confirmed the PaymentIntent, and the worker died before our
commit stored its id, so the retry has only the attempt's key to go on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.billing import BillingActivities
from activities.stripe_gateway import StripeGateway
from models import repositories as repo
from models.payloads import (
    ChargeOutcome,
    ChargeRequest,
    ChargeResult,
    CreateInvoiceRequest,
    FinalizeInvoiceRequest,
    SubscriptionStatus,
)
from models.tables import Invoice, PaymentAttempt, Subscription
from tests.conftest import make_activities
from tests.helpers import DECLINED_CARD, OK_CARD, customer_and_price
from tests.support.fault_proxy import DROP_AFTER_FORWARD, FaultProxy

START = datetime(2027, 3, 1, tzinfo=UTC)


class WorkerDied(Exception):
    """Stands for SIGKILL: the settling commit never happens."""


class DiesBeforeCommit(BillingActivities):
    """Stripe answered; the worker dies before the id and the outcome are committed."""

    def _settle(self, session: Session, *args: object, **kwargs: object) -> ChargeResult:
        raise WorkerDied


@pytest.fixture
def proxy(localstripe_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(localstripe_url) as running:
        yield running


@pytest.fixture
def gateway(proxy: FaultProxy) -> StripeGateway:
    # off_session as in production: localstripe takes it on a create with confirm=True.
    return StripeGateway(api_key="sk_test_kakin", api_base=proxy.url, confirm_off_session=True)


def open_invoice(
    sessions: sessionmaker[Session], billing: BillingActivities, gateway: StripeGateway, card: str
) -> str:
    customer_id, price_id = customer_and_price(sessions, gateway, card=card)
    subscription_id = repo.new_id("sub")
    with sessions() as session:
        session.add(
            Subscription(
                id=subscription_id, customer_id=customer_id, price_id=price_id,
                status=SubscriptionStatus.ACTIVE, workflow_id=f"subscription-{subscription_id}",
            )
        )  # fmt: skip
        session.commit()
    env = ActivityEnvironment()
    invoice = env.run(
        billing.create_invoice,
        CreateInvoiceRequest(
            subscription_id=subscription_id, period_index=0, period_start=START,
            period_end=START + timedelta(days=31), issued_at=START,
        ),
    )  # fmt: skip
    env.run(billing.finalize_invoice, FinalizeInvoiceRequest(invoice.invoice_id, START))
    return invoice.invoice_id


def intents_for_invoice(localstripe_url: str, invoice_id: str) -> list[stripe.PaymentIntent]:
    client = stripe.StripeClient("sk_test_kakin", base_addresses={"api": localstripe_url})
    return [
        intent
        for intent in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
        if intent.to_dict().get("metadata", {}).get("kakin_invoice_id") == invoice_id
    ]


def stored(sessions: sessionmaker[Session], invoice_id: str) -> tuple[str, list[PaymentAttempt]]:
    with sessions() as session:
        invoice = session.get_one(Invoice, invoice_id)
        attempts = list(
            session.scalars(select(PaymentAttempt).where(PaymentAttempt.invoice_id == invoice_id))
        )
        session.expunge_all()
        return invoice.status, attempts


def test_a_happy_charge_is_one_stripe_request(
    pg_sessions: sessionmaker[Session], gateway: StripeGateway, proxy: FaultProxy,
    localstripe_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    billing = make_activities(pg_sessions, gateway, tmp_path / "outbox")
    invoice_id = open_invoice(pg_sessions, billing, gateway, OK_CARD)
    request = ChargeRequest(invoice_id=invoice_id, attempt=1, attempted_at=START)

    before = proxy.requests
    result = ActivityEnvironment().run(billing.charge_invoice, request)
    assert proxy.requests - before == 1
    assert result.outcome == ChargeOutcome.SUCCEEDED

    [intent] = intents_for_invoice(localstripe_url, invoice_id)
    assert intent.status == "succeeded" and result.payment_intent_id == intent.id
    assert intent.metadata["kakin_key"] == f"charge:{invoice_id}:1"
    status, attempts = stored(pg_sessions, invoice_id)
    assert status == "paid"
    assert [(a.status, a.stripe_payment_intent_id) for a in attempts] == [("succeeded", intent.id)]

    # A finished attempt answers from the database: no request at all.
    again = ActivityEnvironment().run(billing.charge_invoice, request)
    assert proxy.requests - before == 1
    assert again.payment_intent_id == intent.id


@pytest.mark.parametrize("card", [OK_CARD, DECLINED_CARD], ids=["succeeded", "declined"])
def test_a_worker_dying_after_stripe_charged_before_our_commit_charges_once(
    pg_sessions: sessionmaker[Session], gateway: StripeGateway, localstripe_url: str,
    tmp_path: Path, card: str,
) -> None:  # fmt: skip
    billing = make_activities(pg_sessions, gateway, tmp_path / "outbox")
    dying = DiesBeforeCommit(
        session_factory=pg_sessions, stripe=gateway, mailer=billing._mailer,
        templates=billing._templates, seller=billing._seller,
    )  # fmt: skip
    invoice_id = open_invoice(pg_sessions, billing, gateway, card)
    request = ChargeRequest(invoice_id=invoice_id, attempt=1, attempted_at=START)

    with pytest.raises(WorkerDied):
        ActivityEnvironment().run(dying.charge_invoice, request)
    [intent] = intents_for_invoice(localstripe_url, invoice_id)
    status, attempts = stored(pg_sessions, invoice_id)
    assert [(a.status, a.stripe_payment_intent_id) for a in attempts] == [("pending", None)]

    result = ActivityEnvironment().run(billing.charge_invoice, request)  # Temporal's retry

    assert intents_for_invoice(localstripe_url, invoice_id) == [intent], "charged again"
    assert result.payment_intent_id == intent.id
    status, attempts = stored(pg_sessions, invoice_id)
    if card == OK_CARD:
        assert intent.status == "succeeded" and status == "paid"
        assert result.outcome == ChargeOutcome.SUCCEEDED
        assert [(a.status, a.stripe_payment_intent_id) for a in attempts] == [
            ("succeeded", intent.id)
        ]
    else:
        assert intent.status == "requires_payment_method" and status == "open"
        assert (result.outcome, result.decline_code) == (ChargeOutcome.DECLINED, "card_declined")
        assert [(a.status, a.stripe_payment_intent_id) for a in attempts] == [
            ("declined", intent.id)
        ]


def test_a_lost_create_answer_is_found_by_its_key(
    pg_sessions: sessionmaker[Session], gateway: StripeGateway, proxy: FaultProxy,
    localstripe_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """Stripe created and confirmed the intent; the answer was lost on the way back."""
    billing = make_activities(pg_sessions, gateway, tmp_path / "outbox")
    invoice_id = open_invoice(pg_sessions, billing, gateway, OK_CARD)
    request = ChargeRequest(invoice_id=invoice_id, attempt=1, attempted_at=START)
    proxy.add("POST", r"^/v1/payment_intents$", DROP_AFTER_FORWARD)

    with pytest.raises(stripe.APIConnectionError):
        ActivityEnvironment().run(billing.charge_invoice, request)
    result = ActivityEnvironment().run(billing.charge_invoice, request)

    assert proxy.faults_injected == [f"POST /v1/payment_intents -> {DROP_AFTER_FORWARD}"]
    [intent] = intents_for_invoice(localstripe_url, invoice_id)
    assert intent.status == "succeeded"
    assert (result.outcome, result.payment_intent_id) == (ChargeOutcome.SUCCEEDED, intent.id)
    assert stored(pg_sessions, invoice_id)[0] == "paid"


def test_an_unconfirmed_intent_of_the_two_request_charge_is_confirmed_not_repeated(
    pg_sessions: sessionmaker[Session], gateway: StripeGateway, proxy: FaultProxy,
    localstripe_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """A try of the old charge created the intent and died before storing its id."""
    billing = make_activities(pg_sessions, gateway, tmp_path / "outbox")
    invoice_id = open_invoice(pg_sessions, billing, gateway, OK_CARD)
    key = f"charge:{invoice_id}:1"
    with pg_sessions() as session:
        invoice = session.get_one(Invoice, invoice_id)
        customer = invoice.customer
        session.add(
            PaymentAttempt(
                business_key=key, invoice_id=invoice_id, attempt=1,
                amount=invoice.amount_due, currency=invoice.currency,
                status="pending", attempted_at=START,
            )
        )  # fmt: skip
        session.commit()
        client = stripe.StripeClient("sk_test_kakin", base_addresses={"api": localstripe_url})
        old = client.v1.payment_intents.create(
            params={
                "amount": invoice.amount_due, "currency": invoice.currency.lower(),
                "customer": customer.stripe_customer_id or "",
                "payment_method": customer.stripe_payment_method_id or "",
                "metadata": {"kakin_key": key, "kakin_invoice_id": invoice_id},
            }
        )  # fmt: skip
    assert old.status == "requires_confirmation"

    # localstripe refuses off_session on a confirm.
    retrying = make_activities(
        pg_sessions,
        StripeGateway(api_key="sk_test_kakin", api_base=proxy.url, confirm_off_session=False),
        tmp_path / "outbox",
    )
    result = ActivityEnvironment().run(
        retrying.charge_invoice, ChargeRequest(invoice_id=invoice_id, attempt=1, attempted_at=START)
    )

    [intent] = intents_for_invoice(localstripe_url, invoice_id)
    assert intent.id == old.id and intent.status == "succeeded"
    assert (result.outcome, result.payment_intent_id) == (ChargeOutcome.SUCCEEDED, old.id)
