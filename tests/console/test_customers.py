"""Customers in the console: search, adding one (errors next to the field, nothing stored
when wrong), a name holding ``<script>`` shown as text, and the page of a customer whose
subscription billed: invoice, payment, and a timeline from the ledger and the audit log."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Dialog, Page
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, customers, staff, subscriptions
from kakin.services.customer_timeline import TimelineEntry, merge
from kakin.services.staff import Origin
from kakin.views.invoices import InvoiceOut
from tests.console.browsing import PASSWORD, Enrolled, csrf, enrol, post
from tests.console.office import Office
from tests.helpers import OK_CARD, eventually
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

SCRIPT = "<script>alert(1)</script>"


def add_customer(office: Office, stripe: StripeGateway, *, name: str, email: str) -> str:
    return customers.create_customer(
        office.sessions, stripe, email=email, name=name, currency="JPY", locale="ja",
        time_zone="Asia/Tokyo", card_number=OK_CARD,
    )  # fmt: skip


def token() -> str:
    return secrets.token_hex(4)


# -- the list and its search -------------------------------------------------------------------


def test_search_finds_a_customer_by_name_email_or_id(
    office: Office, stripe_gateway: StripeGateway
) -> None:
    mark = token()
    wanted = add_customer(
        office, stripe_gateway, name=f"佐藤 {mark} 商店", email=f"sato-{mark}@example.jp"
    )
    other = add_customer(
        office, stripe_gateway, name=f"鈴木 {token()}", email=f"suzuki-{token()}@example.jp"
    )
    client = office.client("finance")  # every role reads customers
    for text in (mark, f"SATO-{mark}@EXAMPLE", wanted):
        page = client.get("/console/customers", params={"q": text})
        assert page.status_code == 200, page.text
        assert f'href="/console/customers/{wanted}"' in page.text, text
        assert f'href="/console/customers/{other}"' not in page.text, text
    nothing = client.get("/console/customers", params={"q": f"nobody-{token()}"})
    assert "No customer matches" in nothing.text
    everyone = client.get("/console/customers")
    assert f'href="/console/customers/{other}"' in everyone.text


def test_the_list_pages_through_every_customer(
    office: Office, stripe_gateway: StripeGateway
) -> None:
    mark = token()
    made = {
        add_customer(office, stripe_gateway, name=f"頁 {mark} {n}", email=f"p{n}-{mark}@example.jp")
        for n in range(27)
    }
    client = office.client("support")
    seen: list[str] = []
    page = client.get("/console/customers", params={"q": mark})
    while True:
        seen += re.findall(r'href="/console/customers/(cus_[0-9a-f]+)"', page.text)
        following = re.search(r'href="(/console/customers\?[^"]*after=[^"]+)"', page.text)
        if following is None:
            break
        page = client.get(html.unescape(following.group(1)))
    assert len(seen) == len(made) and set(seen) == made


# -- adding one --------------------------------------------------------------------------------


def field_error(page: str, field: str) -> str:
    """The error shown right after ``field``'s input."""
    found = re.search(
        rf'<input id="{field}"[^>]*aria-invalid="true"[^>]*>\s*<p class="field-error" '
        rf'id="{field}-error">([^<]+)</p>',
        page,
    )
    assert found, f"no error next to {field}"
    return html.unescape(found.group(1))


def test_a_bad_email_is_shown_next_to_the_field_and_nothing_is_stored(office: Office) -> None:
    client = office.client("support")
    form = client.get("/console/customers/new")
    assert form.status_code == 200, form.text
    before = customers.count_customers(office.sessions)
    refused = post(
        client, "/console/customers/new", form.text, name="間違い 太郎", email="not-an-email",
        locale="ja", currency="JPY", time_zone="Asia/Tokyo", card_number=OK_CARD,
    )  # fmt: skip
    assert refused.status_code == 422
    assert field_error(refused.text, "email") == "Enter an email address such as taro@example.jp."
    assert 'value="間違い 太郎"' in refused.text  # what was typed stays
    assert customers.count_customers(office.sessions) == before


