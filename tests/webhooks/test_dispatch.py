"""The pure rules (event types, the schedule) and the dispatcher's look at the ledger:
one delivery per event and endpoint, whatever how often it looks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from billing.analytics.ledger import EntryKind
from billing.webhooks import EVENT_TYPES, KNOWN_TYPES, SCHEDULE, check_types, next_wait
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import customers, webhook_deliveries
from kakin.services.errors import RefusedError
from kakin.views.customers import CustomerOut
from kakin.views.webhook_endpoints import WebhookDeliveryOut
from kakin.views.webhook_events import event_data
from models.tables import LedgerRow
from tests.webhooks.conftest import register


def test_every_ledger_kind_is_mapped_and_the_issues_names_are_known() -> None:
    assert set(EVENT_TYPES) == set(EntryKind)
    for name in (
        "customer.created", "customer.updated", "subscription.created", "subscription.updated",
        "subscription.status_changed", "subscription.paused", "subscription.resumed",
        "subscription.canceled", "invoice.finalized", "invoice.paid", "invoice.payment_failed",
        "invoice.voided", "invoice.uncollectible", "credit_note.created",
    ):  # fmt: skip
        assert name in KNOWN_TYPES


def test_event_types_are_checked_and_star_means_all() -> None:
    assert check_types(["invoice.paid", " invoice.paid"]) == ["invoice.paid"]
    assert check_types(["invoice.paid", "*"]) == ["*"]
    with pytest.raises(ValueError, match="unknown event type"):
        check_types(["invoice.payed"])
    with pytest.raises(ValueError, match="at least one"):
        check_types([])


def test_the_svix_schedule_and_retry_after_bounds() -> None:
    waits = [next_wait(n) for n in range(1, 8)]
    assert waits == list(SCHEDULE[1:])
    assert sum(SCHEDULE, timedelta()) == timedelta(hours=27, minutes=35, seconds=5)
    assert next_wait(8) is None  # eight tries, then failed
    assert next_wait(1, timedelta(seconds=120)) == timedelta(seconds=120)
    assert next_wait(1, timedelta(days=3)) == timedelta(hours=10)
    assert next_wait(1, timedelta(0)) == timedelta(seconds=1)


def test_a_customer_update_is_one_delivery_however_often_the_dispatcher_looks(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    endpoint = register(pg_sessions, "http://127.0.0.1:9/hook", ["customer.updated"])
    customer_id = customers.create_customer(
        pg_sessions, stripe_gateway, email="ume@example.jp", name="梅", currency="JPY"
    )
    customers.update_customer(pg_sessions, customer_id, {"name": "梅子"}, CustomerOut.of)
    first = webhook_deliveries.dispatch(pg_sessions, event_data)
    again = webhook_deliveries.dispatch(pg_sessions, event_data)  # a retried look
    assert len(first.delivery_ids) == 1 and again.delivery_ids == first.delivery_ids
    (delivery,) = webhook_deliveries.list_deliveries(
        pg_sessions, endpoint.id, WebhookDeliveryOut.of
    )
    assert delivery.event_type == "customer.updated" and delivery.status == "pending"
    body = delivery.payload
    assert body["type"] == "customer.updated"
    shown = customers.get_customer(pg_sessions, customer_id, CustomerOut.of)
    assert body["data"] == json.loads(shown.model_dump_json())  # as GET /v1/customers/{id}
    assert body["data"]["name"] == "梅子"


async def test_a_delivery_still_being_tried_is_not_resent(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    register(pg_sessions, "http://127.0.0.1:9/hook", ["customer.created"])
    customers.create_customer(
        pg_sessions, stripe_gateway, email="sakura@example.jp", name="桜", currency="JPY"
    )
    (delivery_id,) = webhook_deliveries.dispatch(pg_sessions, event_data).delivery_ids
    with pytest.raises(RefusedError, match="still being tried"):
        await webhook_deliveries.resend(
            pg_sessions, None, delivery_id, WebhookDeliveryOut.of,  # type: ignore[arg-type]
            task_queue="unused", requested_by="test",
        )  # fmt: skip


def test_an_alert_notice_carries_what_fired_and_an_invoice_entry_carries_its_object() -> None:
    notice = LedgerRow(
        kind=EntryKind.ALERT_TRIGGERED.value, customer_id="cus_1", subscription_id="sub_1",
        currency="JPY", amount=4200,
        details={"alert_id": "alr_1", "watches": "bill", "threshold": "4000", "budget": "5000"},
    )  # fmt: skip
    assert webhook_deliveries.notice_data(notice) == {
        "object": "alert_notice", "type": "alert.triggered", "customer_id": "cus_1",
        "subscription_id": "sub_1", "currency": "JPY", "amount": 4200, "alert_id": "alr_1",
        "watches": "bill", "threshold": "4000", "budget": "5000",
    }  # fmt: skip
    paid = LedgerRow(kind=EntryKind.INVOICE_PAID.value, invoice_id="in_1", subscription_id="s")
    assert webhook_deliveries.notice_data(paid) is None
    assert webhook_deliveries.object_of(paid) == ("invoice", "in_1")
