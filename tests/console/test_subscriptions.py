"""Subscriptions in the console: start one from the form and see it billed, the live
status and the Temporal UI link, and the support actions with their required reason,
against the dev server, localstripe and the office's worker."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, staff
from kakin.services import subscriptions as subscription_service
from kakin.services.staff import Origin
from kakin.views.subscriptions import SubscriptionOut
from models.tables import AuditLog
from tests.console.browsing import PASSWORD, csrf, enrol
from tests.console.office import Office
from tests.helpers import DECLINED_CARD, OK_CARD, customer_and_price, eventually
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

pytestmark = pytest.mark.devserver


def start_in_console(client: httpx.Client, customer_id: str, price_id: str) -> str:
    """Fill in and send the start form as a person does; the new subscription's id."""
    form = client.get(f"/console/subscriptions/new?customer={customer_id}")
    assert form.status_code == 200, form.text
    assert f'value="{customer_id}"' in form.text  # prefilled from ?customer=
    started = client.post(
        "/console/subscriptions/new",
        data={"csrf_token": csrf(form.text), "customer_id": customer_id, "price_id": price_id,
              "quantity": "1", "trial_days": "0"},
    )  # fmt: skip
    assert started.status_code == 303, started.text
    found = re.fullmatch(
        r"/console/subscriptions/(sub_\w+)\?done=start", started.headers["location"]
    )
    assert found, started.headers["location"]
    return found.group(1)


# The worker runs on the test's event loop: a page that asks the workflow (its status
# query, an update) is fetched from a thread, so the loop stays free to answer it.
async def get(client: httpx.Client, path: str) -> httpx.Response:
    return await asyncio.to_thread(client.get, path)


async def post(client: httpx.Client, path: str, data: dict[str, Any]) -> httpx.Response:
    return await asyncio.to_thread(client.post, path, data=data)


async def act(
    client: httpx.Client, subscription_id: str, action: str, **fields: str
) -> httpx.Response:
    """Send one of the page's action forms (its CSRF token) as a person does."""
    page = await get(client, f"/console/subscriptions/{subscription_id}")
    assert page.status_code == 200, page.text
    return await post(
        client, f"/console/subscriptions/{subscription_id}/{action}",
        {"csrf_token": csrf(page.text), **fields},
    )  # fmt: skip


def stored(office: Office, subscription_id: str) -> SubscriptionOut:
    return subscription_service.get_subscription(
        office.sessions, subscription_id, SubscriptionOut.of
    )


def audit_rows(sessions: sessionmaker[Session], entity_id: str) -> list[AuditLog]:
    with sessions() as session:
        return list(
            session.scalars(
                select(AuditLog).where(AuditLog.entity_id == entity_id).order_by(AuditLog.id)
            )
        )


async def first_invoice_paid(client: httpx.Client, subscription_id: str) -> None:
    async def paid() -> bool:
        page = await get(client, f"/console/subscriptions/{subscription_id}")
        return 'class="badge badge-inv-paid"' in page.text

    await eventually(paid, timeout=40, what="the first invoice paid on the page")


@pytest.fixture
def started(office: Office, stripe_gateway: StripeGateway) -> tuple[str, str]:
    """A customer's subscription started from the console's form, and its customer."""
    customer_id, price_id = customer_and_price(office.sessions, stripe_gateway, card=OK_CARD)
    return start_in_console(office.client("support"), customer_id, price_id), customer_id


async def test_a_subscription_started_from_the_form_is_billed_and_shown_live(
    office: Office, started: tuple[str, str]
) -> None:
    subscription_id, customer_id = started
    support = office.client("support")
    await first_invoice_paid(support, subscription_id)
    page = await get(support, f"/console/subscriptions/{subscription_id}")
    text = page.text
    assert "The subscription has started" not in text  # the notice is for the redirect only
    assert 'class="badge badge-active"' in text
    assert re.search(r'href="/console/invoices/in_\w+"', text)
    assert "3,000" in text and "Renew and charge" in text  # the live status's next action
    assert f'href="/console/customers/{customer_id}"' in text
    link = f"http://localhost:8233/namespaces/default/workflows/subscription-{subscription_id}"
    assert f'href="{link}"' in text
    # listed, and under its status
    listed = (await get(support, "/console/subscriptions?status=active")).text
    assert f'href="/console/subscriptions/{subscription_id}"' in listed
    assert subscription_id not in (await get(support, "/console/subscriptions?status=paused")).text


