"""Every console page each role may open, in Chromium: it loads (200, the console's own
page, not its error page) with no console error, no failed request and nothing asked of
another origin (``open_page`` watches all three), every console link on it leads to a
page the role may open (what a role may not do is not offered to it, anywhere), and a
sample of pages has no sideways scrolling at phone width.

The pages are those of ``ACCESS`` in test_console_access (found in the app's own routes,
so a new page is visited as soon as its roles are decided there), with real ids of data
put in through the services: a customer whose monthly subscription has billed and been
paid, its invoice (its document and PDF fetched), a dearer plan for the plan-change
preview. One browser context per role, each page opened in turn in it, as a member of
staff clicking through would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from playwright.async_api import Page
from temporalio.testing import WorkflowEnvironment

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, customers, subscriptions
from kakin.views.invoices import InvoiceOut
from tests.console.office import ROLES, Office
from tests.console.test_catalog import KINDS, ja_admin  # noqa: F401 (a fixture, shared)
from tests.console.test_console_access import ACCESS, ONWARDS, Before, console_routes, url_of
from tests.helpers import customer_and_price, eventually
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

pytestmark = pytest.mark.devserver

# Pages looked at on a phone too (as registered): the lists and one of each kind.
ON_A_PHONE = {
    "/console/",
    "/console/customers",
    "/console/customers/{customer_id}",
    "/console/subscriptions",
    "/console/subscriptions/{subscription_id}",
    "/console/catalog",
    "/console/catalog/{section}",
    "/console/staff",
    "/console/api-keys",
    "/console/invoices",
    "/console/invoices/{invoice_id}",
}


@dataclass(frozen=True)
class Billed:
    customer_id: str
    subscription_id: str
    invoice_id: str
    dearer_price_id: str


@pytest.fixture(scope="module")
async def billed(
    office: Office, stripe_gateway: StripeGateway, dev_env: WorkflowEnvironment
) -> AsyncIterator[Billed]:
    """A customer whose monthly subscription started now and whose first invoice was paid
    (the module's worker bills it), and a dearer plan it could change to."""
    customer_id, price_id = customer_and_price(office.sessions, stripe_gateway)
    dearer = catalog.create_price(
        office.sessions, product_name="Business plan", currency="JPY", unit_amount=9800
    )
    subscription_id = await subscriptions.start_subscription(
        dev_env.client, office.sessions, task_queue=office.task_queue, customer_id=customer_id,
        price_id=price_id,
    )  # fmt: skip

    def paid() -> list[str]:
        rows, _ = customers.list_customer_invoices(
            office.sessions, customer_id, InvoiceOut.of, limit=10, starting_after=None
        )
        return [row.id for row in rows if row.status == "paid"]

    await eventually(lambda: bool(paid()), timeout=40, what="the first invoice paid")
    yield Billed(customer_id, subscription_id, paid()[0], dearer)


def pages_for(office: Office, role: str, billed: Billed) -> list[tuple[str, str]]:
    """(route as registered, URL) of every GET page ``ACCESS`` admits ``role`` to; each
    catalog section; the plan-change preview with a plan chosen."""
    cache = {
        "customer_id": billed.customer_id,
        "subscription_id": billed.subscription_id,
        "invoice_id": billed.invoice_id,
    }
    pages: list[tuple[str, str]] = []
    for route in console_routes(office):
        access = ACCESS.get((route.method, route.path))
        # Signing in's own pages (and the stylesheet) are test_sign_in's: signed in,
        # they only send one on to the console.
        if route.method != "GET" or access is None or isinstance(access, Before):
            continue
        if role not in access:
            continue
        if "{section}" in route.path:
            pages += [(route.path, route.path.replace("{section}", kind)) for kind in KINDS]
            continue
        url = url_of(office, route, cache)
        if route.path in ONWARDS:
            url += f"?price_id={billed.dearer_price_id}"
        pages.append((route.path, url))
    return pages


# Not pages of the console but files it serves (an invoice as issued, framed in its
# page; its PDF): fetched with the page's session, their kind checked.
FILES = {
    "/console/invoices/{invoice_id}/document": "text/html",
    "/console/invoices/{invoice_id}/pdf": "application/pdf",
}


@dataclass(frozen=True)
class Links:
    """Which console pages a link may lead to, for one role: the GET routes of ``ACCESS``,
    each as a pattern (a path parameter is one segment), with whether the role may open it."""

    routes: list[tuple[re.Pattern[str], bool, bool]]  # (pattern, literal, admitted)

    @classmethod
    def of(cls, office: Office, role: str) -> Links:
        routes = []
        for route in console_routes(office):
            access = ACCESS.get((route.method, route.path))
            if route.method != "GET" or access is None:
                continue
            parts = re.split(r"{[^}]+}", route.path)
            admitted = isinstance(access, Before) or role in access
            pattern = re.compile("[^/]+".join(re.escape(part) for part in parts))
            routes.append((pattern, len(parts) == 1, admitted))
        return cls(routes)

    def problem(self, path: str) -> str | None:
        """Why a link to ``path`` is wrong for the role, or None."""
        matching = [(lit, ok) for pattern, lit, ok in self.routes if pattern.fullmatch(path)]
        # A literal route wins over a parameter (/customers/new over /customers/{id}).
        chosen = [ok for lit, ok in matching if lit] or [ok for _, ok in matching]
        if not chosen:
            return "a link to no page"
        return None if any(chosen) else "a link to a page the role may not open"


async def open_each(page: Page, pages: list[tuple[str, str]], links: Links) -> list[str]:
    """Open each page in turn; what was wrong with each, one a line."""
    wrong: list[str] = []
    for route, url in pages:
        if route in FILES:
            fetched = await page.request.get(url)
            kind = fetched.headers.get("content-type", "")
            if fetched.status != 200 or not kind.startswith(FILES[route]):
                wrong.append(f"{url}: HTTP {fetched.status} {kind}")
            continue
        answer = await page.goto(url)
        status = answer.status if answer else None
        if status != 200:
            wrong.append(f"{url}: HTTP {status}")
            continue
        if not page.url.endswith(url):
            wrong.append(f"{url}: ended at {page.url}")
        if await page.locator("main h1").count() == 0:
            wrong.append(f"{url}: no heading")
        hrefs = await page.eval_on_selector_all(
            "a[href^='/console']", "links => links.map(a => a.pathname)"
        )
        for href in sorted(set(hrefs)):
            problem = links.problem(href)
            if problem:
                wrong.append(f"{url}: {problem}, {href}")
    return wrong


@pytest.mark.parametrize(
    ("role", "locale"), [*((role, "en") for role in ROLES), ("admin", "ja")]
)  # fmt: skip
async def test_every_page_a_role_may_open_loads_cleanly_in_the_browser(
    office: Office, billed: Billed, open_page: OpenPage, screenshot: Screenshot,
    ja_admin: httpx.Client,  # noqa: F811 (test_catalog's fixture)
    role: str, locale: str,
) -> None:  # fmt: skip
    pages = pages_for(office, role, billed)
    assert len(pages) >= 10, pages  # the discovery found the console's pages
    if locale == "ja":
        page = await office.page_for(open_page, ja_admin, locale="ja-JP")
    else:
        page = await office.page(open_page, role)
    assert await page.get_attribute("html", "lang") == locale
    menu = await page.eval_on_selector_all("nav a", "links => links.map(a => a.pathname)")
    opened = {url.split("?", 1)[0] for _, url in pages}
    assert set(menu) <= opened, f"the menu links to pages {role} may not open"

    wrong = await open_each(page, pages, Links.of(office, role))
    assert not wrong, f"as {role}:\n  " + "\n  ".join(wrong)

    await page.set_viewport_size(PHONE)
    wide: list[str] = []
    for route, url in pages:
        if route not in ON_A_PHONE:
            continue
        await page.goto(url)
        overflow = await horizontal_overflow(page)
        if overflow:
            wide.append(f"{url}: {overflow}px too wide")
        if role == "admin" and route == "/console/customers/{customer_id}":
            await screenshot(page, f"console-pages-customer-phone-{locale}")
    assert not wide, f"as {role}, scrolled sideways on a phone:\n  " + "\n  ".join(wide)


def test_the_sample_looked_at_on_a_phone_names_pages_that_exist(office: Office) -> None:
    """A renamed page would quietly drop out of the phone check: say so instead."""
    served = {route.path for route in console_routes(office)}
    missing = sorted((ON_A_PHONE | FILES.keys()) - served)
    assert not missing, f"these name pages the console does not serve: {missing}"
