"""The budget on the customer's billing page, in headless Chromium from the link in a real
email: the customer sets a budget (the alert then exists through the API with the same
amount, at 50/80/100 %), the chart draws its line at that amount against this period's
bill before tax (what the alert watches), the thresholds fired this period show when they
fired, the customer changes it and removes it; a wrong amount shows its error beside the
field and stores nothing. Every change is audited as the customer.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.billing_page import read_budget
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import api_keys, customers
from kakin.services.usage import UsageEventIn, ingest
from models.tables import AuditLog
from tests.helpers import advance_to, running, start_subscription
from tests.payments.test_billing_page import (
    ENGLISH,
    JAPANESE,
    app_for,
    as_customer,
    billing_link_in_outbox,
    chart_value,
    metered_item,
)
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow


async def alerts_through_the_api(api: httpx.AsyncClient, subscription_id: str) -> list[Any]:
    answer = await api.get(f"/v1/subscriptions/{subscription_id}/alerts")
    assert answer.status_code == 200, answer.text
    data: list[Any] = answer.json()["data"]
    return data


async def save_budget(page: Any, amount: str, button: str) -> None:
    await page.locator("#budget-amount").fill(amount)
    async with page.expect_navigation():
        await page.get_by_role("button", name=button).click()


async def test_the_customer_sets_changes_and_removes_a_budget_drawn_on_the_chart(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    outbox: Path,
    open_page: OpenPage,
    screenshot: Screenshot,
) -> None:
    subscription_id, start = await start_subscription(
        time_env, pg_sessions, stripe_gateway, task_queue
    )
    metric = metered_item(pg_sessions, subscription_id)
    await advance_to(time_env, start + timedelta(days=1))
    customer_id = as_customer(pg_sessions, subscription_id, ENGLISH)
    now = await time_env.get_current_time()

    def use(first: int, count: int) -> None:
        events = [
            UsageEventIn(event_id=f"call-{n}", metric=metric,
                         timestamp=now - timedelta(minutes=100 - n), properties={},
                         customer_id=customer_id)
            for n in range(first, first + count)
        ]  # fmt: skip
        assert [r.status for r in ingest(pg_sessions, events)] == ["accepted"] * count

    use(0, 5)  # 3 calls past the free 2: 300 on top of the plan's 3,000
    emailed = urlsplit(billing_link_in_outbox(outbox, "receipt"))
    page_path = f"{emailed.path}?{emailed.query}"
    app = app_for(time_env, pg_sessions, stripe_gateway, outbox)
    key = api_keys.create_key(pg_sessions, name="budget test", role="admin").secret
    with running(app) as url:
        bearer = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer) as api:
            page = await open_page(url, locale="en-US")
            await page.goto(page_path)
            budget = page.locator("#budget")
            assert "No budget is set" in await budget.inner_text()
            assert "before tax, discounts included" in await budget.inner_text()
            assert await page.locator('svg.chart [data-bucket="budget"]').count() == 0

            # Wrong amounts: the error beside the field, nothing stored.
            wrong = [
                ("abc", "Please enter a number, such as 5000."),
                ("-500", "A budget cannot be negative."),
                ("0", "Please enter an amount above 0."),
                ("12.5", "That amount has too many decimals for this currency."),
            ]
            for typed, error in wrong:
                await save_budget(page, typed, "Set budget")
                assert await page.locator("#budget-error").inner_text() == error
                invalid = await page.locator("#budget-amount").get_attribute("aria-invalid")
                assert invalid == "true"
                assert await page.locator(".message.error").count() == 0
                assert await alerts_through_the_api(api, subscription_id) == []

            # Set: the alert exists through the API with the same amount.
            await save_budget(page, "5,000", "Set budget")
            assert "Your budget is saved." in await budget.inner_text()
            [alert] = await alerts_through_the_api(api, subscription_id)
            assert (alert["watches"], alert["budget"]) == ("bill", "5000")
            assert [t["percent"] for t in alert["thresholds"]] == ["50", "80", "100"]
            assert await chart_value(page, "budget") == 5000
            # Like with like: this period's bar is what the alert watches (before tax).
            assert await chart_value(page, "so_far") == int(alert["current"]) == 3300
            assert "before tax" in (
                await page.locator("svg.chart").get_attribute("aria-label") or ""
            )
            # 3,300 is past 50 % of 5,000: it fires with the next usage (at ingestion).
            use(5, 1)
            await page.reload()
            [alert] = await alerts_through_the_api(api, subscription_id)
            assert alert["fired"] == ["2500"] and "2500" in alert["fired_at"]
            rows = page.locator("#budget table.levels tbody tr")
            assert await rows.count() == 3
            assert "Sent" in await rows.nth(0).inner_text()
            assert "¥2,500" in await rows.nth(0).inner_text()
            assert "Not reached" in await rows.nth(1).inner_text()
            assert await page.locator("#budget-amount").input_value() == "5000"
            await screenshot(page, "billing-page-budget")
            phone = await open_page(url, locale="en-US", viewport=PHONE)
            await phone.goto(page_path + "#budget")
            assert await horizontal_overflow(phone) == 0
            await screenshot(phone, "billing-page-budget-phone")

            # Change it: the same alert, the new amount, the line moves.
            await save_budget(page, "8000", "Change budget")
            [changed] = await alerts_through_the_api(api, subscription_id)
            assert (changed["id"], changed["budget"]) == (alert["id"], "8000")
            assert await chart_value(page, "budget") == 8000
            # A wrong change stores nothing.
            await save_budget(page, "eight thousand", "Change budget")
            assert await page.locator("#budget-error").is_visible()
            [same] = await alerts_through_the_api(api, subscription_id)
            assert same["budget"] == "8000"

            # In Japanese, on a laptop and a phone.
            customers.update_customer(
                pg_sessions, customer_id, {"locale": JAPANESE.code}, lambda c: c.id
            )
            await page.goto(page_path)
            assert "税抜・割引適用後" in await page.inner_text("#budget")
            assert "8,000円" in await page.inner_text("#budget")
            # The 50 % of the budget before the change fired this period: still listed.
            assert "変更前の基準" in await page.inner_text("#budget table.levels")
            await screenshot(page, "billing-page-budget-ja")
            phone = await open_page(url, locale="ja-JP", viewport=PHONE)
            await phone.goto(page_path + "#budget")
            assert await horizontal_overflow(phone) == 0
            await screenshot(phone, "billing-page-budget-phone-ja")

            # Remove it.
            async with page.expect_navigation():
                await page.get_by_role("button", name="予算を削除").click()
            assert "ご予算を削除しました" in await page.inner_text("#budget")
            assert await alerts_through_the_api(api, subscription_id) == []
            assert await page.locator('svg.chart [data-bucket="budget"]').count() == 0

    with pg_sessions() as session:
        by_customer = select(AuditLog.action).where(AuditLog.actor == f"customer:{customer_id}")
        actions = list(session.scalars(by_customer.order_by(AuditLog.id)))
    assert actions == ["alert_created", "alert_updated", "alert_deleted"]


def test_a_budget_is_read_as_people_write_amounts() -> None:
    assert read_budget("3,980", "JPY") == 3980
    assert read_budget("３９８０円", "JPY") == 3980
    assert read_budget(" ¥5000 ", "JPY") == 5000
    assert read_budget("$12.50", "USD") == 1250
    assert read_budget("12.505", "USD") == "budget.too_precise"
    assert read_budget("", "JPY") == "budget.needed"
    assert read_budget("1e3", "JPY") == 1000
    assert read_budget("NaN", "JPY") == "budget.not_a_number"
    assert read_budget("−20", "JPY") == "budget.negative"
    assert read_budget("9" * 16, "JPY") == "budget.too_large"