def test_a_wrong_start_form_says_why_beside_the_field_and_starts_nothing(
    office: Office, stripe_gateway: StripeGateway
) -> None:
    customer_id, price_id = customer_and_price(office.sessions, stripe_gateway)
    support = office.client("support")
    form = support.get(f"/console/subscriptions/new?customer={customer_id}").text

    def count() -> int:
        rows, _ = subscription_service.list_subscriptions(
            office.sessions, SubscriptionOut.of, limit=10, starting_after=None,
            customer_id=customer_id,
        )  # fmt: skip
        return len(rows)

    for fields, field, said in (
        ({"quantity": "0"}, "quantity", "Enter a whole number from 1 to 1,000,000."),
        ({"quantity": "two"}, "quantity", "Enter a whole number from 1 to 1,000,000."),
        ({"price_id": ""}, "price_id", "Choose a plan."),
        ({"price_id": "price_missing"}, "price_id", "Price &#39;price_missing&#39; does not exist"),
        (
            {"customer_id": "cus_missing"},
            "customer_id",
            "Customer &#39;cus_missing&#39; does not exist",
        ),
    ):
        data = {"csrf_token": csrf(form), "customer_id": customer_id, "price_id": price_id,
                "quantity": "1", "trial_days": "0"} | fields  # fmt: skip
        refused = support.post("/console/subscriptions/new", data=data)
        assert refused.status_code == 422, (fields, refused.text)
        error = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', refused.text)
        assert error and said in error.group(1), (fields, error and error.group(1))
    assert count() == 0


async def test_cancel_at_period_end_needs_a_reason_and_is_audited_with_the_staff_member(
    office: Office, started: tuple[str, str]
) -> None:
    subscription_id, _ = started
    support = office.client("support")
    await first_invoice_paid(support, subscription_id)
    before = audit_rows(office.sessions, subscription_id)

    refused = await act(support, subscription_id, "cancel", when="period_end", reason="   ")
    assert refused.status_code == 422
    assert 'id="cancel-reason-error">Give a reason: it is kept in the audit log.' in refused.text
    assert audit_rows(office.sessions, subscription_id) == before
    assert not stored(office, subscription_id).cancel_at_period_end

    done = await act(
        support, subscription_id, "cancel", when="period_end", reason="顧客の依頼（電話）"
    )
    assert done.status_code == 303
    assert done.headers["location"].endswith("?done=cancel_at_period_end")
    email = office.members["support"].member.email

    def audited() -> bool:
        return any(
            (row.actor, row.reason) == (f"staff:{email}", "顧客の依頼（電話）")
            for row in audit_rows(office.sessions, subscription_id)
        )

    await eventually(audited, timeout=30, what="the cancellation in the audit log")
    page = (await get(support, done.headers["location"])).text
    assert "It will be cancelled at the end of the paid period." in page
    assert "Ends at the end of the paid period." in page
    assert "顧客の依頼（電話）" in page and f"staff:{email}" in page  # the history
    assert stored(office, subscription_id).status == "active"  # until the period ends


async def test_change_plan_shows_the_proration_before_it_is_confirmed(
    office: Office, started: tuple[str, str]
) -> None:
    subscription_id, _ = started
    support = office.client("support")
    await first_invoice_paid(support, subscription_id)
    dearer = catalog.create_price(
        office.sessions, product_name="Business plan", currency="JPY", unit_amount=9000
    )
    page = (await get(support, f"/console/subscriptions/{subscription_id}")).text
    assert f'<option value="{dearer}">' in page

    preview = await get(
        support, f"/console/subscriptions/{subscription_id}/change-plan?price_id={dearer}"
    )
    assert preview.status_code == 200, preview.text
    assert "Applies now" in preview.text and "Business plan" in preview.text
    net = re.search(r'id="preview-net">¥([\d,]+)<', preview.text)
    assert net and 0 < int(net.group(1).replace(",", "")) <= 6000, net
    assert stored(office, subscription_id).price_id != dearer  # nothing changed yet

    confirm = {"csrf_token": csrf(preview.text), "price_id": dearer}
    path = f"/console/subscriptions/{subscription_id}/change-plan"
    no_reason = await post(support, path, confirm | {"reason": ""})
    assert no_reason.status_code == 422
    assert 'id="change-reason-error"' in no_reason.text
    assert stored(office, subscription_id).price_id != dearer

    done = await post(support, path, confirm | {"reason": "upgrade asked by the customer"})
    assert done.status_code == 303, done.text
    assert done.headers["location"].endswith("?done=change_plan")
    await eventually(
        lambda: stored(office, subscription_id).price_id == dearer, timeout=30,
        what="the subscription on the dearer price",
    )  # fmt: skip


