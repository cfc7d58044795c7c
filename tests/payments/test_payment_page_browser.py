"""The card-update page in a real browser (headless Chromium): what the customer sees and does.

The page must load with no console error, no failed request and nothing from another
origin (``open_page`` fails the test otherwise), in the customer's language, fit a phone,
and replace a declined card so the workflow's retry pays the invoice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from kakin.adapters.stripe_gateway import StripeGateway
from models.tables import Invoice, Subscription
from tests.api.test_api_subscriptions import stored_subscription
from tests.helpers import (
    DECLINED_CARD,
    SETTINGS,
    advance_to,
    connect_to,
    observe,
    running,
    start_subscription,
    status_of,
)
from tests.payments.test_payment_page import link_in_outbox, signed_link
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow


@dataclass(frozen=True)
class Language:
    """What the customer reads in one language, and the browser that customer uses."""

    code: str
    browser_locale: str
    customer_name: str
    title: str
    card_label: str
    submit: str
    amount_due: str
    not_a_test_card: str
    thanks: str


JAPANESE = Language(
    code="ja", browser_locale="ja-JP", customer_name="山田 太郎",
    title="お支払い方法の更新", card_label="カード番号", submit="更新してお支払い",
    amount_due="3,000円", not_a_test_card="Stripe のテストカード番号を入力してください。",
    thanks="ありがとうございます。新しいお支払い方法で、ただちにお支払いを再試行します。",
)  # fmt: skip
ENGLISH = Language(
    code="en", browser_locale="en-US", customer_name="Taro Yamada",
    title="Update your payment method", card_label="Card number", submit="Update and pay",
    amount_due="¥3,000", not_a_test_card="Please enter a Stripe test card number.",
    thanks="Thank you. We are retrying your payment with the new card now.",
)  # fmt: skip
LANGUAGES = pytest.mark.parametrize("language", [JAPANESE, ENGLISH], ids=lambda lang: lang.code)

# Not a Stripe test card: the page answers 422 with the error, which the browser reports
# as a failed load (and a console error); that one is expected.
REFUSED_CARD = "4111 1111 1111 1111"
ANSWERED_422 = [r"HTTP 422: POST .*/pay/update", r"status of 422"]


def set_customer(sessions: sessionmaker[Session], subscription_id: str, language: Language) -> None:
    with sessions() as session:
        customer = session.get_one(Subscription, subscription_id).customer
        customer.locale, customer.name = language.code, language.customer_name
        customer.time_zone = "Asia/Tokyo"
        session.commit()


def unpaid_subscription(sessions: sessionmaker[Session], language: Language) -> str:
    """A subscription (rows only, no workflow) whose first invoice of 3,000円 is unpaid."""
    subscription_id = stored_subscription(sessions)
    set_customer(sessions, subscription_id, language)
    with sessions() as session:
        invoice = session.get_one(Invoice, f"in_{subscription_id}")
        invoice.status, invoice.total = "open", 3000
        invoice.number = f"KK-{secrets.token_hex(3).upper()}-0001"
        session.commit()
    return subscription_id


@LANGUAGES
async def test_the_page_loads_clean_in_the_customers_language_and_fits_a_phone(
    language: Language,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    open_page: OpenPage,
    screenshot: Screenshot,
) -> None:
    link = "/pay/update?" + urlencode(signed_link(unpaid_subscription(pg_sessions, language)))
    app = create_app(
        settings=SETTINGS, sessions=pg_sessions, temporal=connect_to("127.0.0.1:1"),
        stripe=stripe_gateway,
    )  # fmt: skip
    with running(app) as url:
        page = await open_page(url, locale=language.browser_locale)
        await page.goto(link)
        assert await page.locator("html").get_attribute("lang") == language.code
        assert (await page.title()).startswith(language.title)
        assert await page.get_by_role("heading").inner_text() == language.title
        assert language.customer_name in await page.inner_text("main")
        assert language.amount_due in await page.inner_text(".due")
        await page.get_by_label(language.card_label).focus()  # the label names the field
        await screenshot(page, f"pay-update-{language.code}")

        phone = await open_page(url, locale=language.browser_locale, viewport=PHONE)
        await phone.goto(link)
        assert await horizontal_overflow(phone) == 0
        button = await phone.get_by_role("button", name=language.submit).bounding_box()
        assert button is not None and button["x"] + button["width"] <= PHONE["width"]
        await screenshot(phone, f"pay-update-{language.code}-phone")


@LANGUAGES
async def test_a_customer_replaces_a_declined_card_in_the_browser_and_the_invoice_is_paid(
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
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    assert (await status_of(time_env, subscription_id)).status == "past_due"
    set_customer(pg_sessions, subscription_id, language)
    emailed = urlsplit(link_in_outbox(outbox, "payment_failed"))

    app = create_app(
        settings=SETTINGS, sessions=pg_sessions,
        temporal=connect_to(time_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )  # fmt: skip
    with running(app) as url:
        page = await open_page(url, locale=language.browser_locale, allow=ANSWERED_422)
        await page.goto(f"{emailed.path}?{emailed.query}")
        assert language.amount_due in await page.inner_text(".due")

        card = page.get_by_label(language.card_label)
        await card.press_sequentially(REFUSED_CARD)
        async with page.expect_navigation():
            await page.get_by_role("button", name=language.submit).click()
        assert await page.inner_text(".message.error") == language.not_a_test_card
        assert REFUSED_CARD.replace(" ", "") not in (await page.content()).replace(" ", "")
        assert await card.input_value() == ""  # the form again, empty, to try once more
        await screenshot(page, f"pay-update-{language.code}-refused")
        assert (await status_of(time_env, subscription_id)).status == "past_due"

        await card.press_sequentially("4242 4242 4242 4242")
        async with page.expect_navigation():
            await page.get_by_role("button", name=language.submit).click()
        assert await page.inner_text(".message") == language.thanks
        assert await page.locator("form").count() == 0
        await screenshot(page, f"pay-update-{language.code}-thanks")
    await advance_to(time_env, start + timedelta(days=1, minutes=1))

    assert (await status_of(time_env, subscription_id)).status == "active"
    seen = observe(pg_sessions, subscription_id)
    assert [i.status for i in seen.invoices] == ["paid"]
