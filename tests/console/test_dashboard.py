"""The dashboard in a real browser: its charts hold the analytics API's numbers for the
same range and currency, the currency and range selectors switch them, and "needs
attention" links to a past-due subscription.

The data go in as a user's would: customers with a test card (one declined), prices
in JPY and USD, subscriptions started through the service and billed by the module's
worker on the dev server.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Page
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.charts import Series, Units, bar_chart, month_label, nice_step
from api.console.dashboard import month_bounds
from billing.money import format_amount, format_compact
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, customers, invoices, staff, subscriptions
from kakin.services.api_keys import CreatedKey
from kakin.services.staff import Origin
from models.repositories import analytics as analytics_sql
from tests.analytics.fixture_life import private_database
from tests.console.browsing import PASSWORD, enrol
from tests.console.office import ROLES, Office
from tests.helpers import DECLINED_CARD, OK_CARD, client, eventually
from tests.support.browser import PHONE, OpenPage, Screenshot

pytestmark = pytest.mark.devserver


@pytest.fixture(scope="module")
def pg_sessions() -> Iterator[sessionmaker[Session]]:
    """This module's own database (the console, its worker and its keys use it): the
    dashboard's figures, the forecast above all, read every subscription of a currency,
    and the shared database's, left by other modules, made the page's forecast and the
    API's differ in the full run (not understood yet; see the issue 14 note)."""
    with private_database() as sessions:
        yield sessions


@dataclass(frozen=True)
class Seeded:
    past_due: str  # a subscription whose first charge was declined
    paid: list[str]  # subscriptions billed and paid


def _subscriber(
    sessions: sessionmaker[Session], stripe: StripeGateway, *, name: str, currency: str,
    amount: int, card: str,
) -> tuple[str, str]:  # fmt: skip
    customer_id = customers.create_customer(
        sessions, stripe, email=f"{secrets.token_hex(3)}@example.jp", name=name,
        currency=currency, locale="ja", time_zone="Asia/Tokyo", card_number=card,
    )  # fmt: skip
    price_id = catalog.create_price(
        sessions, product_name=f"{name} plan", currency=currency, unit_amount=amount,
        interval="month",
    )  # fmt: skip
    return customer_id, price_id


@pytest.fixture(scope="module")
async def seeded(
    office: Office, stripe_gateway: StripeGateway, dev_env: WorkflowEnvironment
) -> AsyncIterator[Seeded]:
    plans = [
        ("山田 太郎", "JPY", 3980, OK_CARD),
        ("佐藤 花子", "JPY", 12000, OK_CARD),
        ("Jane Doe", "USD", 1250, OK_CARD),
        ("鈴木 一郎", "JPY", 9800, DECLINED_CARD),
    ]
    started = []
    for name, currency, amount, card in plans:
        customer_id, price_id = _subscriber(
            office.sessions, stripe_gateway, name=name, currency=currency, amount=amount,
            card=card,
        )  # fmt: skip
        subscription_id = await subscriptions.start_subscription(
            dev_env.client, office.sessions, task_queue=office.task_queue,
            customer_id=customer_id, price_id=price_id,
        )  # fmt: skip
        started.append(subscription_id)
    *paid, past_due = started

    def status(subscription_id: str) -> str:
        return subscriptions.get_subscription(office.sessions, subscription_id, lambda s: s.status)

    def billed() -> bool:
        def paid_invoices(subscription_id: str) -> list[str]:
            rows, _ = invoices.list_invoices(
                office.sessions, lambda i: i.id, limit=1, starting_after=None,
                status="paid", subscription_id=subscription_id,
            )  # fmt: skip
            return rows

        return all(paid_invoices(s) for s in paid) and status(past_due) == "past_due"

    await eventually(billed, timeout=60, what="three invoices paid, one subscription past due")
    yield Seeded(past_due=past_due, paid=paid)


def api_report(office: Office, key: CreatedKey, report: str, **params: str) -> dict[str, Any]:
    with client(office.url, key.secret) as http:
        response = http.get(f"/v1/analytics/{report}", params=params)
    assert response.status_code == 200, response.text
    (block,) = response.json()["currencies"]
    return dict(block)


async def drawn(page: Page, series: str) -> dict[str, int]:
    """The values a chart draws for ``series``, by bucket, read from its SVG."""
    found: list[list[str]] = await page.eval_on_selector_all(
        f'svg [data-series="{series}"]',
        "nodes => nodes.map(n => [n.dataset.bucket, n.dataset.value])",
    )
    return {bucket: int(value) for bucket, value in found}


async def table_values(page: Page, series: str) -> dict[str, int]:
    """The same numbers from the visually hidden table beside the chart."""
    found: list[list[str]] = await page.eval_on_selector_all(
        f'table.visually-hidden [data-series="{series}"]',
        "nodes => nodes.map(n => [n.dataset.bucket, n.dataset.value])",
    )
    return {bucket: int(value) for bucket, value in found}


