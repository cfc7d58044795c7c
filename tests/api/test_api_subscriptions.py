"""Subscriptions and invoices over HTTP, against the dev server with a worker billing them."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import subscriptions as subscriptions_service
from kakin.services.api_keys import CreatedKey
from models.db import make_engine, make_session_factory
from models.tables import AuditLog, Customer, Invoice, Price, Product, Subscription
from tests import helpers
from tests.api.test_api import CUSTOMER, PRICE
from tests.helpers import OK_CARD, as_role, client, error_of, eventually

pytestmark = pytest.mark.devserver


def customer_and_price(url: str, made_keys: dict[str, CreatedKey]) -> tuple[str, str]:
    with client(url, made_keys["service"].secret) as http:
        response = http.post("/v1/customers", json={**CUSTOMER, "card_number": OK_CARD})
        assert response.status_code == 201, response.text
        customer_id = response.json()["id"]
    with client(url, made_keys["admin"].secret) as http:
        response = http.post("/v1/prices", json=PRICE)
        assert response.status_code == 201, response.text
        price_id = response.json()["id"]
    return customer_id, price_id


async def test_start_bill_read_and_cancel_a_subscription(
    url: str,
    made_keys: dict[str, CreatedKey],
    module_worker: Worker,
    pg_sessions: sessionmaker[Session],
) -> None:
    customer_id, price_id = customer_and_price(url, made_keys)
    async with (
        as_role(url, made_keys, "service") as service,
        as_role(url, made_keys, "support") as support,
    ):
        response = await service.post(
            "/v1/subscriptions",
            json={"customer_id": customer_id, "price_id": price_id, "metadata": {"order": "A-1"}},
        )
        assert response.status_code == 201, response.text
        created = response.json()
        subscription_id = created["id"]
        assert created["object"] == "subscription"
        assert subscription_id.startswith("sub_")
        assert (created["customer_id"], created["price_id"]) == (customer_id, price_id)
        assert created["status"] == "active"
        assert created["quantity"] == 1
        assert created["metadata"] == {"order": "A-1"}
        assert created["workflow_id"] == f"subscription-{subscription_id}"

        invoices: list[dict[str, Any]] = []

        async def first_invoice_paid() -> bool:
            nonlocal invoices
            listed = await support.get("/v1/invoices", params={"subscription_id": subscription_id})
            assert listed.status_code == 200, listed.text
            invoices = listed.json()["data"]
            return [i["status"] for i in invoices] == ["paid"]

        await eventually(first_invoice_paid, timeout=30, what="the first invoice paid")
        invoice = invoices[0]
        assert (invoice["total"], invoice["amount_paid"], invoice["currency"]) == (
            3980,
            3980,
            "JPY",
        )

        detail = (await service.get(f"/v1/invoices/{invoice['id']}")).json()
        assert detail["number"] == invoice["number"]
        assert [(line["quantity"], line["amount"]) for line in detail["lines"]] == [(1, 3980)]
        filtered = await support.get(
            "/v1/invoices", params={"customer_id": customer_id, "status": "paid"}
        )
        assert [i["id"] for i in filtered.json()["data"]] == [invoice["id"]]
        today = datetime.now(ZoneInfo("Asia/Tokyo")).date()  # the reporting time zone's day
        for more, found in [
            ({"period_from": str(today), "period_to": str(today)}, [invoice["id"]]),
            ({"period_from": str(today + timedelta(days=1))}, []),
            ({"period_to": str(today - timedelta(days=1))}, []),
            ({"overdue": "true"}, []),  # paid, so never overdue
        ]:
            listed = await support.get("/v1/invoices", params={"customer_id": customer_id, **more})
            assert [i["id"] for i in listed.json()["data"]] == found, more

        async def rendered() -> bool:
            html = await support.get(f"/v1/invoices/{invoice['id']}/html")
            return html.status_code == 200

        await eventually(rendered, what="the invoice rendered")
        html = await support.get(f"/v1/invoices/{invoice['id']}/html")
        assert html.headers["content-type"].startswith("text/html")
        assert invoice["number"] in html.text

        fetched = await support.get(f"/v1/subscriptions/{subscription_id}")
        assert fetched.status_code == 200, fetched.text
        body = fetched.json()
        assert body["live"] is not None
        assert body["live"]["status"] == "active"
        assert body["live"]["next_action"] == "renew"
        assert body["status"] == "active"
        assert body["metadata"] == {"order": "A-1"}

        listed = await support.get("/v1/subscriptions", params={"customer_id": customer_id})
        assert [s["id"] for s in listed.json()["data"]] == [subscription_id]
        by_status = await support.get(
            "/v1/subscriptions", params={"price_id": price_id, "status": "canceled"}
        )
        assert by_status.json()["data"] == []

        canceled = await support.post(
            f"/v1/subscriptions/{subscription_id}/cancel",
            json={"reason": "the customer is moving abroad"},
        )
        assert canceled.status_code == 202, canceled.text
        support_key = made_keys["support"].info
        requested_by = f"api-key:{support_key.id} ({support_key.name})"
        assert canceled.json() == {
            "object": "cancel_request",
            "subscription_id": subscription_id,
            "reason": "the customer is moving abroad",
            "at_period_end": False,
            "requested_by": requested_by,
        }

        def audited() -> bool:
            with pg_sessions() as session:
                rows = session.scalars(
                    select(AuditLog).where(
                        AuditLog.entity_id == subscription_id, AuditLog.to_status == "canceled"
                    )
                ).all()
                return [(r.actor, r.reason) for r in rows] == [
                    (requested_by, "the customer is moving abroad")
                ]

        await eventually(audited, timeout=30, what="the cancellation in the audit log")

        async def ended_canceled() -> bool:
            # The workflow says canceled at once, and completes after its last steps
            # (a final usage invoice, the email); then there is no live status.
            row = (await support.get(f"/v1/subscriptions/{subscription_id}")).json()
            return bool(row["status"] == "canceled" and row["live"] is None)

        await eventually(ended_canceled, timeout=30, what="the subscription canceled and ended")
        again = await service.post(
            f"/v1/subscriptions/{subscription_id}/cancel", json={"reason": "twice"}
        )
        error = error_of(again, 409)
        assert error == {
            "type": "conflict",
            "message": f"Subscription {subscription_id!r} is already canceled.",
        }


def consistent(body: dict[str, Any]) -> None:
    """A subscription read never contradicts itself: a status comes with its fields."""
    if body["status"] == "canceled":
        assert body["canceled_at"] is not None and body["cancel_reason"], body
    else:
        assert body["canceled_at"] is None, body


async def test_a_read_right_after_a_cancel_does_not_contradict_itself(
    url: str,
    made_keys: dict[str, CreatedKey],
    module_worker: Worker,
    pg_sessions: sessionmaker[Session],
) -> None:
    customer_id, price_id = customer_and_price(url, made_keys)
    async with as_role(url, made_keys, "service") as shop:
        started = await shop.post(
            "/v1/subscriptions",
            json={"customer_id": customer_id, "price_id": price_id, "trial_days": 14},
        )
        assert started.status_code == 201, started.text
        subscription_id = started.json()["id"]
        path = f"/v1/subscriptions/{subscription_id}"

        async def live_says(status: str) -> bool:
            live = (await shop.get(path)).json()["live"]
            return live is not None and live["status"] == status

        await eventually(lambda: live_says("trialing"), what="the trial running")
        # The workflow's record of the cancel waits behind this row lock: the moment
        # between the workflow knowing and the row saying so, held open to look at.
        with pg_sessions() as holder:
            holder.execute(
                select(Subscription).where(Subscription.id == subscription_id).with_for_update()
            )
            canceled = await shop.post(f"{path}/cancel", json={"reason": "the shop closed"})
            assert canceled.status_code == 202, canceled.text
            await eventually(lambda: live_says("canceled"), what="the workflow canceled")
            ahead = (await shop.get(path)).json()
            holder.rollback()
        assert ahead["live"]["status"] == "canceled"
        consistent(ahead)
        assert (ahead["status"], ahead["canceled_at"]) == ("trialing", None)  # the row, as stored

        async def recorded() -> bool:
            body = (await shop.get(path)).json()
            consistent(body)
            return bool(body["status"] == "canceled")

        await eventually(recorded, timeout=30, what="the cancel recorded")
        body = (await shop.get(path)).json()
        assert body["cancel_reason"] == "the shop closed"


# -- refusals ------------------------------------------------------------------------------


def stored_subscription(sessions: sessionmaker[Session], *, html: str | None = None) -> str:
    """A subscription row with an invoice and no workflow (one that has gone away)."""
    now = datetime.now(UTC)
    with sessions() as session:
        customer = Customer(id=f"cus_{secrets.token_hex(6)}", email="a@example.jp", name="A")
        customer.currency = "JPY"
        product = Product(id=f"prod_{secrets.token_hex(6)}", name="P")
        price = Price(
            id=f"price_{secrets.token_hex(6)}",
            product=product,
            currency="JPY",
            unit_amount=100,
            interval="month",
        )
        subscription_id = f"sub_{secrets.token_hex(6)}"
        subscription = Subscription(
            id=subscription_id,
            customer=customer,
            price=price,
            status="active",
            workflow_id=f"subscription-{subscription_id}",
        )
        invoice = Invoice(
            id=f"in_{subscription_id}",
            business_key=f"invoice:{subscription_id}:0",
            subscription=subscription,
            customer=customer,
            status="draft",
            currency="JPY",
            period_start=now,
            period_end=now + timedelta(days=30),
            issued_at=now,
            html=html,
        )
        session.add_all([customer, product, price, subscription, invoice])
        session.commit()
    return subscription_id


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions/sub_x"),
        ("POST", "/v1/subscriptions/sub_x/cancel"),
        ("GET", "/v1/invoices"),
        ("GET", "/v1/invoices/in_x"),
        ("GET", "/v1/invoices/in_x/html"),
    ],
)
def test_without_a_key_is_401(url: str, method: str, path: str) -> None:
    with client(url) as http:
        error = error_of(http.request(method, path, json={}), 401)
    assert error["type"] == "authentication_error"


def test_support_keys_do_not_start_subscriptions(
    url: str, made_keys: dict[str, CreatedKey]
) -> None:
    with client(url, made_keys["support"].secret) as http:
        response = http.post("/v1/subscriptions", json={"customer_id": "c", "price_id": "p"})
    error = error_of(response, 403)
    assert error["message"] == (
        "A support key may not call POST /v1/subscriptions; "
        "this needs a key with the role admin or service."
    )


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v1/subscriptions/sub_unknown", "Subscription 'sub_unknown' does not exist."),
        (
            "POST",
            "/v1/subscriptions/sub_unknown/cancel",
            "Subscription 'sub_unknown' does not exist.",
        ),
        ("GET", "/v1/invoices/in_unknown", "Invoice 'in_unknown' does not exist."),
        ("GET", "/v1/invoices/in_unknown/html", "Invoice 'in_unknown' does not exist."),
    ],
)
def test_unknown_ids_are_404(
    url: str, made_keys: dict[str, CreatedKey], method: str, path: str, message: str
) -> None:
    with client(url, made_keys["service"].secret) as http:
        response = http.request(method, path, json={"reason": "r"} if method == "POST" else None)
    assert error_of(response, 404) == {"type": "not_found", "message": message}


def test_an_unknown_customer_or_price_is_404(url: str, made_keys: dict[str, CreatedKey]) -> None:
    customer_id, price_id = customer_and_price(url, made_keys)
    with client(url, made_keys["service"].secret) as http:
        no_customer = http.post(
            "/v1/subscriptions", json={"customer_id": "cus_nope", "price_id": price_id}
        )
        no_price = http.post(
            "/v1/subscriptions", json={"customer_id": customer_id, "price_id": "price_nope"}
        )
    assert error_of(no_customer, 404)["message"] == "Customer 'cus_nope' does not exist."
    assert error_of(no_price, 404)["message"] == "Price 'price_nope' does not exist."


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"quantity": 0}, "quantity"),
        ({"trial_days": -1}, "trial_days"),
        ({"start_at": "2027-01-31T09:00:00"}, "start_at"),
        ({"metadata": {"order": 1}}, "metadata"),
        ({"test_clock_speed": 1000}, "test_clock_speed"),
        ({"customer_id": None}, "customer_id"),
    ],
)
def test_invalid_subscriptions_are_422_naming_the_field(
    url: str, made_keys: dict[str, CreatedKey], change: dict[str, Any], field: str
) -> None:
    body = {
        k: v for k, v in {"customer_id": "c", "price_id": "p", **change}.items() if v is not None
    }
    with client(url, made_keys["service"].secret) as http:
        error = error_of(http.post("/v1/subscriptions", json=body), 422)
    assert field in error["message"]
    assert error["message"].endswith(".") and "\n" not in error["message"]


def test_a_price_in_another_currency_is_422(url: str, made_keys: dict[str, CreatedKey]) -> None:
    customer_id, _ = customer_and_price(url, made_keys)
    with client(url, made_keys["admin"].secret) as http:
        usd = http.post("/v1/prices", json={**PRICE, "currency": "USD", "unit_amount": 1250})
        response = http.post(
            "/v1/subscriptions", json={"customer_id": customer_id, "price_id": usd.json()["id"]}
        )
    assert error_of(response, 422)["message"] == (
        "Price is in USD but the customer is billed in JPY."
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "reason is required."),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x", "at_period_end": "later"}, "at_period_end"),
    ],
)
def test_a_cancel_needs_a_reason(
    url: str,
    made_keys: dict[str, CreatedKey],
    pg_sessions: sessionmaker[Session],
    body: dict[str, Any],
    message: str,
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    with client(url, made_keys["support"].secret) as http:
        error = error_of(http.post(f"/v1/subscriptions/{subscription_id}/cancel", json=body), 422)
    assert message in error["message"]


def test_a_subscription_whose_workflow_is_gone(
    url: str, made_keys: dict[str, CreatedKey], pg_sessions: sessionmaker[Session]
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    with client(url, made_keys["support"].secret) as http:
        fetched = http.get(f"/v1/subscriptions/{subscription_id}")
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["live"] is None
        assert fetched.json()["status"] == "active"
        cancel = http.post(f"/v1/subscriptions/{subscription_id}/cancel", json={"reason": "r"})
    assert error_of(cancel, 409)["message"] == (
        f"Subscription {subscription_id!r} has ended; its workflow no longer runs."
    )


def test_an_invoice_not_rendered_yet_has_no_html(
    url: str, made_keys: dict[str, CreatedKey], pg_sessions: sessionmaker[Session]
) -> None:
    invoice_id = f"in_{stored_subscription(pg_sessions)}"
    with client(url, made_keys["support"].secret) as http:
        error = error_of(http.get(f"/v1/invoices/{invoice_id}/html"), 404)
        assert error["message"] == f"Invoice {invoice_id!r} has not been rendered yet."
        detail = http.get(f"/v1/invoices/{invoice_id}").json()
        assert (detail["status"], detail["lines"]) == ("draft", [])


def test_invalid_list_filters_are_422(url: str, made_keys: dict[str, CreatedKey]) -> None:
    with client(url, made_keys["support"].secret) as http:
        assert "status" in error_of(http.get("/v1/subscriptions?status=bogus"), 422)["message"]
        assert "status" in error_of(http.get("/v1/invoices?status=bogus"), 422)["message"]
        assert "limit" in error_of(http.get("/v1/invoices?limit=500"), 422)["message"]
        after = error_of(http.get("/v1/subscriptions?starting_after=sub_nope"), 422)
        assert "starting_after" in after["message"]


def test_the_openapi_document_lists_the_new_paths(url: str) -> None:
    with client(url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_id}",
        "/v1/subscriptions/{subscription_id}/cancel",
        "/v1/invoices",
        "/v1/invoices/{invoice_id}",
        "/v1/invoices/{invoice_id}/html",
    ):
        assert path in paths, path


async def test_metadata_is_written_with_the_subscription_row(
    postgres_url: str, stripe_gateway: StripeGateway, dev_env: WorkflowEnvironment
) -> None:
    # An engine of the test's own, so only this start's statements are seen.
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)
    customer_id, price_id = helpers.customer_and_price(sessions, stripe_gateway)
    writes: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if re.match(r"\s*(INSERT INTO|UPDATE) subscriptions\b", statement):
            writes.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", record)
    try:
        subscription_id = await subscriptions_service.start_subscription(
            dev_env.client,
            sessions,
            task_queue=f"billing-nobody-{secrets.token_hex(4)}",  # the workflow need only exist
            customer_id=customer_id,
            price_id=price_id,
            metadata={"order": "A-7", "channel": "web"},
        )
    finally:
        event.remove(engine, "before_cursor_execute", record)
    # One INSERT carries the metadata: no second write that could fail after the
    # workflow has started and leave a subscription without it.
    assert writes == ["INSERT"]
    with sessions() as session:
        row = session.get(Subscription, subscription_id)
        assert row is not None
        assert row.metadata_ == {"order": "A-7", "channel": "web"}
    engine.dispose()
