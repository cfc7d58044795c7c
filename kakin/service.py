"""Operations services and support perform: catalog, customers, starting, cancelling.

Used by starter.py, the CLI and the demo (and later the HTTP API), so every entry
point validates the same way and starts workflows with the same ids and attributes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.stripe_gateway import StripeGateway
from billing.calendar import Interval, zone
from billing.dunning import DunningPolicy
from billing.money import normalize_currency
from billing.proration import Proration, prorate
from kakin import catalog, contracts
from models import repositories as repo
from models.payloads import (
    CancelRequest,
    ChangePlanRequest,
    GraceRequest,
    InvoiceStatus,
    PauseRequest,
    PaymentMethodUpdated,
    PaymentReceived,
    ResumeRequest,
    StatusView,
    SubscriptionInput,
    SubscriptionStatus,
    WaiveRequest,
)
from models.tables import Customer, Price, Subscription, utcnow
from workflows.subscription import SubscriptionWorkflow

InvalidRequestError = catalog.InvalidRequestError

# Prices of every model are made in kakin.catalog; starters and tests find it here too.
create_price = catalog.create_price


def workflow_id(subscription_id: str) -> str:
    """The public workflow id of a subscription (a contract)."""
    return f"subscription-{subscription_id}"


def create_customer(
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    *,
    email: str,
    name: str,
    currency: str,
    locale: str = "en",
    time_zone: str = "UTC",
    card_number: str | None = None,
    payment_method_id: str | None = None,
) -> str:
    """Create the customer here and at Stripe; a test card becomes a PaymentMethod."""
    if "@" not in email:
        raise InvalidRequestError(f"email {email!r} is not an email address")
    try:
        currency = normalize_currency(currency)
    except ValueError as error:
        raise InvalidRequestError(str(error)) from None
    customer_id = repo.new_id("cus")
    stripe_customer_id = stripe.create_customer(
        email=email, name=name, kakin_customer_id=customer_id
    )
    if card_number:
        payment_method_id = stripe.create_test_payment_method(
            card_number=card_number, stripe_customer_id=stripe_customer_id
        )
        # Stripe's default is the card on file (see update_payment_method): a first
        # card left as merely attached would be dropped by the next customer.updated.
        stripe.set_default_payment_method(
            stripe_customer_id=stripe_customer_id, payment_method_id=payment_method_id
        )
    with sessions() as session:
        session.add(
            Customer(
                id=customer_id,
                email=email,
                name=name,
                locale=locale,
                currency=currency,
                time_zone=time_zone,
                stripe_customer_id=stripe_customer_id,
                stripe_payment_method_id=payment_method_id,
            )
        )
        session.commit()
    return customer_id


async def start_subscription(
    client: Client,
    sessions: sessionmaker[Session],
    *,
    task_queue: str,
    customer_id: str,
    price_id: str,
    quantity: int = 1,
    trial_days: int = 0,
    start_at: datetime | None = None,
    test_clock_speed: float | None = None,
    live_mode: bool = False,
    dunning: DunningPolicy | None = None,
    metadata: dict[str, str] | None = None,
    stripe_task_queue: str | None = None,
) -> str:
    """Record the subscription and start its workflow; returns the subscription id.

    ``metadata`` (the caller's own keys and values) is written with the row, in the
    same transaction: no moment or crash leaves the subscription without it, and no
    write after the workflow has started can fail and make a retry start another one.
    """
    if test_clock_speed is not None and live_mode:
        raise InvalidRequestError("test clocks are refused with a live Stripe key")
    if quantity < 1:
        raise InvalidRequestError("quantity must be at least 1")
    if trial_days < 0:
        raise InvalidRequestError("trial_days must not be negative")
    if start_at is not None and start_at.tzinfo is None:
        raise InvalidRequestError("start_at needs a time zone, e.g. 2025-01-31T00:00:00+09:00")
    subscription_id = repo.new_id("sub")
    with sessions() as session:
        customer = session.get(Customer, customer_id)
        price = session.get(Price, price_id)
        if customer is None:
            raise InvalidRequestError(f"customer {customer_id!r} does not exist")
        if price is None:
            raise InvalidRequestError(f"price {price_id!r} does not exist")
        if not price.active:
            raise InvalidRequestError(
                f"price {price_id!r} is archived and takes no new subscriptions"
            )
        if price.currency != customer.currency:
            raise InvalidRequestError(
                f"price is in {price.currency} but the customer is billed in {customer.currency}"
            )
        # The periods follow the customer's calendar as it is now (billing.calendar): the
        # workflow keeps this snapshot, so a later change of the customer's zone moves no
        # renewal, past or future. Checked here: the workflow could not compute a period
        # on a zone the tz database does not know.
        time_zone = customer.time_zone or "UTC"
        try:
            zone(time_zone)
        except ValueError:
            raise InvalidRequestError(
                f"the customer's time zone {time_zone!r} is not an IANA time zone"
            ) from None
        session.add(
            Subscription(
                id=subscription_id,
                customer_id=customer_id,
                price_id=price_id,
                quantity=quantity,
                status=SubscriptionStatus.TRIALING if trial_days else SubscriptionStatus.ACTIVE,
                billing_cycle_anchor=start_at,
                workflow_id=workflow_id(subscription_id),
                test_clock=test_clock_speed is not None,
                metadata_=dict(metadata or {}),
            )
        )
        session.commit()
        interval, interval_count = Interval(price.interval), price.interval_count
    try:
        await client.start_workflow(
            SubscriptionWorkflow.run,
            SubscriptionInput(
                subscription_id=subscription_id,
                customer_id=customer_id,
                price_id=price_id,
                interval=interval,
                interval_count=interval_count,
                start_at=start_at,
                trial_days=trial_days,
                dunning=dunning or DunningPolicy(),
                test_clock_speed=test_clock_speed,
                stripe_task_queue=stripe_task_queue or None,
                time_zone="" if time_zone == "UTC" else time_zone,
            ),
            id=workflow_id(subscription_id),
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(
                        contracts.SUBSCRIPTION_STATUS, "trialing" if trial_days else "active"
                    ),
                    SearchAttributePair(contracts.CUSTOMER_ID, customer_id),
                    SearchAttributePair(contracts.PLAN_ID, price_id),
                ]
            ),
            static_summary=(
                f"subscription {subscription_id} · customer {customer_id} · plan {price_id}"
            ),
        )
    except Exception:
        # No workflow, no subscription: never leave a row that nothing will bill.
        with sessions() as session:
            row = session.get(Subscription, subscription_id)
            if row is not None:
                session.delete(row)
                session.commit()
        raise
    return subscription_id


def handle(client: Client, subscription_id: str) -> WorkflowHandle[SubscriptionWorkflow, str]:
    return client.get_workflow_handle_for(SubscriptionWorkflow.run, workflow_id(subscription_id))


async def cancel_subscription(
    client: Client,
    subscription_id: str,
    *,
    reason: str,
    at_period_end: bool,
    requested_by: str,
) -> None:
    """Send the public ``cancel`` signal."""
    await handle(client, subscription_id).signal(
        SubscriptionWorkflow.cancel,
        CancelRequest(reason=reason, at_period_end=at_period_end, requested_by=requested_by),
    )


async def subscription_status(client: Client, subscription_id: str) -> StatusView:
    return await handle(client, subscription_id).query(SubscriptionWorkflow.status)


async def update_payment_method(
    client: Client,
    sessions: sessionmaker[Session],
    stripe: StripeGateway,
    subscription_id: str,
    *,
    card_number: str,
    requested_by: str,
) -> str:
    """Attach a new (test) card, make it Stripe's default, tell the workflow (retries if unpaid).

    Stripe's default is set too: it is the source of truth that ``customer.updated``
    events are checked against, so a later unrelated event does not switch back. The
    change is claimed once (``claim_payment_method``): the ``customer.updated`` that
    Stripe sends for it then finds the card current and signals nothing more.
    """
    with sessions() as session:
        customer = repo.subscription(session, subscription_id).customer
        customer_id, stripe_customer_id = customer.id, customer.stripe_customer_id
    if not stripe_customer_id:
        raise InvalidRequestError("the customer has no Stripe customer to attach a card to")
    payment_method_id = stripe.create_test_payment_method(
        card_number=card_number, stripe_customer_id=stripe_customer_id
    )
    stripe.set_default_payment_method(
        stripe_customer_id=stripe_customer_id, payment_method_id=payment_method_id
    )
    with sessions() as session:
        claimed = claim_payment_method(
            session, customer_id, payment_method_id, actor=requested_by, occurred_at=utcnow()
        )
        session.commit()
    if claimed:
        # No id in the signal: the card is on file already (an id would make the
        # workflow record it again, later, possibly over a newer card).
        await handle(client, subscription_id).signal(
            SubscriptionWorkflow.payment_method_updated,
            PaymentMethodUpdated(payment_method_id=None, requested_by=requested_by),
        )
    return payment_method_id


def claim_payment_method(
    session: Session, customer_id: str, payment_method_id: str, *, actor: str, occurred_at: datetime
) -> bool:
    """Make ``payment_method_id`` the customer's card here, once; False if it already is.

    One conditional UPDATE, so of two callers applying the same card change at once
    (the CLI and the webhook Stripe sends for it, or two copies of one event) exactly
    one gets True and tells the workflows: one charge retry per card change. The
    workflow's ``record_payment_method`` then finds the card current and does nothing.
    """
    changed = session.execute(
        update(Customer)
        .where(
            Customer.id == customer_id,
            or_(
                Customer.stripe_payment_method_id.is_(None),
                Customer.stripe_payment_method_id != payment_method_id,
            ),
        )
        .values(stripe_payment_method_id=payment_method_id)
    )
    if getattr(changed, "rowcount", 0) != 1:
        return False
    repo.audit(
        session, entity_type="customer", entity_id=customer_id, action="payment_method_updated",
        actor=actor, occurred_at=occurred_at, details={"payment_method_id": payment_method_id},
    )  # fmt: skip
    return True


async def pause_subscription(
    client: Client, subscription_id: str, *, reason: str, requested_by: str
) -> StatusView:
    """The ``pause`` update: refused, with a reason, unless active or trialing."""
    # By the update's public name: the SDK's typing of async update methods does not
    # type-check under mypy; result_type keeps the answer a StatusView.
    return await handle(client, subscription_id).execute_update(
        "pause", PauseRequest(reason=reason, requested_by=requested_by), result_type=StatusView
    )


async def resume_subscription(
    client: Client, subscription_id: str, *, requested_by: str
) -> StatusView:
    """The ``resume`` update: refused unless paused."""
    return await handle(client, subscription_id).execute_update(
        "resume", ResumeRequest(requested_by=requested_by), result_type=StatusView
    )


async def report_payment(
    client: Client,
    subscription_id: str,
    *,
    invoice_id: str,
    payment_intent_id: str,
    requested_by: str = "stripe-webhook",
) -> None:
    """Tell the workflow Stripe took a payment outside our charge (e.g. from a webhook)."""
    await handle(client, subscription_id).signal(
        SubscriptionWorkflow.payment_received,
        PaymentReceived(
            invoice_id=invoice_id, payment_intent_id=payment_intent_id, requested_by=requested_by
        ),
    )


async def change_plan(
    client: Client,
    sessions: sessionmaker[Session],
    subscription_id: str,
    *,
    price_id: str,
    requested_by: str,
    reason: str = "",
) -> StatusView:
    """Move a subscription to another price: a dearer one now (prorated), a cheaper or
    equal one at the end of the paid period. Same currency and interval only."""
    with sessions() as session:
        subscription = repo.subscription(session, subscription_id)
        current, new = subscription.price, session.get(Price, price_id)
        if new is None:
            raise InvalidRequestError(f"price {price_id!r} does not exist")
        if not new.active:
            raise InvalidRequestError(
                f"price {price_id!r} is archived and takes no new subscriptions"
            )
        if new.currency != current.currency:
            raise InvalidRequestError(
                f"price is in {new.currency} but the subscription is billed in {current.currency}"
            )
        if (new.interval, new.interval_count) != (current.interval, current.interval_count):
            raise InvalidRequestError(
                "a plan change keeps the billing interval: "
                f"{current.interval_count} {current.interval} now, "
                f"{new.interval_count} {new.interval} asked"
            )
        upgrade = new.unit_amount > current.unit_amount
    return await handle(client, subscription_id).execute_update(
        "change_plan",
        ChangePlanRequest(
            price_id=price_id, at_period_end=not upgrade, reason=reason, requested_by=requested_by
        ),
        result_type=StatusView,
    )


def preview_plan_change(
    sessions: sessionmaker[Session], subscription_id: str, *, price_id: str, at: datetime
) -> Proration | None:
    """What an upgrade to ``price_id`` at ``at`` would charge now (None: it would wait
    for the renewal, so nothing is charged now).

    ``at`` is the caller's: the present for a real subscription. (The ``status``
    query's ``now`` is the time of the workflow's last step, not the present.)
    """
    with sessions() as session:
        subscription = repo.subscription(session, subscription_id)
        current, new = subscription.price, repo.price(session, price_id)
        start, end = subscription.current_period_start, subscription.current_period_end
        quantity = subscription.quantity
    if new.unit_amount <= current.unit_amount or start is None or end is None:
        return None
    return prorate(
        old_amount=current.unit_amount * quantity,
        new_amount=new.unit_amount * quantity,
        period_start=start,
        period_end=end,
        at=min(max(at, start), end),
    )


async def grant_grace(
    client: Client, subscription_id: str, *, days: int, reason: str, requested_by: str
) -> StatusView:
    """The ``grant_grace`` update: the rest of the dunning ladder waits ``days`` longer."""
    return await handle(client, subscription_id).execute_update(
        "grant_grace",
        GraceRequest(days=days, reason=reason, requested_by=requested_by),
        result_type=StatusView,
    )


async def waive_invoice(
    client: Client,
    subscription_id: str,
    *,
    reason: str,
    requested_by: str,
    mark_as: InvoiceStatus = InvoiceStatus.VOID,
    invoice_id: str | None = None,
) -> StatusView:
    """The ``waive_invoice`` update: the invoice in dunning is marked ``void`` (or
    ``uncollectible``: written off) and the subscription is active again."""
    return await handle(client, subscription_id).execute_update(
        "waive_invoice",
        WaiveRequest(
            reason=reason, requested_by=requested_by, mark_as=mark_as, invoice_id=invoice_id
        ),
        result_type=StatusView,
    )


async def retry_payment_now(client: Client, subscription_id: str, *, requested_by: str) -> None:
    """Charge the invoice in dunning again at once, with the card on file."""
    await handle(client, subscription_id).signal(
        SubscriptionWorkflow.payment_method_updated,
        PaymentMethodUpdated(payment_method_id=None, requested_by=requested_by),
    )