async def assert_charts_match_api(
    page: Page, office: Office, key: CreatedKey, **params: str
) -> None:
    mrr = api_report(office, key, "mrr", **params)["buckets"]
    revenue = api_report(office, key, "revenue", **params)["buckets"]
    assert await drawn(page, "mrr") == {b["label"]: b["mrr_end"] for b in mrr}
    assert await drawn(page, "invoiced") == {b["label"]: b["invoiced"] for b in revenue}
    assert await drawn(page, "collected") == {b["label"]: b["collected"] for b in revenue}
    assert await table_values(page, "mrr") == await drawn(page, "mrr")
    aging = api_report(office, key, "receivables", **params)["buckets"][-1]
    bands = ("current", "days_1_30", "days_31_60", "days_61_90", "days_over_90")
    assert await drawn(page, "aging") == {band: aging[band] for band in bands}
    dunning = api_report(office, key, "dunning", **params)["buckets"][-1]
    steps = ("first_attempts", "first_attempt_failures", "recovered", "lost")
    assert await drawn(page, "funnel") == {step: dunning[step] for step in steps}
    forecast = api_report(office, key, "forecast", **params)["buckets"]
    windows = await page.eval_on_selector_all(
        "[data-window]", "nodes => nodes.map(n => [n.dataset.window, n.dataset.value])"
    )
    assert {w: int(v) for w, v in windows} == {w["window"]: w["total"] for w in forecast}


# -- the page in the browser ------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
async def test_every_role_sees_the_dashboard_without_a_console_error(
    office: Office, seeded: Seeded, open_page: OpenPage, role: str
) -> None:
    page = await office.page(open_page, role, "/console/")
    assert await page.locator("h1").inner_text() == "Dashboard"
    assert await page.locator("svg.chart").count() == 4
    assert await page.locator("nav a[aria-current=page]").inner_text() == "Dashboard"


async def test_the_charts_hold_the_analytics_apis_numbers(
    office: Office, seeded: Seeded, open_page: OpenPage, made_keys: dict[str, CreatedKey],
    screenshot: Screenshot,
) -> None:  # fmt: skip
    page = await office.page(open_page, "finance", "/console/")
    # Without a choice, the currency most customers pay in: the ledger's currencies are
    # offered by how many customers pay in each, then by code.
    offered = await page.eval_on_selector_all(
        "select[name=currency] option", "nodes => nodes.map(n => n.value)"
    )
    with office.sessions() as session:
        paying = analytics_sql.customers_per_currency(session)
    assert {"JPY", "USD"} <= set(offered)
    assert offered == sorted(offered, key=lambda code: (-paying.get(code, 0), code))
    assert await page.locator("select[name=currency]").input_value() == offered[0]

    await page.goto("/console/?currency=JPY")
    assert len(await drawn(page, "mrr")) == 12  # the last 12 months, this one included
    await assert_charts_match_api(page, office, made_keys["finance"], currency="JPY")
    mrr = api_report(office, made_keys["finance"], "mrr", currency="JPY")["buckets"][-1]
    assert mrr["mrr_end"] >= 3980 + 12000
    headline = await page.locator("[data-figure=mrr]").inner_text()
    assert headline == f"¥{mrr['mrr_end']:,}"
    await screenshot(page, "console-dashboard")


async def test_the_currency_and_range_selectors_switch_the_figures(
    office: Office, seeded: Seeded, open_page: OpenPage, made_keys: dict[str, CreatedKey]
) -> None:
    page = await office.page(open_page, "support", "/console/")
    await page.select_option("select[name=currency]", "USD")
    await page.click("form.selectors button")
    await page.wait_for_url("**/console/?currency=USD*")
    await assert_charts_match_api(page, office, made_keys["finance"], currency="USD")
    mrr = api_report(office, made_keys["finance"], "mrr", currency="USD")["buckets"][-1]
    assert mrr["mrr_end"] >= 1250
    headline = await page.locator("[data-figure=mrr]").inner_text()
    assert headline == format_amount(mrr["mrr_end"], "USD")  # $12.50
    assert "¥" not in await page.locator(".panels").inner_text()

    # Three months, the current one last: the API's from/to are those months' first days.
    this_month = sorted(await drawn(page, "mrr"))[-1]
    year, month = int(this_month[:4]), int(this_month[5:])
    back = year * 12 + month - 1 - 2
    first = f"{back // 12}-{back % 12 + 1:02d}"
    after = year * 12 + month
    end = f"{after // 12}-{after % 12 + 1:02d}-01"
    await page.fill("input[name=from]", first)
    await page.fill("input[name=to]", this_month)
    await page.click("form.selectors button")
    await page.wait_for_url(f"**from={first}*")
    assert sorted(await drawn(page, "mrr")) == sorted(
        {first, f"{(back + 1) // 12}-{(back + 1) % 12 + 1:02d}", this_month}
    )
    await assert_charts_match_api(
        page, office, made_keys["finance"], currency="USD", **{"from": f"{first}-01", "to": end}
    )