def test_a_blank_name_and_a_made_up_time_zone_are_each_named(office: Office) -> None:
    client = office.client("admin")
    form = client.get("/console/customers/new")
    before = customers.count_customers(office.sessions)
    refused = post(
        client, "/console/customers/new", form.text, name="  ", email="ok@example.jp",
        locale="en", currency="USD", time_zone="Mars/Olympus", card_number="",
    )  # fmt: skip
    assert refused.status_code == 422
    assert "Enter the customer's name" in field_error(refused.text, "name")
    assert "Asia/Tokyo or UTC" in field_error(refused.text, "time_zone")
    assert 'id="email-error"' not in refused.text
    assert customers.count_customers(office.sessions) == before


def test_support_adds_a_customer_with_a_test_card_and_lands_on_their_page(office: Office) -> None:
    client = office.client("support")
    form = client.get("/console/customers/new")
    email = f"new-{token()}@example.jp"
    added = post(
        client, "/console/customers/new", form.text, name="新規 花子", email=email,
        locale="ja", currency="JPY", time_zone="Asia/Tokyo", card_number=OK_CARD,
    )  # fmt: skip
    assert added.status_code == 303, added.text
    location = added.headers["location"]
    assert re.fullmatch(r"/console/customers/cus_[0-9a-f]+", location)
    page = client.get(location)
    assert page.status_code == 200, page.text
    assert "新規 花子" in page.text and email in page.text
    assert "Visa ending in 4242" in page.text
    assert "Customer added" in page.text  # the timeline, from the audit log
    assert f"by staff:{office.members['support'].member.email}" in page.text


def test_a_form_sent_twice_acts_once_and_a_refused_one_can_be_corrected(office: Office) -> None:
    client = office.client("support")
    path, form = "/console/customers/new", client.get("/console/customers/new").text
    before = customers.count_customers(office.sessions)
    fields = dict(locale="ja", currency="JPY", time_zone="Asia/Tokyo", card_number=OK_CARD)
    refused = post(client, path, form, name="二重 太郎", email="not-an-email", **fields)
    assert refused.status_code == 422
    # The refusal gave the page's token back: corrected, the same form goes through...
    email = f"twice-{token()}@example.jp"
    added = post(client, path, form, name="二重 太郎", email=email, **fields)
    assert added.status_code == 303, added.text
    # ... and sent once more (the back button, a resend) it does nothing.
    again = post(client, path, form, name="二重 太郎", email=email, **fields)
    assert again.status_code == 409
    assert "This form was already sent" in again.text
    assert customers.count_customers(office.sessions) == before + 1

    # A double click: the same form twice at the same moment adds one customer.
    form = client.get(path).text
    email = f"double-{token()}@example.jp"
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda _: post(client, path, form, name="二重 花子", email=email, **fields),
                     range(2))
        )  # fmt: skip
    assert sorted(answer.status_code for answer in answers) == [303, 409]
    assert customers.count_customers(office.sessions) == before + 2


def test_finance_reads_customers_but_may_not_add_one(office: Office) -> None:
    client = office.client("finance")
    assert client.get("/console/customers").status_code == 200
    assert 'href="/console/customers/new"' not in client.get("/console/customers").text
    assert client.get("/console/customers/new").status_code == 403
    page = client.get("/console/customers").text
    before = customers.count_customers(office.sessions)
    refused = post(client, "/console/customers/new", page, name="x", email="x@example.jp",
                   currency="JPY")  # fmt: skip
    assert refused.status_code == 403
    assert customers.count_customers(office.sessions) == before


def test_an_unknown_customer_is_a_404_page(office: Office) -> None:
    client = office.client("finance")
    assert client.get("/console/customers/cus_nobody").status_code == 404
    assert client.get("/console/customers/" + "x" * 300).status_code == 404


# -- a name holding <script> -------------------------------------------------------------------