async def test_pause_and_resume_keep_their_reasons_and_a_refusal_is_shown_on_the_page(
    office: Office, started: tuple[str, str]
) -> None:
    subscription_id, _ = started
    support = office.client("support")
    await first_invoice_paid(support, subscription_id)

    refused = await act(support, subscription_id, "resume", reason="try it")
    assert refused.status_code == 409
    assert "Only a paused subscription can be resumed; it is active." in refused.text

    paused = await act(support, subscription_id, "pause", reason="travelling for a month")
    assert paused.status_code == 303, paused.text
    page = (await get(support, paused.headers["location"])).text
    assert 'class="badge badge-paused"' in page and "Paused: no invoices" in page

    assert (await act(support, subscription_id, "resume", reason="")).status_code == 422
    assert (await act(support, subscription_id, "resume", reason="back home")).status_code == 303
    email = office.members["support"].member.email
    asked = [
        (row.action, row.actor, row.reason)
        for row in audit_rows(office.sessions, subscription_id)
        if row.action == "resume_requested"
    ]
    assert asked == [("resume_requested", f"staff:{email}", "back home")]
    assert (
        'class="badge badge-active"'
        in (await get(support, f"/console/subscriptions/{subscription_id}")).text
    )


async def test_dunning_actions_grace_retry_and_waive(
    office: Office, stripe_gateway: StripeGateway
) -> None:
    customer_id, price_id = customer_and_price(office.sessions, stripe_gateway, card=DECLINED_CARD)
    support = office.client("support")
    subscription_id = start_in_console(support, customer_id, price_id)

    async def in_dunning() -> bool:
        page = await get(support, f"/console/subscriptions/{subscription_id}")
        return f'action="/console/subscriptions/{subscription_id}/retry"' in page.text

    await eventually(in_dunning, timeout=40, what="the declined first invoice in collection")
    page = (await get(support, f"/console/subscriptions/{subscription_id}")).text
    assert "Invoice in collection" in page and "First failure" in page
    invoice_id = re.search(r'name="invoice_id" value="(in_\w+)"', page)
    assert invoice_id

    assert (await act(support, subscription_id, "grace", days="0", reason="r")).status_code == 422
    granted = await act(support, subscription_id, "grace", days="7", reason="salary on the 25th")
    assert granted.status_code == 303, granted.text
    retried = await act(support, subscription_id, "retry", invoice_id=invoice_id.group(1),
                  reason="the customer says the card works now")  # fmt: skip
    assert retried.status_code == 303, retried.text
    assert any(
        row.action == "retry_requested" and row.reason == "the customer says the card works now"
        for row in audit_rows(office.sessions, invoice_id.group(1))
    )
    waived = await act(support, subscription_id, "waive", invoice_id=invoice_id.group(1),
                       mark_as="void", reason="goodwill")  # fmt: skip
    for _ in range(20):  # the retry's charge may still be running: one change at a time
        if waived.status_code != 409 or "another change" not in waived.text:
            break
        await asyncio.sleep(0.5)
        waived = await act(support, subscription_id, "waive", invoice_id=invoice_id.group(1),
                           mark_as="void", reason="goodwill")  # fmt: skip
    assert waived.status_code == 303, waived.text
    page = (await get(support, waived.headers["location"])).text
    assert 'class="badge badge-active"' in page and 'class="badge badge-inv-void"' in page


