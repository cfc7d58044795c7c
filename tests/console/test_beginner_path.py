"""The beginner's path, end to end in Chromium, clicking and typing as a person does: an
admin sets up a 10 % consumption tax and a monthly yen price on the catalog pages, adds a
customer with the test card, starts a subscription from the customer's page and sees its
first invoice paid, its tax on its own line; then support cancels it with a reason, and
the reason and the staff member are found in the audit log (``GET /v1/audit-log``) and
on the customer's timeline.

Only the assertions read back, through the API and the services; every step of the
path itself goes through the pages. Awaiting the browser yields to the event loop, so
the module's worker (on that loop) bills the subscription and answers the status
queries the subscription page makes while the test waits.
"""

from __future__ import annotations

import asyncio
import re
import secrets

import httpx
import pytest
from playwright.async_api import Page

from kakin.services import api_keys, catalog
from kakin.services import subscriptions as subscription_service
from kakin.views.catalog import PriceOut, TaxRateOut
from kakin.views.subscriptions import SubscriptionOut
from tests.console.office import Office
from tests.helpers import eventually
from tests.support.browser import OpenPage, Screenshot

pytestmark = pytest.mark.devserver

REASON = "お客様から電話で解約の依頼（他社へ移行）"


async def created_id(page: Page, kind: str) -> str:
    """The id the catalog's list page was sent to after a form (``?created=<id>#kind``)."""
    await page.wait_for_url(re.compile(rf".*/console/catalog\?created=[\w-]+#{kind}$"))
    found = re.search(r"created=([\w-]+)", page.url)
    assert found, page.url
    return found.group(1)


async def until_on_page(page: Page, selector: str, what: str, timeout: float = 40) -> None:
    """Reload ``page`` until ``selector`` shows, as a person refreshing it would."""

    async def shown() -> bool:
        if await page.locator(selector).count():
            return True
        await page.reload()
        await asyncio.sleep(0.3)
        return False

    await eventually(shown, timeout=timeout, what=what)


