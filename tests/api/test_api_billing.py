"""Usage, taxes, coupons, credit notes and PDFs over HTTP, with a worker billing for real.

The dev server runs in real time, so a renewal is never waited for here: the
upcoming-invoice preview shows what it will bill (the workflow tests check that the
preview and the real invoice agree).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pymupdf
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.worker import Worker

from kakin.services.api_keys import CreatedKey
from tests.api.test_api import CUSTOMER
from tests.helpers import OK_CARD, as_role, error_of, eventually, observe

pytestmark = pytest.mark.devserver


def code(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


async def test_a_metered_subscription_over_http_from_catalog_to_credit_note(
    url: str,
    made_keys: dict[str, CreatedKey],
    module_worker: Worker,
    pg_sessions: sessionmaker[Session],
) -> None:
    async with (
        as_role(url, made_keys, "admin") as admin,
        as_role(url, made_keys, "service") as service,
        as_role(url, made_keys, "support") as support,
    ):
        # The catalog: a metric, a 10% tax, a plan and a graduated price on the metric.
        metric = code("api_calls")
        response = await admin.post(
            "/v1/metrics", json={"code": metric, "name": "API calls", "aggregation": "count"}
        )
        assert response.status_code == 201, response.text
        response = await admin.post(
            "/v1/tax-rates", json={"name": "消費税", "percentage": "10", "jurisdiction": "JP"}
        )
        assert response.status_code == 201, response.text
        tax_rate = response.json()["id"]
        response = await admin.post(
            "/v1/prices",
            json={"product_name": "Pro", "currency": "JPY", "unit_amount": 1000,
                  "tax_rate_ids": [tax_rate]},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        plan = response.json()["id"]
        response = await admin.post(
            "/v1/prices",
            json={
                "product_name": "API", "currency": "JPY", "pricing_model": "graduated",
                "metric": metric, "tax_rate_ids": [tax_rate],
                "tiers": [{"up_to": "2", "unit_amount": "0"},
                          {"up_to": None, "unit_amount": "100"}],
            },
        )  # fmt: skip
        assert response.status_code == 201, response.text
        metered = response.json()["id"]
        assert response.json()["pricing_model"] == "graduated"
        coupon = code("WELCOME")
        response = await admin.post(
            "/v1/coupons",
            json={"code": coupon, "name": "welcome", "duration": "once", "percent_off": "50"},
        )
        assert response.status_code == 201, response.text

        # A service starts the subscription.
        response = await service.post("/v1/customers", json={**CUSTOMER, "card_number": OK_CARD})
        customer = response.json()["id"]
        response = await service.post(
            "/v1/subscriptions", json={"customer_id": customer, "price_id": plan}
        )
        assert response.status_code == 201, response.text
        subscription = response.json()["id"]
        # The first invoice (the plan, 1,000 + 10%) is paid.
        await eventually(
            lambda: [i.status for i in observe(pg_sessions, subscription).invoices] == ["paid"],
            what="the first invoice paid",
        )
        first = observe(pg_sessions, subscription).invoices[0]
        assert (first.total, first.tax_total) == (1100, 100)
        # From the next invoice on: a metered price and a coupon.
        response = await service.post(
            f"/v1/subscriptions/{subscription}/items", json={"price_id": metered}
        )
        assert response.status_code == 201, response.text
        response = await service.post(
            f"/v1/subscriptions/{subscription}/discounts", json={"code": coupon}
        )
        assert response.status_code == 201, response.text

        # Usage: good events kept, bad ones refused with their reasons, replays counted once.
        now = datetime.now(UTC)
        events: list[dict[str, Any]] = [
            {"event_id": f"call-{n}", "metric": metric, "timestamp": now.isoformat(),
             "customer_id": customer}
            for n in range(5)
        ]  # fmt: skip
        events += [
            {"event_id": "late", "metric": metric,
             "timestamp": (now - timedelta(days=40)).isoformat(), "customer_id": customer},
            {"event_id": "odd", "metric": "no_such_metric", "timestamp": now.isoformat(),
             "customer_id": customer},
        ]  # fmt: skip
        response = await service.post("/v1/usage", json={"events": events})
        assert response.status_code == 200, response.text
        receipt = response.json()
        assert (receipt["accepted"], receipt["duplicates"], receipt["rejected"]) == (5, 0, 2)
        reasons = {r["event_id"]: r["reason"] for r in receipt["results"]}
        assert "outside the open period" in reasons["late"]
        assert reasons["odd"] == "unknown metric 'no_such_metric'"
        response = await service.post("/v1/usage", json=events[0])  # one event, sent again
        assert response.json()["duplicates"] == 1

        response = await support.get(f"/v1/subscriptions/{subscription}/usage")
        assert response.status_code == 200, response.text
        usage = response.json()
        assert [(line["usage_quantity"], line["amount"]) for line in usage["lines"]] == [("5", 300)]
        # The next invoice: the plan 1,000 and 3 calls beyond the free 2 at 100, halved
        # by the coupon, then 10%: (1,000 + 300) x 50% = 650 + 65 = 715.
        response = await support.get(f"/v1/subscriptions/{subscription}/upcoming-invoice")
        assert response.status_code == 200, response.text
        upcoming = response.json()
        assert [line["kind"] for line in upcoming["lines"]] == [
            "subscription", "usage", "discount",
        ]  # fmt: skip
        assert (upcoming["subtotal"], upcoming["discount_total"]) == (1300, 650)
        assert (upcoming["tax_total"], upcoming["total"]) == (65, 715)
        assert upcoming["taxes"][0]["taxable"] == 650

        # Support credits 300 of the paid first invoice to the customer's balance.
        response = await service.post(
            f"/v1/invoices/{first.id}/credit-notes",
            json={"reason": "order_change", "method": "credit", "amount": 300},
        )
        error_of(response, 403)
        response = await support.post(
            f"/v1/invoices/{first.id}/credit-notes",
            json={"reason": "order_change", "method": "credit", "amount": 300,
                  "memo": "goodwill"},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        assert response.json()["number"].startswith("CN-")
        response = await support.post(
            f"/v1/invoices/{first.id}/credit-notes",
            json={"reason": "order_change", "method": "credit", "amount": 801},
        )
        assert "only 800" in error_of(response, 409)["message"]
        response = await support.get(f"/v1/subscriptions/{subscription}/upcoming-invoice")
        assert (response.json()["credit_applied"], response.json()["amount_due"]) == (300, 415)

        # The invoice as a PDF.
        response = await service.get(f"/v1/invoices/{first.id}/pdf")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        text = pymupdf.open(stream=response.content, filetype="pdf")[0].get_text()
        assert first.number is not None and first.number in text
        assert "1,100円" in text

        # Canceled at the period end, nothing renews: the next invoice is the last
        # period's usage alone, issued when it ends (no plan fee for a period not had):
        # 300 of calls, halved by the coupon, + 10% = 165, all paid by the 300 of credit.
        response = await support.post(
            f"/v1/subscriptions/{subscription}/cancel",
            json={"reason": "moving to a yearly contract", "at_period_end": True},
        )
        assert response.status_code == 202, response.text
        live = f"/v1/subscriptions/{subscription}"
        for _ in range(50):  # the cancel is a signal: the workflow takes it in a moment
            if (await support.get(live)).json()["live"]["next_action"] == "end":
                break
            await asyncio.sleep(0.1)
        response = await support.get(f"{live}/upcoming-invoice")
        assert response.status_code == 200, response.text
        last = response.json()
        assert [line["kind"] for line in last["lines"]] == ["usage", "discount"]
        assert (last["total"], last["credit_applied"], last["amount_due"]) == (165, 165, 0)
        assert datetime.fromisoformat(last["period_end"]) == first.period_end
        assert datetime.fromisoformat(last["issued_at"]) == first.period_end


async def test_usage_and_catalog_errors_say_what_is_wrong(
    url: str, made_keys: dict[str, CreatedKey]
) -> None:
    async with (
        as_role(url, made_keys, "admin") as admin,
        as_role(url, made_keys, "service") as service,
    ):
        response = await service.post(
            "/v1/metrics", json={"code": code("m"), "name": "m", "aggregation": "count"}
        )
        error_of(response, 403)
        response = await admin.post(
            "/v1/metrics", json={"code": code("m"), "name": "m", "aggregation": "median"}
        )
        assert "aggregation" in error_of(response, 422)["message"]
        response = await admin.post(
            "/v1/metrics", json={"code": code("m"), "name": "m", "aggregation": "sum"}
        )
        assert "needs the property" in error_of(response, 422)["message"]
        response = await admin.post(
            "/v1/coupons",
            json={"code": code("C"), "name": "c", "duration": "once", "amount_off": 100},
        )
        assert "currency" in error_of(response, 422)["message"]
        response = await service.post(
            "/v1/usage",
            json={"events": [{"event_id": "x", "metric": "m",
                              "timestamp": "2026-11-01T00:00:00Z"}] * 1001},
        )  # fmt: skip
        assert "1000" in error_of(response, 422)["message"]
        response = await service.post(
            "/v1/usage", json={"event_id": "x", "metric": "m", "timestamp": "2026-11-01T00:00:00"}
        )
        assert "timezone" in error_of(response, 422)["message"].lower()
        response = await service.get("/v1/subscriptions/sub_missing/upcoming-invoice")
        assert "sub_missing" in error_of(response, 404)["message"]
        response = await service.get("/v1/invoices/in_missing/pdf")
        assert "in_missing" in error_of(response, 404)["message"]
        response = await service.post(
            "/v1/subscriptions/sub_missing/discounts", json={"code": "NOPE"}
        )
        error_of(response, 404)
        response = await service.post("/v1/usage", json={"events": []})
        error_of(response, 422)
        async with as_role(url, made_keys, "service") as anonymous:
            anonymous.headers.pop("Authorization")
            error_of(await anonymous.post("/v1/usage", json={"events": []}), 401)