async def test_finance_reads_the_page_without_forms_and_may_not_act(
    office: Office, started: tuple[str, str]
) -> None:
    subscription_id, _ = started
    finance = office.client("finance")
    page = await get(finance, f"/console/subscriptions/{subscription_id}")
    assert page.status_code == 200
    assert f"/console/subscriptions/{subscription_id}/cancel" not in page.text
    assert "Support actions" not in page.text
    assert 'href="/console/subscriptions"' in page.text  # the menu entry
    assert (await get(finance, "/console/subscriptions")).status_code == 200
    assert (await get(finance, "/console/subscriptions/new")).status_code == 403
    path = f"/console/subscriptions/{subscription_id}"
    assert (await get(finance, f"{path}/change-plan?price_id=x")).status_code == 403
    for action, fields in (
        ("cancel", {"when": "now", "reason": "finance tries"}),
        ("pause", {"reason": "finance tries"}),
        ("resume", {"reason": "finance tries"}),
    ):
        refused = finance.post(f"{path}/{action}", data={"csrf_token": csrf(page.text), **fields})
        assert refused.status_code == 403, action
    refused = finance.post(
        "/console/subscriptions/new", data={"csrf_token": csrf(page.text), "customer_id": "x"}
    )
    assert refused.status_code == 403
    assert stored(office, subscription_id).status == "active"
    assert not stored(office, subscription_id).cancel_at_period_end


def test_an_unknown_subscription_is_a_404_and_a_stale_cursor_the_first_page(
    office: Office,
) -> None:
    finance = office.client("finance")
    assert finance.get("/console/subscriptions/sub_nonexistent").status_code == 404
    stale = finance.get("/console/subscriptions?status=paused&after=sub_nonexistent")
    assert (stale.status_code, stale.headers["location"]) == (
        303,
        "/console/subscriptions?status=paused",
    )
    assert finance.get("/console/subscriptions?status=bogus").status_code == 200


def japanese_support(office: Office) -> httpx.Client:
    """A support member who reads the console in Japanese, signed in."""
    member = staff.create_staff(
        office.sessions, email="sapo-ja@example.jp", name="サポート 花子", role="support",
        password=PASSWORD, locale="ja", actor="test", origin=Origin(address="test"),
        now=office.clock(),
    )  # fmt: skip
    client = httpx.Client(base_url=office.url, follow_redirects=False, timeout=60)
    enrol(client, member, office.clock)
    return client


async def test_the_pages_in_a_browser(
    office: Office, started: tuple[str, str], open_page: OpenPage, screenshot: Screenshot
) -> None:
    subscription_id, customer_id = started
    support = office.client("support")
    await first_invoice_paid(support, subscription_id)
    path = f"/console/subscriptions/{subscription_id}"
    dearer = catalog.create_price(
        office.sessions, product_name="Business plan", currency="JPY", unit_amount=9800
    )

    page = await office.page(open_page, "support", path)
    assert await page.locator("h1").inner_text() == "山田 太郎 · Pro plan"
    assert await page.locator("form.action").count() >= 3
    await screenshot(page, "console-subscription")

    await page.select_option("#change-price", dearer)
    await page.click("form.action >> text=Preview the change")
    await page.wait_for_url(f"**{path}/change-plan?price_id={dearer}")
    assert "Charged now" in await page.content()
    await screenshot(page, "console-subscription-change")
    await page.goto(f"/console/subscriptions/new?customer={customer_id}")
    await screenshot(page, "console-subscription-new")

    listed = await office.page(open_page, "support", "/console/subscriptions")
    assert await listed.locator(f'a[href="{path}"]').count() >= 1
    await screenshot(listed, "console-subscriptions")
    listed_phone = await office.page(open_page, "support", "/console/subscriptions", viewport=PHONE)
    assert await horizontal_overflow(listed_phone) == 0  # the table scrolls in its box
    await screenshot(listed_phone, "console-subscriptions-phone")

    phone = await office.page(open_page, "support", path, viewport=PHONE)
    assert await horizontal_overflow(phone) == 0
    await screenshot(phone, "console-subscription-phone")

    ja = japanese_support(office)
    try:
        page_ja = await open_page(office.url, locale="ja-JP")
        await page_ja.context.add_cookies(
            [{"name": c.name, "value": c.value or "", "url": office.url + "/console"}
             for c in ja.cookies.jar]
        )  # fmt: skip
        await page_ja.goto(path)
        assert "サポート操作" in await page_ja.content()
        assert "3,000円" in await page_ja.content()
        await screenshot(page_ja, "console-subscription-ja")
        await page_ja.goto("/console/subscriptions")
        await screenshot(page_ja, "console-subscriptions-ja")
        await page_ja.set_viewport_size(PHONE)
        await page_ja.goto(path)
        assert await horizontal_overflow(page_ja) == 0
        await screenshot(page_ja, "console-subscription-ja-phone")
    finally:
        ja.close()