async def test_a_name_holding_a_script_is_shown_as_text(
    office: Office, stripe_gateway: StripeGateway, open_page: OpenPage
) -> None:
    customer_id = add_customer(
        office, stripe_gateway, name=SCRIPT, email=f"script-{token()}@example.jp"
    )
    client = office.client("support")
    escaped = html.escape(SCRIPT, quote=False)
    for path in ("/console/customers?q=%3Cscript", f"/console/customers/{customer_id}"):
        body = client.get(path).text
        assert escaped in body, path
        assert SCRIPT not in body, path
    page = await office.page(open_page, "support", f"/console/customers/{customer_id}")
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    await page.reload()
    assert await page.locator("h1.customer-name").inner_text() == SCRIPT
    await page.goto("/console/customers?q=%3Cscript")
    assert await page.get_by_role("link", name=SCRIPT).count() >= 1
    assert dialogs == []


# -- the page of a customer whose subscription billed ----------------------------------------


@dataclass(frozen=True)
class Billed:
    customer_id: str
    subscription_id: str
    invoice: InvoiceOut
    reason: str
    canceled_by: str


@pytest.fixture(scope="module")
async def billed(
    office: Office,
    stripe_gateway: StripeGateway,
    dev_env: WorkflowEnvironment,
    module_worker: Worker,
) -> AsyncIterator[Billed]:
    """A customer whose monthly 3,980円 subscription started now, billed and was paid,
    then was canceled by a support member with a reason."""
    sessions = office.sessions
    customer_id = customers.create_customer(
        sessions, stripe_gateway, email=f"billed-{token()}@example.jp", name="請求 一郎",
        currency="JPY", locale="ja", time_zone="Asia/Tokyo", card_number=OK_CARD,
    )  # fmt: skip
    price_id = catalog.create_price(
        sessions, product_name="Standard plan", currency="JPY", unit_amount=3980, interval="month"
    )
    subscription_id = await subscriptions.start_subscription(
        dev_env.client, sessions, task_queue=office.task_queue, customer_id=customer_id,
        price_id=price_id,
    )  # fmt: skip

    def paid_invoices() -> list[InvoiceOut]:
        rows, _ = customers.list_customer_invoices(
            sessions, customer_id, InvoiceOut.of, limit=10, starting_after=None
        )
        return [row for row in rows if row.status == "paid"]

    await eventually(lambda: bool(paid_invoices()), timeout=30, what="the first invoice paid")
    office.client("support")
    canceled_by = office.members["support"].member.actor
    reason = "moving to a competitor <b>cheaper</b>"
    await subscriptions.cancel_subscription(
        dev_env.client, subscription_id, reason=reason, at_period_end=False,
        requested_by=canceled_by,
    )  # fmt: skip

    def canceled() -> bool:
        status = subscriptions.get_subscription(sessions, subscription_id, lambda row: row.status)
        return status == "canceled"

    await eventually(canceled, timeout=30, what="the subscription canceled")
    yield Billed(customer_id, subscription_id, paid_invoices()[0], reason, canceled_by)


