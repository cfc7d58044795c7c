"""The customer's billing page in headless Chromium, reached as a customer reaches it: the
link in a real email in the outbox.

It shows this period's bill so far with the API's numbers (the upcoming invoice), the
usage so far, the invoices with their PDFs, the payments and the card, in the customer's
language, on a laptop and on a phone; the customer updates the card and cancels at period
end (the workflow's status says so, the audit log names the customer and the reason). An
altered link shows nothing of anyone; an expired one offers a fresh link by email.
"""

from __future__ import annotations

import html
import re
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from api.billing_words import WORDS
from kakin.adapters import links
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import api_keys, catalog, customers
from kakin.services.usage import UsageEventIn, ingest
from tests.api.test_api_subscriptions import stored_subscription
from tests.helpers import (
    SETTINGS,
    advance_to,
    connect_to,
    observe,
    running,
    start_subscription,
    status_of,
)
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

# Refusals are answered 403 (the browser reports them as failed loads); those are expected.
REFUSED = [r"HTTP 403: GET .*/billing", r"status of 403"]


@dataclass(frozen=True)
class Language:
    code: str
    browser_locale: str
    name: str
    title: str
    so_far: str
    update_card: str
    card_shown: str
    cancel: str
    cancel_requested: str
    first_invoice: str
    not_a_test_card: str


JAPANESE = Language(
    code="ja", browser_locale="ja-JP", name="山田 太郎", title="ご請求・お支払い",
    so_far="次回（現時点）", update_card="カードを更新", card_shown="Visa（下4桁 4242）",
    cancel="今期末で解約する", cancel_requested="今期末での解約を承りました。",
    first_invoice="3,000円", not_a_test_card="Stripe のテストカード番号を入力してください。",
)  # fmt: skip
ENGLISH = Language(
    code="en", browser_locale="en-US", name="Taro Yamada", title="Your billing",
    so_far="Next invoice", update_card="Update card", card_shown="Visa ending in 4242",
    cancel="Cancel at period end", cancel_requested="Your subscription will end",
    first_invoice="¥3,000", not_a_test_card="Please enter a Stripe test card number.",
)  # fmt: skip
LANGUAGES = pytest.mark.parametrize("language", [JAPANESE, ENGLISH], ids=lambda lang: lang.code)


def billing_link_in_outbox(outbox: Path, kind: str) -> str:
    """The billing page's link in the (one) email of ``kind`` in the outbox."""
    [page] = list(outbox.glob(f"email_{kind}_*.html"))
    found = re.search(r'href="(http://localhost:8000/billing\?[^"]+)"', page.read_text())
    assert found, f"the {kind} email has no link to the billing page"
    return html.unescape(found.group(1))


def metered_item(sessions: sessionmaker[Session], subscription_id: str) -> str:
    """API calls on the subscription from its next invoice: 2 free, then 100円 each."""
    code = f"api_calls_{uuid.uuid4().hex[:8]}"
    catalog.create_metric(sessions, code=code, name="API calls", aggregation="count")
    price = catalog.create_price(
        sessions, product_name="API", nickname="API calls", currency="JPY",
        pricing_model="graduated", metric_code=code,
        tiers=[{"up_to": "2", "unit_amount": "0"}, {"up_to": None, "unit_amount": "100"}],
    )  # fmt: skip
    catalog.add_item(sessions, subscription_id=subscription_id, price_id=price)
    return code


def as_customer(sessions: sessionmaker[Session], subscription_id: str, language: Language) -> str:
    customer_id = observe(sessions, subscription_id).invoices[0].customer_id
    customers.update_customer(
        sessions, customer_id, {"locale": language.code, "name": language.name}, lambda c: c.id
    )
    return customer_id


def app_for(env: WorkflowEnvironment, sessions: sessionmaker[Session], stripe: StripeGateway,
            outbox: Path) -> Any:  # fmt: skip
    return create_app(
        settings=SETTINGS.model_copy(update={"outbox_dir": outbox}), sessions=sessions,
        temporal=connect_to(env.client.service_client.config.target_host), stripe=stripe,
    )  # fmt: skip


async def chart_value(page: Any, bucket: str) -> int:
    value = await page.locator(f'svg.chart [data-bucket="{bucket}"]').get_attribute("data-value")
    return int(value)


