"""Dunning over HTTP: grace, retry, void and write-off (support and admin keys)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.worker import Worker

from kakin.services.api_keys import CreatedKey
from models.tables import Invoice
from tests.api.test_api import CUSTOMER, PRICE
from tests.api.test_api_subscriptions import stored_subscription
from tests.helpers import DECLINED_CARD, as_role, client, error_of, eventually

pytestmark = pytest.mark.devserver


def declined_customer_and_price(url: str, made_keys: dict[str, CreatedKey]) -> tuple[str, str]:
    with client(url, made_keys["service"].secret) as http:
        response = http.post("/v1/customers", json={**CUSTOMER, "card_number": DECLINED_CARD})
        assert response.status_code == 201, response.text
        customer_id = response.json()["id"]
    with client(url, made_keys["admin"].secret) as http:
        response = http.post("/v1/prices", json=PRICE)
        assert response.status_code == 201, response.text
        price_id = response.json()["id"]
    return customer_id, price_id


async def past_due(http: httpx.AsyncClient, url: str, made_keys: dict[str, CreatedKey]) -> str:
    """A subscription whose first charge was declined; returns its id once past_due."""
    customer_id, price_id = declined_customer_and_price(url, made_keys)
    created = await http.post(
        "/v1/subscriptions", json={"customer_id": customer_id, "price_id": price_id}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def live(http: httpx.AsyncClient, subscription_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/subscriptions/{subscription_id}")
    assert response.status_code == 200, response.text
    return dict(response.json()["live"] or {})


async def test_support_acts_on_invoices_in_dunning(
    url: str, made_keys: dict[str, CreatedKey], module_worker: Worker
) -> None:
    async with (
        as_role(url, made_keys, "admin") as admin,
        as_role(url, made_keys, "support") as support,
    ):
        first = await past_due(admin, url, made_keys)
        second = await past_due(admin, url, made_keys)

        async def both_past_due() -> bool:
            states = [(await live(support, s)).get("status") for s in (first, second)]
            return states == ["past_due", "past_due"]

        await eventually(both_past_due, timeout=40, what="both subscriptions past_due")
        before = await live(support, first)
        invoice_id = before["outstanding_invoice"]["invoice_id"]
        assert before["next_action"] and before["next_action_at"]

        # grace: the next dunning step moves by the days given
        graced = await support.post(
            f"/v1/subscriptions/{first}/grace", json={"days": 5, "reason": "salary on Friday"}
        )
        assert graced.status_code == 200, graced.text
        moved = datetime.fromisoformat(graced.json()["next_action_at"])
        assert moved - datetime.fromisoformat(before["next_action_at"]) == timedelta(days=5)
        assert graced.json()["status"] == "past_due"

        # retry: charged again at once (declined again)
        async def declined_attempts() -> int:
            customer = (await support.get(f"/v1/subscriptions/{first}")).json()["customer_id"]
            listed = await support.get(f"/v1/customers/{customer}/payments")
            return sum(
                1
                for p in listed.json()["data"]
                if p["invoice_id"] == invoice_id and p["status"] == "declined"
            )

        async def one_decline() -> bool:
            return await declined_attempts() == 1

        async def two_declines() -> bool:
            return await declined_attempts() == 2

        await eventually(one_decline, timeout=20, what="the first decline")
        retried = await support.post(f"/v1/invoices/{invoice_id}/retry")
        assert retried.status_code == 202, retried.text
        assert retried.json()["retrying"] is True
        assert retried.json()["invoice_id"] == invoice_id
        await eventually(two_declines, timeout=30, what="a second declined attempt")

        # void: the invoice is void and the subscription active again
        headers = {"Idempotency-Key": f"void-{invoice_id}"}
        body = {"reason": "goodwill after an outage"}
        voided = await support.post(f"/v1/invoices/{invoice_id}/void", json=body, headers=headers)
        assert voided.status_code == 200, voided.text
        assert (voided.json()["id"], voided.json()["status"]) == (invoice_id, "void")
        assert voided.json()["lines"]
        replayed = await support.post(f"/v1/invoices/{invoice_id}/void", json=body, headers=headers)
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json() == voided.json()
        after = await live(support, first)
        assert (after["status"], after["outstanding_invoice"]) == ("active", None)

        again = await support.post(f"/v1/invoices/{invoice_id}/void", json=body)
        assert error_of(again, 409)["message"] == (
            f"Invoice {invoice_id!r} is not the one in collection; "
            "only an invoice in dunning can be voided."
        )
        no_retry = await support.post(f"/v1/invoices/{invoice_id}/retry")
        assert error_of(no_retry, 409)["message"] == (
            f"Invoice {invoice_id!r} is not the one in collection; "
            "only an invoice in dunning can be retried."
        )

        # mark_uncollectible on the other one (an admin key may too)
        other = (await live(support, second))["outstanding_invoice"]["invoice_id"]
        written_off = await admin.post(
            f"/v1/invoices/{other}/mark_uncollectible", json={"reason": "customer gone"}
        )
        assert written_off.status_code == 200, written_off.text
        assert written_off.json()["status"] == "uncollectible"
        assert (await live(support, second))["status"] == "active"

        for subscription_id in (first, second):
            canceled = await support.post(
                f"/v1/subscriptions/{subscription_id}/cancel", json={"reason": "end of the test"}
            )
            assert canceled.status_code == 202, canceled.text


async def test_a_paid_invoice_cannot_be_voided(
    url: str,
    made_keys: dict[str, CreatedKey],
    pg_sessions: sessionmaker[Session],
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    invoice_id = f"in_{subscription_id}"
    with pg_sessions() as session:
        session.get_one(Invoice, invoice_id).status = "paid"
        session.commit()
    async with as_role(url, made_keys, "support") as support:
        for action, done in [
            ("void", "voided"),
            ("mark_uncollectible", "marked uncollectible"),
            ("retry", "retried"),
        ]:
            response = await support.post(
                f"/v1/invoices/{invoice_id}/{action}", json={"reason": "r"}
            )
            assert error_of(response, 409) == {
                "type": "conflict",
                "message": f"Invoice {invoice_id!r} is not the one in collection; "
                f"only an invoice in dunning can be {done}.",
            }


@pytest.mark.parametrize("action", ["void", "mark_uncollectible"])
def test_an_open_invoice_whose_workflow_has_ended_is_409(
    url: str, made_keys: dict[str, CreatedKey], pg_sessions: sessionmaker[Session], action: str
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    invoice_id = f"in_{subscription_id}"
    with pg_sessions() as session:
        session.get_one(Invoice, invoice_id).status = "open"
        session.commit()
    with client(url, made_keys["support"].secret) as http:
        response = http.post(f"/v1/invoices/{invoice_id}/{action}", json={"reason": "r"})
    assert error_of(response, 409)["message"] == (
        f"Subscription {subscription_id!r} has ended; its workflow no longer runs."
    )


@pytest.mark.parametrize("action", ["void", "mark_uncollectible", "retry"])
def test_service_keys_may_not_act_on_invoices(
    url: str, made_keys: dict[str, CreatedKey], action: str
) -> None:
    with client(url, made_keys["service"].secret) as http:
        response = http.post(f"/v1/invoices/in_x/{action}", json={"reason": "r"})
    assert error_of(response, 403)["message"] == (
        f"A service key may not call POST /v1/invoices/in_x/{action}; "
        "this needs a key with the role admin or support."
    )


@pytest.mark.parametrize("action", ["void", "mark_uncollectible", "retry"])
def test_unknown_invoices_are_404(url: str, made_keys: dict[str, CreatedKey], action: str) -> None:
    with client(url, made_keys["support"].secret) as http:
        response = http.post(f"/v1/invoices/in_unknown/{action}", json={"reason": "r"})
    assert error_of(response, 404) == {
        "type": "not_found",
        "message": "Invoice 'in_unknown' does not exist.",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "reason is required."),
        ({"reason": "  "}, "reason"),
        ({"reason": "r", "refund": True}, "refund is not an accepted field."),
    ],
)
def test_a_void_needs_a_reason(
    url: str, made_keys: dict[str, CreatedKey], body: dict[str, Any], message: str
) -> None:
    with client(url, made_keys["support"].secret) as http:
        response = http.post("/v1/invoices/in_x/void", json=body)
    assert message in error_of(response, 422)["message"]


def test_the_openapi_document_lists_the_invoice_actions(url: str) -> None:
    with client(url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    for action in ("void", "mark_uncollectible", "retry"):
        assert "post" in paths[f"/v1/invoices/{{invoice_id}}/{action}"]
