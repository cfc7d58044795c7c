"""Plan changes over HTTP (preview and change_plan), against the dev server and a worker."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.worker import Worker

from kakin.services.api_keys import CreatedKey
from models.tables import Subscription
from tests.api.test_api import PRICE
from tests.api.test_api_subscriptions import customer_and_price, stored_subscription
from tests.helpers import as_role, client, error_of, eventually

pytestmark = pytest.mark.devserver


def new_price(url: str, made_keys: dict[str, CreatedKey], **fields: Any) -> str:
    with client(url, made_keys["admin"].secret) as http:
        response = http.post("/v1/prices", json={**PRICE, **fields})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


async def test_upgrade_now_and_downgrade_at_the_period_end(
    url: str, made_keys: dict[str, CreatedKey], module_worker: Worker
) -> None:
    customer_id, price_id = customer_and_price(url, made_keys)  # 3980 JPY a month
    dearer = new_price(url, made_keys, nickname="dearer", unit_amount=5980)
    cheaper = new_price(url, made_keys, nickname="cheaper", unit_amount=1980)
    dollars = new_price(url, made_keys, nickname="dollars", currency="USD", unit_amount=30)
    async with (
        as_role(url, made_keys, "service") as service,
        as_role(url, made_keys, "support") as support,
    ):
        created = await service.post(
            "/v1/subscriptions", json={"customer_id": customer_id, "price_id": price_id}
        )
        assert created.status_code == 201, created.text
        subscription_id = created.json()["id"]
        path = f"/v1/subscriptions/{subscription_id}"

        async def invoice_statuses() -> list[str]:
            listed = await support.get("/v1/invoices", params={"subscription_id": subscription_id})
            return [i["status"] for i in listed.json()["data"]]

        async def first_paid() -> bool:
            return await invoice_statuses() == ["paid"]

        await eventually(first_paid, timeout=30, what="the first invoice paid")

        # the preview changes nothing; a service key may ask
        preview = await service.get(f"{path}/change_plan/preview", params={"price_id": dearer})
        assert preview.status_code == 200, preview.text
        up = preview.json()
        assert (up["price_id"], up["applies"], up["currency"]) == (dearer, "now", "JPY")
        assert up["net"] > 0
        assert up["net"] == up["charge"] - up["credit"]
        assert 0 < up["credit"] <= 3980 and 0 < up["charge"] <= 5980
        down = await support.get(f"{path}/change_plan/preview", params={"price_id": cheaper})
        assert down.status_code == 200, down.text
        assert down.json() == {
            "object": "plan_change_preview",
            "price_id": cheaper,
            "applies": "at_period_end",
            "credit": 0,
            "charge": 0,
            "net": 0,
            "currency": "JPY",
        }
        other = await service.get(f"{path}/change_plan/preview", params={"price_id": dollars})
        assert error_of(other, 422)["message"] == (
            "Price is in USD but the subscription is billed in JPY."
        )
        missing = await service.get(f"{path}/change_plan/preview", params={"price_id": "price_x"})
        assert error_of(missing, 404)["message"] == "Price 'price_x' does not exist."
        no_param = await service.get(f"{path}/change_plan/preview")
        assert "price_id" in error_of(no_param, 422)["message"]

        # refusals before anything changes
        wrong_currency = await service.post(
            f"{path}/change_plan", json={"price_id": dollars, "reason": "r"}
        )
        assert error_of(wrong_currency, 422)["message"] == (
            "Price is in USD but the subscription is billed in JPY."
        )
        unknown = await service.post(f"{path}/change_plan", json={"price_id": "price_nope"})
        assert error_of(unknown, 404)["message"] == "Price 'price_nope' does not exist."
        no_grace = await support.post(f"{path}/grace", json={"days": 3, "reason": "r"})
        assert error_of(no_grace, 409)["message"] == (
            "A grace period is for a subscription in dunning; nothing is overdue."
        )

        # upgrade: now, with a prorated invoice charged at once
        headers = {"Idempotency-Key": f"upgrade-{subscription_id}"}
        body = {"price_id": dearer, "reason": "needs more seats"}
        upgraded = await service.post(f"{path}/change_plan", json=body, headers=headers)
        assert upgraded.status_code == 200, upgraded.text
        view = upgraded.json()
        assert view["object"] == "subscription_status"
        assert (view["price_id"], view["pending_price_id"], view["status"]) == (
            dearer,
            None,
            "active",
        )
        replayed = await service.post(f"{path}/change_plan", json=body, headers=headers)
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.json() == view

        async def proration_paid() -> bool:
            return await invoice_statuses() == ["paid", "paid"]

        await eventually(proration_paid, timeout=30, what="the proration invoice paid")
        listed = await support.get("/v1/invoices", params={"subscription_id": subscription_id})
        proration = listed.json()["data"][0]
        assert 0 < proration["total"] <= up["net"] + 1  # a moment later: at most the preview

        again = await service.post(f"{path}/change_plan", json={"price_id": dearer})
        assert error_of(again, 409)["message"] == f"The subscription is already on {dearer}."

        # downgrade: waits for the end of the paid period
        downgraded = await support.post(
            f"{path}/change_plan", json={"price_id": cheaper, "reason": "fewer seats"}
        )
        assert downgraded.status_code == 200, downgraded.text
        assert (downgraded.json()["price_id"], downgraded.json()["pending_price_id"]) == (
            dearer,
            cheaper,
        )
        assert await invoice_statuses() == ["paid", "paid"]

        canceled = await support.post(f"{path}/cancel", json={"reason": "end of the test"})
        assert canceled.status_code == 202, canceled.text


def test_service_keys_may_not_grant_grace(url: str, made_keys: dict[str, CreatedKey]) -> None:
    with client(url, made_keys["service"].secret) as http:
        response = http.post("/v1/subscriptions/sub_x/grace", json={"days": 3, "reason": "r"})
    assert error_of(response, 403)["message"] == (
        "A service key may not call POST /v1/subscriptions/sub_x/grace; "
        "this needs a key with the role admin or support."
    )


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "change_plan", {"price_id": "price_x"}),
        ("GET", "change_plan/preview?price_id=price_x", None),
        ("POST", "grace", {"days": 3, "reason": "r"}),
    ],
    ids=["change_plan", "preview", "grace"],
)
def test_unknown_subscriptions_are_404(
    url: str, made_keys: dict[str, CreatedKey], method: str, path: str, body: Any
) -> None:
    with client(url, made_keys["support"].secret) as http:
        response = http.request(method, f"/v1/subscriptions/sub_unknown/{path}", json=body)
    assert error_of(response, 404)["message"] == "Subscription 'sub_unknown' does not exist."


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("change_plan", {}, "price_id is required."),
        ("change_plan", {"price_id": ""}, "price_id"),
        ("change_plan", {"price_id": "p", "when": "now"}, "when is not an accepted field."),
        ("grace", {"reason": "r"}, "days is required."),
        ("grace", {"days": 0, "reason": "r"}, "days"),
        ("grace", {"days": 61, "reason": "r"}, "days"),
        ("grace", {"days": "soon", "reason": "r"}, "days"),
        ("grace", {"days": 3}, "reason is required."),
        ("grace", {"days": 3, "reason": "  "}, "reason"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(
    url: str,
    made_keys: dict[str, CreatedKey],
    pg_sessions: sessionmaker[Session],
    path: str,
    body: dict[str, Any],
    message: str,
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    with client(url, made_keys["admin"].secret) as http:
        response = http.post(f"/v1/subscriptions/{subscription_id}/{path}", json=body)
    assert message in error_of(response, 422)["message"]


@pytest.mark.parametrize("path", ["change_plan", "grace"])
def test_a_subscription_whose_workflow_has_ended_is_409(
    url: str, made_keys: dict[str, CreatedKey], pg_sessions: sessionmaker[Session], path: str
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    with pg_sessions() as session:
        price_id = session.get_one(Subscription, subscription_id).price_id
    body = {"price_id": price_id} if path == "change_plan" else {"days": 3, "reason": "r"}
    with client(url, made_keys["admin"].secret) as http:
        response = http.post(f"/v1/subscriptions/{subscription_id}/{path}", json=body)
    assert error_of(response, 409)["message"] == (
        f"Subscription {subscription_id!r} has ended; its workflow no longer runs."
    )


def test_the_openapi_document_lists_the_plan_endpoints(url: str) -> None:
    with client(url) as http:
        paths = http.get("/openapi.json").json()["paths"]
    assert "post" in paths["/v1/subscriptions/{subscription_id}/change_plan"]
    assert "get" in paths["/v1/subscriptions/{subscription_id}/change_plan/preview"]
    assert "post" in paths["/v1/subscriptions/{subscription_id}/grace"]