@LANGUAGES
async def test_from_the_receipt_the_customer_sees_the_bill_so_far_updates_the_card_and_cancels(
    language: Language,
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
    customer_id = as_customer(pg_sessions, subscription_id, language)
    now = await time_env.get_current_time()
    events = [
        UsageEventIn(event_id=f"call-{n}", metric=metric, timestamp=now - timedelta(minutes=n),
                     properties={}, customer_id=customer_id)
        for n in range(5)
    ]  # fmt: skip
    assert [r.status for r in ingest(pg_sessions, events)] == ["accepted"] * 5
    emailed = urlsplit(billing_link_in_outbox(outbox, "receipt"))
    assert emailed.path == "/billing"
    page_path = f"{emailed.path}?{emailed.query}"

    app = app_for(time_env, pg_sessions, stripe_gateway, outbox)
    key = api_keys.create_key(pg_sessions, name="billing page test", role="support").secret
    with running(app) as url:
        # Asynchronously: the worker answering the status query runs in this event loop.
        bearer = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=bearer) as api:
            answer = await api.get(f"/v1/subscriptions/{subscription_id}/upcoming-invoice")
            assert answer.status_code == 200, answer.text
            upcoming = answer.json()
            usage = (await api.get(f"/v1/subscriptions/{subscription_id}/usage")).json()
        # The plan's next 3,000 and 3 calls beyond the free 2 at 100.
        assert (upcoming["total"], usage["amount"]) == (3300, 300)

        page = await open_page(url, locale=language.browser_locale)
        response = await page.goto(page_path)
        assert response is not None and response.status == 200
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert await page.locator("html").get_attribute("lang") == language.code
        assert await page.get_by_role("heading", level=1).inner_text() == language.title
        assert language.name in await page.inner_text("header")
        # The chart and the figures say what the API says.
        assert await chart_value(page, "so_far") == upcoming["total"]
        assert await chart_value(page, "last") == 3000  # the first invoice, paid
        assert await page.locator("#so-far .total").get_attribute("data-value") == "3300"
        assert language.so_far in (await page.locator("svg.chart").text_content() or "")
        usage_row = await page.locator("table.usage tbody tr").inner_text()
        assert "5" in usage_row and ("300円" if language.code == "ja" else "¥300") in usage_row
        [invoice] = observe(pg_sessions, subscription_id).invoices
        invoices = await page.inner_text("#invoices")
        assert invoice.number and invoice.number in invoices
        assert language.first_invoice in invoices
        assert language.first_invoice in await page.inner_text("#payments")
        assert language.card_shown in await page.inner_text("#card")
        # The invoice's PDF, through the page's own signed route.
        href = await page.locator("#invoices a").get_attribute("href")
        assert href is not None
        pdf = await page.request.get(href)
        assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
        assert (await pdf.body()).startswith(b"%PDF")
        await screenshot(page, "billing-page" if language.code == "en" else "billing-page-ja")

        phone = await open_page(url, locale=language.browser_locale, viewport=PHONE)
        await phone.goto(page_path)
        assert await horizontal_overflow(phone) == 0
        await screenshot(phone, "billing-page-phone" + ("" if language.code == "en" else "-ja"))

        # Not a Stripe test card: refused, and the number is never shown back.
        await page.locator("#card-number").press_sequentially("4111 1111 1111 1111")
        async with page.expect_navigation():
            await page.get_by_role("button", name=language.update_card).click()
        assert await page.inner_text(".message.error") == language.not_a_test_card
        assert "4111" not in await page.content()
        # A new card (Stripe's test Visa again: a new PaymentMethod).
        await page.locator("#card-number").press_sequentially("4242 4242 4242 4242")
        async with page.expect_navigation():
            await page.get_by_role("button", name=language.update_card).click()
        assert await page.locator(".message").count() == 1
        assert "4242 4242" not in await page.content()
        assert language.card_shown in await page.inner_text("#card")

        # Cancel at period end, with a reason.
        await page.locator("#reason").fill("Moving to another service")
        async with page.expect_navigation():
            await page.get_by_role("button", name=language.cancel).click()
        assert language.cancel_requested in await page.inner_text(".message")
        assert (await status_of(time_env, subscription_id)).cancel_at_period_end
        assert await page.locator("#cancel").count() == 0
        assert await page.locator(".ending").count() == 1
        await screenshot(page, f"billing-page-canceled-{language.code}")

    audit = observe(pg_sessions, subscription_id).audit
    asked = [a for a in audit if a.actor == f"customer:{customer_id}"]
    assert asked and asked[-1].reason == "Moving to another service"