async def test_needs_attention_links_to_the_past_due_subscription(
    office: Office, seeded: Seeded, open_page: OpenPage
) -> None:
    page = await office.page(open_page, "support", "/console/")
    past_due = page.locator('table[data-kind="past_due"]')
    href = f'a[href="/console/subscriptions/{seeded.past_due}"]'
    assert await past_due.locator(href).count() == 1
    row = past_due.locator("tr", has=page.locator(href))
    assert "鈴木 一郎" in await row.inner_text()
    assert "past due" in await row.inner_text()
    failing = page.locator('table[data-kind="failing"] a[href^="/console/invoices/"]')
    assert await failing.count() >= 1
    assert "9,800" in await page.locator('table[data-kind="failing"]').inner_text()


async def _japanese_page(office: Office, open_page: OpenPage, **options: Any) -> Page:
    """A finance member who reads the console in Japanese, signed in in the browser."""
    member = staff.create_staff(
        office.sessions, email=f"ja-{secrets.token_hex(3)}@example.jp", name="経理 次郎",
        role="finance", password=PASSWORD, locale="ja", actor="test",
        origin=Origin(address="test"), now=office.clock(),
    )  # fmt: skip
    with httpx.Client(base_url=office.url, follow_redirects=False, timeout=60) as http:
        enrol(http, member, office.clock)
        cookies = [
            {"name": c.name, "value": c.value or "", "url": office.url + "/console"}
            for c in http.cookies.jar
        ]
    page = await open_page(office.url, locale="ja-JP", **options)
    await page.context.add_cookies(cookies)  # type: ignore[arg-type]
    await page.goto("/console/")
    return page


async def test_in_japanese_and_on_a_phone(
    office: Office, seeded: Seeded, open_page: OpenPage, screenshot: Screenshot
) -> None:
    page = await _japanese_page(office, open_page)
    assert await page.locator("h1").inner_text() == "ダッシュボード"
    headline = await page.locator("[data-figure=mrr]").inner_text()
    assert headline.endswith("円") and "¥" not in headline
    await screenshot(page, "console-dashboard-ja")

    phone = await office.page(open_page, "finance", "/console/", viewport=PHONE)
    wide = await phone.evaluate("document.documentElement.scrollWidth")
    assert wide <= PHONE["width"], f"the page scrolls sideways on a phone ({wide} px)"
    await screenshot(phone, "console-dashboard-phone")


def test_an_unreadable_range_is_refused_with_the_field_named(
    office: Office, seeded: Seeded
) -> None:
    page = office.client("finance").get("/console/", params={"from": "2031-13"})
    assert page.status_code == 422
    assert "from" in page.text and 'class="error"' in page.text


# -- the drawing, without a browser -------------------------------------------------------


def test_axis_amounts_read_as_people_read_them() -> None:
    assert format_compact(1_200_000, "JPY", locale="en") == "¥1.2M"
    assert format_compact(1_200_000, "JPY", locale="ja") == "120万円"
    assert format_compact(150_000_000, "JPY", locale="ja") == "1.5億円"
    assert format_compact(3_980, "JPY", locale="ja") == "3,980円"
    assert format_compact(1_250_000, "USD", locale="en") == "$12.5K"
    assert format_compact(1_250, "USD", locale="en") == "$12.50"
    assert month_label("2031-01", "ja", first=True) == ("1月", "2031年")
    assert month_label("2031-03", "en", first=False) == ("Mar", "")
    assert nice_step(398_000, 1) == 100_000
    assert nice_step(1_250, 100) == 500


def test_a_range_of_months_is_the_reports_from_and_to() -> None:
    assert month_bounds("2031-01", "2031-12") == ("2031-01-01", "2032-01-01")
    assert month_bounds("2031-03", None) == ("2031-03-01", None)
    assert month_bounds(None, None) == (None, None)
    assert month_bounds("2031-13", "2031-00") == ("2031-13", "2031-00")  # the service refuses


def test_a_chart_carries_its_numbers_and_escapes_its_words() -> None:
    chart = bar_chart(
        "<b>t</b>", ["2031-02", "2031-03"],
        [Series("invoiced", "Invoiced <x>", (0, 398_000))], Units("JPY", "en"), head="Month",
    )  # fmt: skip
    svg = str(chart.svg)
    assert 'data-bucket="2031-03" data-value="398000"' in svg
    assert "<b>" not in svg and "&lt;b&gt;" in svg and "&lt;x&gt;" in svg
    assert "¥400K" in svg  # the axis's top tick
    dollars = bar_chart("t", ["2031-03"], [Series("s", "s", (1_250,))], Units("USD", "en"), head="")
    assert ">$0<" in str(dollars.svg) and ">$15<" in str(dollars.svg)  # no .00 on a tick
    assert "¥398,000" in str(chart.table)
