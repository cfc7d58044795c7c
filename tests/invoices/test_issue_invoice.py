"""issue_invoice creates, numbers and opens an invoice in one transaction: retried and
raced, it still makes one invoice per period, numbered once, with no gap in the series."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from kakin.adapters.stripe_gateway import StripeGateway
from models.payloads import (
    ChargeOutcome,
    CreateInvoiceRequest,
    InvoiceRef,
    InvoiceStatus,
    IssueAndChargeRequest,
    IssuedCharge,
)
from models.tables import AuditLog, Invoice, PaymentAttempt
from tests.conftest import make_activities
from tests.helpers import DECLINED_CARD
from tests.models.test_database import (  # noqa: F401 (sessions is a fixture)
    invoice_request,
    new_subscription,
    sessions,
)


def test_issue_invoice_raced_and_retried_issues_each_period_once_without_gaps(
    sessions: sessionmaker[Session],  # noqa: F811
    stripe_gateway: StripeGateway,
    tmp_path: Path,
) -> None:
    billing = make_activities(sessions, stripe_gateway, tmp_path / "outbox")
    subscriptions = [new_subscription(sessions, stripe_gateway) for _ in range(3)]
    requests = [invoice_request(sub, index) for sub in subscriptions for index in range(4)]

    def issue(request: CreateInvoiceRequest) -> InvoiceRef:
        return ActivityEnvironment().run(billing.invoicing.issue_invoice, request)

    with ThreadPoolExecutor(max_workers=8) as pool:
        # Every period twice at once, as a retry racing a slow first try.
        refs = list(pool.map(issue, requests * 2))

    answers: dict[tuple[str, int], set[tuple[str, str | None, InvoiceStatus]]] = {}
    for request, ref in zip(requests * 2, refs, strict=True):
        key = (request.subscription_id, request.period_index)
        answers.setdefault(key, set()).add((ref.invoice_id, ref.number, ref.status))
    assert all(len(seen) == 1 for seen in answers.values()), "two answers for one period"
    assert all(status == InvoiceStatus.OPEN for ((_, _, status),) in answers.values())
    numbers = sorted(int(str(num).removeprefix("INV-")) for ((_, num, _),) in answers.values())
    assert numbers == list(range(numbers[0], numbers[0] + len(requests))), f"gap in {numbers}"

    with sessions() as session:
        invoices = session.scalars(
            select(Invoice).where(Invoice.subscription_id.in_(subscriptions))
        ).all()
        assert len(invoices) == len(requests)
        assert all(inv.finalized_at == inv.issued_at for inv in invoices)
        finalized = session.scalars(
            select(AuditLog.entity_id).where(
                AuditLog.action == "finalized",
                AuditLog.entity_id.in_([inv.id for inv in invoices]),
            )
        ).all()
        assert sorted(finalized) == sorted(inv.id for inv in invoices)


def test_issue_invoice_finishes_a_draft_an_earlier_try_left(
    sessions: sessionmaker[Session],  # noqa: F811
    stripe_gateway: StripeGateway,
    tmp_path: Path,
) -> None:
    billing = make_activities(sessions, stripe_gateway, tmp_path / "outbox")
    request = invoice_request(new_subscription(sessions, stripe_gateway), 0)
    env = ActivityEnvironment()
    draft = env.run(billing.invoicing.create_invoice, request)
    assert draft.number is None

    issued = env.run(billing.invoicing.issue_invoice, request)
    again = env.run(billing.invoicing.issue_invoice, request)

    assert issued.invoice_id == draft.invoice_id and issued.status == InvoiceStatus.OPEN
    assert issued.number is not None and again == issued


def test_issue_and_charge_retried_issues_one_invoice_and_charges_it_once(
    sessions: sessionmaker[Session],  # noqa: F811
    stripe_gateway: StripeGateway,
    tmp_path: Path,
) -> None:
    """The renewal's merged step, as Temporal retries it after a lost answer."""
    billing = make_activities(sessions, stripe_gateway, tmp_path / "outbox")
    paying = new_subscription(sessions, stripe_gateway)
    declining = new_subscription(sessions, stripe_gateway, card=DECLINED_CARD)
    env = ActivityEnvironment()

    def renew(subscription_id: str) -> IssuedCharge:
        request = IssueAndChargeRequest(**vars(invoice_request(subscription_id, 0)))
        return env.run(billing.renewals.issue_and_charge_invoice, request)

    paid, again = renew(paying), renew(paying)
    # The retry's invoice is the same one (now read back paid), and so is the charge.
    assert (again.invoice.invoice_id, again.invoice.number) == (
        paid.invoice.invoice_id, paid.invoice.number,
    )  # fmt: skip
    assert again.charge == paid.charge
    assert paid.charge.outcome == ChargeOutcome.SUCCEEDED and paid.invoice.number is not None
    declined, declined_again = renew(declining), renew(declining)
    assert declined_again == declined
    assert declined.charge.outcome == ChargeOutcome.DECLINED
    with sessions() as session:
        for subscription_id, status, attempt in (
            (paying, "paid", "succeeded"), (declining, "open", "declined")
        ):  # fmt: skip
            invoices = session.scalars(
                select(Invoice).where(Invoice.subscription_id == subscription_id)
            ).all()
            assert [i.status for i in invoices] == [status]
            attempts = session.scalars(
                select(PaymentAttempt).where(PaymentAttempt.invoice_id == invoices[0].id)
            ).all()
            assert [a.status for a in attempts] == [attempt]