async def test_an_altered_link_shows_nothing_and_an_expired_one_emails_a_fresh_link(
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
    await advance_to(time_env, start + timedelta(days=1))
    emailed = urlsplit(billing_link_in_outbox(outbox, "receipt"))
    query = {k: v[0] for k, v in parse_qs(emailed.query).items()}
    old = links.signed_query(
        subscription_id, expires=int(time.time()) - 60, secret=SETTINGS.link_secret
    )
    app = app_for(time_env, pg_sessions, stripe_gateway, outbox)
    with running(app) as url:
        page = await open_page(url, locale="ja-JP", allow=REFUSED)
        for altered in ({**query, "subscription": "sub_someone_else"},
                        {**query, "expires": str(int(query["expires"]) + 1)},
                        {**query, "token": query["token"][:-1] + "A"}):  # fmt: skip
            response = await page.goto("/billing?" + urlencode(altered))
            assert response is not None and response.status == 403
            text = await page.inner_text("main")
            assert "このリンクは無効です" in text
            assert "山田" not in text and "3,000" not in text
            assert await page.locator("form").count() == 0  # no fresh link for a forgery
        pdf = await page.request.get(f"/billing/invoices/in_x?{urlencode(query)[:-2]}")
        assert pdf.status == 403
        # A genuine link does not open another customer's invoice.
        someone_else = f"in_{stored_subscription(pg_sessions)}"
        pdf = await page.request.get(f"/billing/invoices/{someone_else}?{urlencode(query)}")
        assert pdf.status == 404 and "%PDF" not in await pdf.text()

        response = await page.goto("/billing?" + urlencode(old))
        assert response is not None and response.status == 403
        assert "有効期限が切れています" in await page.inner_text("main")
        assert "山田" not in await page.inner_text("main")
        await screenshot(page, "billing-page-expired")
        async with page.expect_navigation():
            await page.get_by_role("button", name="新しいリンクをメールで受け取る").click()
        assert "t***@example.jp" in await page.inner_text(".message")
        # Asking again at once sends nothing more (one email per window).
        await page.go_back()
        async with page.expect_navigation():
            await page.get_by_role("button", name="新しいリンクをメールで受け取る").click()
        assert "t***@example.jp" in await page.inner_text(".message")
        fresh = urlsplit(billing_link_in_outbox(outbox, "billing_link"))
        response = await page.goto(f"{fresh.path}?{fresh.query}")
        assert response is not None and response.status == 200
        assert "山田 太郎" in await page.inner_text("header")
    assert observe(pg_sessions, subscription_id).email_kinds.count("billing_link") == 1


def test_the_page_words_have_the_same_keys_and_placeholders_in_both_languages() -> None:
    assert WORDS["en"].keys() == WORDS["ja"].keys()
    for key, english in WORDS["en"].items():
        assert re.findall(r"{\w+}", english) == re.findall(r"{\w+}", WORDS["ja"][key]), key


def test_customers_may_cancel_on_their_page_in_test_mode_and_with_a_live_key_when_allowed() -> None:
    assert SETTINGS.portal_cancel
    live = SETTINGS.model_copy(update={"stripe_api_key": "sk_live_x"})
    assert not live.portal_cancel
    assert live.model_copy(update={"portal_allow_cancel": True}).portal_cancel
    assert not SETTINGS.model_copy(update={"portal_allow_cancel": False}).portal_cancel


def test_forms_the_page_did_not_write_are_refused_and_never_answered_with_an_error(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway, outbox: Path
) -> None:
    subscription_id = stored_subscription(pg_sessions)
    genuine = links.signed_query(
        subscription_id, expires=int(time.time()) + 3600, secret=SETTINGS.link_secret
    )
    forged = {**genuine, "token": "x" * 5000}
    app = create_app(
        settings=SETTINGS.model_copy(update={"outbox_dir": outbox}), sessions=pg_sessions,
        temporal=connect_to("127.0.0.1:1"), stripe=stripe_gateway,
    )  # fmt: skip
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        for path in ("/billing/card", "/billing/cancel", "/billing/link", "/billing/budget",
                     "/billing/budget/remove"):  # fmt: skip
            for body in (b"\xff\xfe=1", urlencode(forged).encode(), b""):
                answer = http.post(path, content=body, headers=form)
                assert answer.status_code == 403, (path, body[:20], answer.status_code)
                assert "not valid" in answer.text and subscription_id not in answer.text
        assert http.get("/billing").status_code == 403
        assert http.get("/billing/invoices/" + "i" * 500, params=forged).status_code == 403
        # A blank reason is refused before anything is sent (the API's rule for reasons).
        blank = http.post("/billing/cancel", data={**genuine, "reason": "   "})
        assert blank.status_code == 303
        assert "problem=cancel.reason_needed" in blank.headers["location"]
        # So is a budget that is not an amount: the error to show beside the field.
        negative = http.post("/billing/budget", data={**genuine, "amount": "-1"})
        assert negative.status_code == 303
        assert "problem=budget.negative" in negative.headers["location"]
        assert (
            http.get("/billing/static/billing.css").headers["content-type"].startswith("text/css")
        )
    assert not [
        a for a in observe(pg_sessions, subscription_id).audit if a.actor.startswith("customer")
    ]
