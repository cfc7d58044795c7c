"""Invoices in the console: the list's filters, an invoice's page with its document and
PDF, voiding the one in dunning, a credit note refunded to the card, a wrong amount
refused beside its field, finance reading but not acting; in a real browser too.

The invoices come from real subscriptions billed by the module's worker (localstripe
charges the card): one paid, one whose card is declined (past due, in dunning).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import audit, catalog, credit_notes, customers, subscriptions
from kakin.services import invoices as invoice_service
from kakin.views.credit_notes import CreditNoteOut
from kakin.views.invoices import InvoiceOut
from tests.console.browsing import enrol, new_staff, post
from tests.console.office import Office
from tests.helpers import DECLINED_CARD, OK_CARD, eventually
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

pytestmark = pytest.mark.devserver

TOKYO = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class Billed:
    """The module's invoices: one paid (3,000円 + 10% tax), one open in dunning, and
    one paid in dollars that no test acts on (the screenshots show its forms)."""

    paid_customer: str
    paid_invoice: str
    open_customer: str
    open_subscription: str
    open_invoice: str
    dollar_invoice: str
    lost_subscription: str  # past due too: written off
    lost_invoice: str


def _customer(
    office: Office, stripe: StripeGateway, *, name: str, card: str, currency: str = "JPY"
) -> str:
    return customers.create_customer(
        office.sessions, stripe, email="billing@example.jp", name=name, currency=currency,
        locale="ja" if currency == "JPY" else "en", time_zone="Asia/Tokyo", card_number=card,
    )  # fmt: skip


def _invoices_of(sessions: sessionmaker[Session], customer_id: str) -> list[InvoiceOut]:
    rows, _ = invoice_service.list_invoices(
        sessions, InvoiceOut.of, limit=10, starting_after=None, customer_id=customer_id
    )
    return rows


@pytest.fixture(scope="module")
async def billed(
    office: Office, stripe_gateway: StripeGateway, dev_env: WorkflowEnvironment
) -> Billed:
    sessions = office.sessions
    rate = catalog.create_tax_rate(sessions, name="消費税", percentage="10")
    price = catalog.create_price(
        sessions, product_name="スタンダード プラン", currency="JPY", unit_amount=3000,
        tax_rate_ids=[rate],
    )  # fmt: skip
    dollars = catalog.create_price(
        sessions, product_name="Team plan", currency="USD", unit_amount=1250, tax_rate_ids=[rate]
    )
    paid_customer = _customer(office, stripe_gateway, name="青空 商店", card=OK_CARD)
    open_customer = _customer(office, stripe_gateway, name="港 ラボ", card=DECLINED_CARD)
    lost_customer = _customer(office, stripe_gateway, name="閉店 商会", card=DECLINED_CARD)
    # past due and left so: the list's screenshot shows an overdue invoice
    late_customer = _customer(
        office, stripe_gateway, name="Kobe Trading", card=DECLINED_CARD, currency="USD"
    )
    dollar_customer = _customer(
        office, stripe_gateway, name="Lumen Studio", card=OK_CARD, currency="USD"
    )
    started = {}
    for customer_id, price_id in [
        (paid_customer, price), (open_customer, price), (dollar_customer, dollars),
        (lost_customer, price), (late_customer, dollars),
    ]:  # fmt: skip
        started[customer_id] = await subscriptions.start_subscription(
            dev_env.client, sessions, task_queue=office.task_queue, customer_id=customer_id,
            price_id=price_id,
        )  # fmt: skip

    def status_of(customer_id: str) -> str:
        rows = _invoices_of(sessions, customer_id)
        return rows[0].status if rows else ""

    async def billed_both() -> bool:
        paid = status_of(paid_customer) == status_of(dollar_customer) == "paid"
        unpaid = {status_of(c) for c in (open_customer, lost_customer, late_customer)}
        if not paid or unpaid != {"open"}:
            return False
        for customer_id in (open_customer, lost_customer):
            view = await subscriptions.subscription_status(dev_env.client, started[customer_id])
            if view.status != "past_due" or view.outstanding_invoice is None:
                return False
        return True

    await eventually(billed_both, timeout=60, what="one invoice paid, one past due")
    # The console's clock stands still from the module's start; move it past the issue,
    # so the open invoice is overdue as of "now".
    office.clock.now = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    return Billed(
        paid_customer=paid_customer,
        paid_invoice=_invoices_of(sessions, paid_customer)[0].id,
        open_customer=open_customer,
        open_subscription=started[open_customer],
        open_invoice=_invoices_of(sessions, open_customer)[0].id,
        dollar_invoice=_invoices_of(sessions, dollar_customer)[0].id,
        lost_subscription=started[lost_customer],
        lost_invoice=_invoices_of(sessions, lost_customer)[0].id,
    )


def listed_ids(client: httpx.Client, query: str) -> list[str]:
    page = client.get(f"/console/invoices?{query}")
    assert page.status_code == 200, page.text
    return re.findall(r'href="/console/invoices/(in_[0-9a-z_]+)"', page.text)


def credit_notes_of(office: Office, invoice_id: str) -> list[CreditNoteOut]:
    return credit_notes.list_credit_notes(office.sessions, invoice_id, CreditNoteOut.model_validate)


# -- the list ---------------------------------------------------------------------------------


def test_the_filters_find_the_right_invoices(office: Office, billed: Billed) -> None:
    client = office.client("finance")
    paid, unpaid = billed.paid_invoice, billed.open_invoice
    assert listed_ids(client, f"customer={billed.paid_customer}") == [paid]
    assert listed_ids(client, f"customer={billed.open_customer}&status=open") == [unpaid]
    assert listed_ids(client, f"customer={billed.open_customer}&status=paid") == []
    overdue = listed_ids(client, "overdue=1")
    assert unpaid in overdue and paid not in overdue
    today = datetime.now(TOKYO).date()
    this_period = f"from={today:%Y-%m-%d}&to={today:%Y-%m-%d}"
    assert listed_ids(client, f"customer={billed.paid_customer}&{this_period}") == [paid]
    tomorrow = today + timedelta(days=1)
    assert listed_ids(client, f"customer={billed.paid_customer}&from={tomorrow:%Y-%m-%d}") == []
    yesterday = today - timedelta(days=1)
    assert listed_ids(client, f"customer={billed.paid_customer}&to={yesterday:%Y-%m-%d}") == []
    both = set(listed_ids(client, f"status=open&{this_period}"))
    assert unpaid in both and paid not in both


def test_the_list_reads_as_people_read_it(office: Office, billed: Billed) -> None:
    page = office.client("support").get(f"/console/invoices?customer={billed.paid_customer}")
    assert page.status_code == 200
    assert "青空 商店" in page.text
    assert f'href="/console/customers/{billed.paid_customer}"' in page.text
    assert '<td class="num c-total">¥3,300</td>' in page.text  # 3,000 + 10% tax, an English reader
    assert 'class="badge paid"' in page.text
    bad = office.client("support").get("/console/invoices?from=2026-13-45&customer=cus_none")
    assert bad.status_code == 200
    assert "Enter a date as YYYY-MM-DD." in bad.text
    assert "No invoice matches these filters." in bad.text
    lost = office.client("support").get("/console/invoices?status=paid&after=in_gone")
    assert (lost.status_code, lost.headers["location"]) == (303, "/console/invoices?status=paid")


# -- an invoice's page, its document and PDF --------------------------------------------------


def test_an_invoice_page_shows_its_lines_tax_and_payments(office: Office, billed: Billed) -> None:
    page = office.client("finance").get(f"/console/invoices/{billed.paid_invoice}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "スタンダード プラン" in text and "Base fee" in text
    assert "消費税 (10%) on ¥3,000" in text and "¥300" in text and "¥3,300" in text
    assert 'class="badge succeeded"' in text  # the charge
    assert f'href="/console/customers/{billed.paid_customer}"' in text
    # finance reads: no form, and the reason why
    assert '<form method="post" class="action"' not in text
    assert "support or an admin acts on them" in text
    assert office.client("finance").get("/console/invoices/in_nothing").status_code == 404


def test_the_pdf_and_the_document_are_the_apis(office: Office, billed: Billed) -> None:
    client = office.client("finance")
    pdf = client.get(f"/console/invoices/{billed.paid_invoice}/pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    document = client.get(f"/console/invoices/{billed.paid_invoice}/document")
    assert document.status_code == 200 and "青空 商店" in document.text
    policy = document.headers["content-security-policy"]
    assert "style-src 'sha256-" in policy and "frame-ancestors 'self'" in policy
    assert "script-src" not in policy and "sandbox" in policy
    assert client.get("/console/invoices/in_nothing/pdf").status_code == 404


# -- the actions -----------------------------------------------------------------------------


def test_a_bad_credit_amount_is_shown_beside_the_field_and_stores_nothing(
    office: Office, billed: Billed
) -> None:
    client = office.client("support")
    path = f"/console/invoices/{billed.paid_invoice}"
    before = len(credit_notes_of(office, billed.paid_invoice))
    for amount, says in [
        ("abc", "Enter an amount such as 1000."),
        ("-5", "The amount must be more than zero."),
        ("0", "The amount must be more than zero."),
        ("1.5", "Enter an amount such as 1000."),  # yen have no decimals
        ("99,999", "At most ¥3,300 remains creditable."),
    ]:
        page = client.get(path).text
        answer = post(client, f"{path}/credit-notes", page, amount=amount, method="refund",
                      reason="duplicate", memo="")  # fmt: skip
        assert answer.status_code == 422, (amount, answer.text)
        assert re.search(
            rf'id="credit-amount"[^>]*aria-invalid="true"[^>]*>\s*'
            rf'<p class="field-error" id="credit-amount-error">{re.escape(says)}</p>',
            answer.text,
        ), (amount, answer.text)
        assert f'value="{amount}"' in answer.text  # what was typed stays
    page = client.get(path).text
    no_reason = post(client, f"{path}/credit-notes", page, amount="100", method="credit", reason="")
    assert no_reason.status_code == 422 and "Choose a reason." in no_reason.text
    assert len(credit_notes_of(office, billed.paid_invoice)) == before


def test_a_credit_note_refunded_to_the_card_shows_on_the_page(
    office: Office, billed: Billed
) -> None:
    client = office.client("support")
    path = f"/console/invoices/{billed.paid_invoice}"
    page = client.get(path).text
    assert "Up to ¥3,300 may be credited; of it ¥3,300 back to the card." in page
    done = post(client, f"{path}/credit-notes", page, amount="1,100", method="refund",
                reason="product_unsatisfactory", memo="サービス停止のお詫び")  # fmt: skip
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"{path}?done=credit#done"
    [note] = credit_notes_of(office, billed.paid_invoice)
    assert (note.amount, note.method, note.status) == (1100, "refund", "refunded")
    assert note.stripe_refund_id
    shown = client.get(f"{path}?done=credit").text
    assert f"Credit note {note.number} has been issued." in shown
    assert note.number in shown and "Refunded" in shown and "サービス停止のお詫び" in shown
    assert "Up to ¥2,200 may be credited" in shown

    # the line (3,000 + its 10% tax) is more than remains; then the rest as credit
    assert credit_notes.credit_for_lines(office.sessions, billed.paid_invoice, [0]) == 3300
    by_line = post(client, f"{path}/credit-notes", shown, line_0="1", method="refund",
                   reason="duplicate")  # fmt: skip
    assert by_line.status_code == 422
    assert (
        '<p class="field-error" id="credit-lines-error">At most ¥2,200 remains creditable.</p>'
        in by_line.text
    )
    both = post(client, f"{path}/credit-notes", shown, line_0="1", amount="100",
                method="credit", reason="duplicate")  # fmt: skip
    assert "Give an amount or choose lines, not both." in both.text
    rest = post(client, f"{path}/credit-notes", shown, amount="", method="credit",
                reason="order_change")  # fmt: skip
    assert rest.status_code == 303, rest.text
    notes = credit_notes_of(office, billed.paid_invoice)
    assert [(n.amount, n.method, n.status) for n in notes] == [
        (1100, "refund", "refunded"), (2200, "credit", "credited"),
    ]  # fmt: skip
    assert "Nothing is left to credit on this invoice." in client.get(path).text
    entries, _ = audit.list_entries_shaped(
        office.sessions, lambda e: (e.entity_id, e.action, e.actor), limit=20,
        customer_id=billed.paid_customer,
    )  # fmt: skip
    support = office.members["support"].member
    assert (billed.paid_invoice, "credit_note_issued", f"staff:{support.email}") in entries


async def test_support_voids_the_invoice_in_dunning(
    office: Office, billed: Billed, dev_env: WorkflowEnvironment
) -> None:
    # In threads: the module's worker shares this event loop, and the workflow must
    # answer the console's status query and the void update meanwhile.
    client = office.client("support")
    path = f"/console/invoices/{billed.open_invoice}"

    async def get(url: str) -> str:
        return (await asyncio.to_thread(client.get, url)).text

    async def void(page: str, reason: str) -> httpx.Response:
        return await asyncio.to_thread(post, client, f"{path}/void", page, reason=reason)

    page = await get(path)
    assert 'class="badge overdue"' in page and "Void the invoice" in page
    blank = await void(page, "  ")
    assert blank.status_code == 422 and "Give the reason." in blank.text
    done = await void(page, "goodwill after an outage")
    assert done.status_code == 303, done.text
    shown = await get(f"{path}?done=void")
    assert "The invoice has been voided." in shown and 'class="badge void"' in shown
    assert 'class="badge overdue"' not in shown
    again = await void(page, "twice")  # the same page's form sent again: it acted once
    assert again.status_code == 409 and "This form was already sent" in again.text
    again = await void(shown, "twice")  # from a fresh page: the invoice is settled now
    assert again.status_code == 409
    assert "is not the one in collection" in again.text
    entries, _ = audit.list_entries_shaped(
        office.sessions, lambda e: (e.entity_id, e.action, e.actor, e.reason), limit=20,
        customer_id=billed.open_customer,
    )  # fmt: skip
    support = office.members["support"].member
    reason = "waived: goodwill after an outage"
    assert (billed.open_invoice, "marked_void", f"staff:{support.email}", reason) in entries
    view = await subscriptions.subscription_status(dev_env.client, billed.open_subscription)
    assert view.status == "active"  # the subscription is out of dunning

    lost = f"/console/invoices/{billed.lost_invoice}"
    page = await get(lost)
    written_off = await asyncio.to_thread(
        post, client, f"{lost}/write-off", page, reason="the shop has closed"
    )
    assert written_off.status_code == 303, written_off.text
    shown = await get(f"{lost}?done=write_off")
    assert "The invoice has been written off as uncollectible." in shown
    assert 'class="badge uncollectible"' in shown
    view = await subscriptions.subscription_status(dev_env.client, billed.lost_subscription)
    assert view.status == "active"


@pytest.mark.parametrize("action", ["void", "write-off", "credit-notes"])
def test_finance_may_not_act(office: Office, billed: Billed, action: str) -> None:
    client = office.client("finance")
    page = client.get(f"/console/invoices/{billed.paid_invoice}").text
    answer = post(client, f"/console/invoices/{billed.paid_invoice}/{action}", page,
                  reason="duplicate", method="credit", amount="100")  # fmt: skip
    assert answer.status_code == 403
    assert "may not open this page" in answer.text


# -- in the browser -----------------------------------------------------------------------------


async def test_the_pages_in_a_browser(
    office: Office, billed: Billed, open_page: OpenPage, screenshot: Screenshot
) -> None:
    listed = await office.page(open_page, "support", "/console/invoices")
    assert await listed.locator("h1").inner_text() == "Invoices"
    assert await listed.locator("table.invoices tbody tr").count() > 0
    await screenshot(listed, "console-invoices")

    page = await office.page(
        open_page, "support", f"/console/invoices/{billed.dollar_invoice}",
        allow=[r"HTTP 422: POST .*/credit-notes(#actions)?$",
               r"status of 422 .*/credit-notes(#actions)?\)$"],
    )  # fmt: skip
    frame = page.frame_locator("iframe.document")
    await frame.locator("body").wait_for()
    assert "Lumen Studio" in await frame.locator("body").inner_text()
    assert "$13.75" in await page.locator(".due-box").inner_text()  # $12.50 + 10% tax
    # Chromium paints a frame only once it has been in view.
    await page.locator("iframe.document").scroll_into_view_if_needed()
    await screenshot(page, "console-invoice")
    # a wrong amount, typed in the browser: said beside the field, nothing issued
    await page.locator("#credit-amount").fill("12.345")
    await page.locator("#credit-reason").select_option("duplicate")
    await page.get_by_role("button", name="Issue the credit note").click()
    await page.wait_for_load_state()
    error = page.locator("#credit-amount-error")
    assert await error.inner_text() == "Enter an amount such as 12.50."
    assert await page.locator("#credit-amount").input_value() == "12.345"
    assert credit_notes_of(office, billed.dollar_invoice) == []
    await error.scroll_into_view_if_needed()
    await screenshot(page, "console-invoice-error")

    phone = await office.page(
        open_page, "support", f"/console/invoices/{billed.dollar_invoice}", viewport=PHONE
    )
    assert await horizontal_overflow(phone) == 0
    await phone.locator("iframe.document").scroll_into_view_if_needed()
    await screenshot(phone, "console-invoice-phone")
    phone_list = await office.page(open_page, "finance", "/console/invoices", viewport=PHONE)
    assert await horizontal_overflow(phone_list) == 0
    await screenshot(phone_list, "console-invoices-phone")

    client = httpx.Client(base_url=office.url, follow_redirects=False, timeout=60)
    member = new_staff(office.sessions, office.clock, role="support", name="請求 担当", locale="ja")
    enrol(client, member, office.clock)
    ja = await office.page_for(
        open_page, client, f"/console/invoices/{billed.paid_invoice}", locale="ja-JP"
    )
    assert "基本料金" in await ja.locator("table.lines").inner_text()
    assert "3,300円" in await ja.locator(".summary").inner_text()
    await ja.locator("iframe.document").scroll_into_view_if_needed()
    await screenshot(ja, "console-invoice-ja")
    ja_list = await office.page_for(open_page, client, "/console/invoices", locale="ja-JP")
    await screenshot(ja_list, "console-invoices-ja")
    client.close()