def text_of(page: str) -> str:
    """The page's words, without markup (as a reader sees them, roughly)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def section(page: str, name: str) -> str:
    found = re.search(rf'<section class="card" id="{name}">(.*?)</section>', page, re.S)
    assert found, f"no {name} section"
    return found.group(1)


def test_the_page_of_a_billed_customer_shows_invoice_payment_and_timeline(
    office: Office, billed: Billed
) -> None:
    page = office.client("finance").get(f"/console/customers/{billed.customer_id}")
    assert page.status_code == 200, page.text
    invoice = billed.invoice
    assert invoice.number
    subscriptions_part = section(page.text, "subscriptions")
    assert f'href="/console/subscriptions/{billed.subscription_id}"' in subscriptions_part
    assert "Standard plan" in subscriptions_part
    assert 'class="badge badge-canceled"' in subscriptions_part
    invoices_part = text_of(section(page.text, "invoices"))
    assert f'href="/console/invoices/{invoice.id}"' in section(page.text, "invoices")
    assert f"{invoice.number} paid ¥3,980 ¥3,980" in invoices_part
    payments_part = text_of(section(page.text, "payments"))
    assert f"{invoice.number} ¥3,980 succeeded 1" in payments_part

    timeline = text_of(section(page.text, "timeline"))
    assert "Times in Asia/Tokyo." in timeline
    # From the ledger: what moved money and MRR; from the audit log: who and why.
    assert f"Invoice paid {invoice.number} ¥3,980" in timeline
    assert f"Invoice issued {invoice.number} ¥3,980" in timeline
    assert "Subscription started subscription MRR ¥0 → ¥3,980" in timeline
    canceled = re.search(r"Subscription canceled subscription (.*?) Reason: (.*?)(?= \d{4}-|$)",
                         timeline)  # fmt: skip
    assert canceled, timeline
    assert "MRR ¥3,980 → ¥0" in canceled.group(1)
    assert f"by {billed.canceled_by}" in canceled.group(1)
    assert "ledger" in canceled.group(1) and "audit log" in canceled.group(1)
    assert canceled.group(2).strip() == billed.reason
    assert "<b>cheaper</b>" not in page.text  # the reason is text too
    # Newest first: the cancel above the payment, the payment above the start.
    assert timeline.index("Subscription canceled") < timeline.index("Invoice paid")
    assert timeline.index("Invoice paid") < timeline.index("Subscription started")


# -- in the browser, in English and Japanese, on a laptop and a phone ------------------------


def japanese_member(office: Office) -> httpx.Client:
    """A support member who reads the console in Japanese, signed in over httpx."""
    client = httpx.Client(base_url=office.url, follow_redirects=False, timeout=60)
    member = staff.create_staff(
        office.sessions, email=f"ja-{token()}@example.jp", name="日本 語子", role="support",
        password=PASSWORD, locale="ja", actor="test", origin=Origin(address="test"),
        now=office.clock(),
    )  # fmt: skip
    enrolled: Enrolled = enrol(client, member, office.clock)
    assert enrolled.recovery_codes
    return client


async def signed_in_page(
    office: Office, open_page: OpenPage, client: httpx.Client, path: str, **options: object
) -> Page:
    page = await open_page(office.url, **options)
    await page.context.add_cookies(
        [
            {"name": c.name, "value": c.value or "", "url": office.url + "/console"}
            for c in client.cookies.jar
        ]
    )
    await page.goto(path)
    return page


async def test_the_customer_page_in_the_browser(
    office: Office, billed: Billed, open_page: OpenPage, screenshot: Screenshot
) -> None:
    path = f"/console/customers/{billed.customer_id}"
    page = await office.page(open_page, "finance", path)
    assert await page.locator("h1.customer-name").inner_text() == "請求 一郎"
    assert await page.locator("#timeline li.event").count() >= 5
    assert await page.locator("#invoices").get_by_text("¥3,980").count() == 2
    await screenshot(page, "console-customer")

    phone = await office.page(open_page, "finance", path, viewport=PHONE)
    assert await horizontal_overflow(phone) == 0
    await screenshot(phone, "console-customer-phone")

    ja = japanese_member(office)
    japanese = await signed_in_page(office, open_page, ja, path)
    assert await japanese.locator("#timeline h2").inner_text() == "タイムライン"
    assert await japanese.locator("#invoices").get_by_text("3,980円").count() == 2
    assert await japanese.get_by_text("契約の解約").count() >= 1
    await screenshot(japanese, "console-customer-ja")

    listed = await signed_in_page(office, open_page, ja, "/console/customers")
    assert await listed.get_by_role("link", name="請求 一郎").count() >= 1
    await screenshot(listed, "console-customers")
    listed_phone = await office.page(open_page, "finance", "/console/customers", viewport=PHONE)
    assert await horizontal_overflow(listed_phone) == 0
    await screenshot(listed_phone, "console-customers-phone")
    ja_phone = await signed_in_page(office, open_page, ja, path, viewport=PHONE)
    assert await horizontal_overflow(ja_phone) == 0
    await screenshot(ja_phone, "console-customer-ja-phone")
    ja.close()


async def test_adding_a_customer_in_the_browser(
    office: Office, open_page: OpenPage, screenshot: Screenshot
) -> None:
    page = await office.page(
        open_page,
        "support",
        "/console/customers",
        allow=[r"HTTP 422: POST .*/customers/new", r"status of 422 .*/customers/new"],
    )
    await page.get_by_role("link", name="Add a customer").click()
    await page.fill("#name", "ブラウザ 太郎")
    await page.fill("#email", "not-an-email")
    await page.get_by_role("button", name="Add the customer").click()
    assert await page.locator("#email-error").inner_text() == (
        "Enter an email address such as taro@example.jp."
    )
    await page.set_viewport_size(PHONE)
    assert await horizontal_overflow(page) == 0
    await screenshot(page, "console-customer-new-phone")
    await page.fill("#email", f"browser-{token()}@example.jp")
    await page.get_by_label("4242 4242 4242 4242: payments succeed").check()
    await page.get_by_role("button", name="Add the customer").click()
    await page.wait_for_url(re.compile(r"/console/customers/cus_[0-9a-f]+$"))
    assert await page.locator(".card-on-file").inner_text() == "Visa ending in 4242"
    assert await page.get_by_text("No subscriptions yet.").count() == 1
    await page.set_viewport_size({"width": 1280, "height": 800})
    await screenshot(page, "console-customer-new-added")


def test_csrf_token_is_required_to_add_a_customer(office: Office) -> None:
    client = office.client("support")
    before = customers.count_customers(office.sessions)
    refused = client.post(
        "/console/customers/new", data={"name": "x", "email": "x@example.jp", "currency": "JPY"}
    )
    assert refused.status_code == 403
    assert csrf(client.get("/console/customers/new").text)
    assert customers.count_customers(office.sessions) == before


# -- how the timeline merges the two logs (kakin.services.customer_timeline.merge) ------------


def entry(at: datetime, **fields: Any) -> TimelineEntry:
    empty: dict[str, Any] = {
        "kind": "", "action": "", "subscription_id": None, "invoice_id": None, "currency": "JPY",
        "amount": None, "mrr_before": None, "mrr_after": None, "status_before": "",
        "status_after": "", "actor": "", "reason": "",
    }  # fmt: skip
    return TimelineEntry(at=at, **(empty | fields))


def test_an_audit_row_of_the_same_change_folds_into_the_ledger_entry() -> None:
    t0 = datetime(2031, 1, 31, 15, tzinfo=UTC)
    canceled = entry(
        t0, kind="subscription.canceled", subscription_id="sub_1", status_after="canceled",
        mrr_before=3980, mrr_after=0, actor="system",
    )  # fmt: skip
    paid = entry(t0 - timedelta(days=30), kind="invoice.paid", invoice_id="in_1",
                 subscription_id="sub_1", status_after="paid", amount=3980)  # fmt: skip
    cancel_row = entry(t0, action="cancel", subscription_id="sub_1", status_after="canceled",
                       actor="staff:a@example.jp", reason="too dear")  # fmt: skip
    # Another moment, or the subscription's row beside an invoice's entry: not the same change.
    card_row = entry(t0 - timedelta(days=1), action="payment_method_updated", actor="stripe")
    late_row = entry(t0 + timedelta(seconds=1), action="status_changed",
                     subscription_id="sub_1", status_after="canceled")  # fmt: skip
    merged = merge([canceled, paid], [late_row, cancel_row, card_row])
    assert [(e.kind, e.action) for e in merged] == [
        ("", "status_changed"),
        ("subscription.canceled", "cancel"),
        ("", "payment_method_updated"),
        ("invoice.paid", ""),
    ]
    folded = merged[1]
    assert (folded.actor, folded.reason, folded.mrr_after) == ("staff:a@example.jp", "too dear", 0)