async def test_a_beginner_sets_up_a_plan_bills_a_customer_and_support_cancels_with_a_reason(
    office: Office, open_page: OpenPage, screenshot: Screenshot
) -> None:
    admin = await office.page(open_page, "admin", "/console/catalog")

    # 1. A tax rate: 消費税 10 %.
    await admin.get_by_role("link", name="New tax rate").click()
    await admin.wait_for_url("**/console/catalog/tax-rates/new")
    await admin.fill("#f-name", "消費税")
    await admin.fill("#f-percentage", "10")
    await screenshot(admin, "console-path-1-tax-rate")
    await admin.get_by_role("button", name="Create tax rate").click()
    rate_id = await created_id(admin, "tax-rates")
    rate = catalog.get_tax_rate(office.sessions, rate_id, TaxRateOut.of)
    assert (rate.name, rate.percentage, rate.inclusive) == ("消費税", "10", False)
    assert "10%" in await admin.locator(f'tr[data-id="{rate_id}"]').inner_text()

    # 2. A monthly yen price with that tax.
    product = f"スタンダード {secrets.token_hex(3)}"
    await admin.get_by_role("link", name="New price").click()
    await admin.wait_for_url("**/console/catalog/prices/new")
    await admin.fill("#f-product_name", product)
    await admin.fill("#f-nickname", "月額")
    assert await admin.locator("#f-currency").input_value() == "JPY"  # the form's defaults
    assert await admin.locator("#f-interval").input_value() == "month"
    await admin.check("input[name=pricing_model][value=flat]")
    await admin.fill("#f-unit_amount", "3,980")
    await admin.check(f'input[name="tax_rate-{rate_id}"]')
    await screenshot(admin, "console-path-2-price")
    await admin.get_by_role("button", name="Create price").click()
    price_id = await created_id(admin, "prices")
    price = catalog.get_price(office.sessions, price_id, PriceOut.of)
    assert (price.product.name, price.currency, price.unit_amount, price.interval) == (
        product, "JPY", 3980, "month",
    )  # fmt: skip
    assert price.tax_rate_ids == [rate_id]
    listed = await admin.locator(f'tr[data-id="{price_id}"]').inner_text()
    assert "¥3,980" in listed and "消費税 10%" in listed

    # 3. A customer with the test card that pays.
    await admin.get_by_role("link", name="Customers").first.click()
    await admin.get_by_role("link", name="Add a customer").click()
    email = f"beginner-{secrets.token_hex(3)}@example.jp"
    await admin.fill("#name", "初心 花子")
    await admin.fill("#email", email)
    await admin.select_option("#locale", "ja")
    await admin.select_option("#currency", "JPY")
    await admin.fill("#time_zone", "Asia/Tokyo")
    await admin.get_by_label("4242 4242 4242 4242: payments succeed").check()
    await screenshot(admin, "console-path-3-customer-new")
    await admin.get_by_role("button", name="Add the customer").click()
    await admin.wait_for_url(re.compile(r".*/console/customers/cus_[0-9a-f]+$"))
    customer_path = admin.url.removeprefix(office.url)
    customer_id = customer_path.rsplit("/", 1)[1]
    assert await admin.locator("h1.customer-name").inner_text() == "初心 花子"
    assert await admin.locator(".card-on-file").inner_text() == "Visa ending in 4242"
    await screenshot(admin, "console-path-3-customer")

    # 4. A subscription, started from the customer's page.
    await admin.locator("#subscriptions").get_by_role("link", name="Start a subscription").click()
    await admin.wait_for_url(f"**/console/subscriptions/new?customer={customer_id}")
    assert await admin.locator("#customer_id").input_value() == customer_id
    await admin.select_option("#price_id", price_id)
    await screenshot(admin, "console-path-4-subscription-new")
    await admin.get_by_role("button", name="Start the subscription").click()
    await admin.wait_for_url(re.compile(r".*/console/subscriptions/sub_\w+\?done=start$"))
    found = re.search(r"/console/subscriptions/(sub_\w+)", admin.url)
    assert found, admin.url
    subscription_id = found.group(1)
    subscription_path = f"/console/subscriptions/{subscription_id}"
    assert await admin.locator("h1").inner_text() == f"初心 花子 · {product} · 月額"

    # 5. Its first invoice paid: 3,980円 and 10 % tax, 4,378円.
    await until_on_page(admin, ".badge-inv-paid", "the first invoice paid on the page")
    first = admin.locator("table.list tbody tr").filter(has=admin.locator(".badge-inv-paid"))
    assert "¥4,378" in await first.first.inner_text()
    assert await admin.locator("h1 + .badge, .heading .badge").first.inner_text() == "Active"
    await screenshot(admin, "console-path-5-first-invoice-paid")
    await first.first.get_by_role("link").click()  # the invoice itself: its tax and total
    await admin.wait_for_url(re.compile(r".*/console/invoices/in_\w+$"))
    assert await admin.locator(".badges .badge").first.inner_text() == "Paid"
    assert "¥398" in await admin.locator("table.totals tr.tax").inner_text()
    assert "¥4,378" in await admin.locator("table.totals tr.grand").first.inner_text()
    framed = admin.frame_locator("iframe.document").locator("body")  # as the customer sees it
    assert "4,378" in await framed.inner_text()
    await screenshot(admin, "console-path-5-invoice")

    # 6. Support cancels it now, with a reason.
    support = await office.page(open_page, "support", subscription_path)
    await support.check("form[action$='/cancel'] input[name=when][value=now]")
    await support.fill("#cancel-reason", REASON)
    await screenshot(support, "console-path-6-cancel")
    await support.get_by_role("button", name="Cancel the subscription").click()
    await support.wait_for_url(re.compile(rf".*{subscription_path}\?done=cancel\w*$"))
    await until_on_page(support, ".heading .badge-canceled", "the subscription canceled")
    # Its history, with why: the audit row is written as the workflow records the cancel.
    await until_on_page(support, f'td.wrap:text-is("{REASON}")', "the reason in its history")
    await screenshot(support, "console-path-6-canceled")

    def stored_status() -> str:
        row = subscription_service.get_subscription(
            office.sessions, subscription_id, SubscriptionOut.of
        )
        return row.status

    await eventually(lambda: stored_status() == "canceled", timeout=20, what="canceled, stored")

    # 7. The reason and the staff member, in the audit log through the API...
    staff_actor = office.members["support"].member.actor
    key = api_keys.create_key(office.sessions, name="beginner path", role="admin").secret

    def audit_log() -> list[dict[str, object]]:
        answer = httpx.get(
            f"{office.url}/v1/audit-log", params={"subscription_id": subscription_id},
            headers={"Authorization": f"Bearer {key}"}, timeout=30,
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        entries: list[dict[str, object]] = answer.json()["data"]
        return entries

    entries = await asyncio.to_thread(audit_log)
    by_support = [e for e in entries if e["actor"] == staff_actor]
    assert by_support and all(e["reason"] == REASON for e in by_support), entries
    assert {e["entity_id"] for e in by_support} == {subscription_id}

    # ... and on the customer's timeline, in the page.
    await support.locator("dl.facts").get_by_role("link", name="初心 花子").click()
    await support.wait_for_url(f"**{customer_path}")
    canceled = support.locator("#timeline li.event").filter(has_text="Subscription canceled")
    assert await canceled.count() >= 1
    said = await canceled.first.inner_text()
    assert REASON in said and staff_actor in said
    assert "MRR ¥3,980 → ¥0" in said
    listed = await support.locator("#subscriptions tbody tr").first.inner_text()
    assert f"{product} · 月額" in listed and "canceled" in listed
    paid = support.locator("#timeline li.event").filter(has_text="Invoice paid")
    assert "¥4,378" in await paid.first.inner_text()
    await support.locator("#timeline").scroll_into_view_if_needed()
    await screenshot(support, "console-path-7-timeline")
