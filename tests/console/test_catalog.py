"""The catalog in the console: an admin sets up a plan from the forms (tax rate, flat and
tiered prices, a metric and a metered price, coupons), each then shown in the list and
read back through the catalog service with the values typed; a wrong form says what is
wrong beside the field and stores nothing; other roles read, and their POSTs are 403."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from kakin.services import api_keys, audit, catalog
from kakin.views.catalog import CouponOut, MetricOut, PriceOut, TaxRateOut
from tests.console.browsing import enrol, new_staff, post
from tests.console.office import Office
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

CATALOG = "/console/catalog"
KINDS = ("prices", "metrics", "tax-rates", "coupons")


@pytest.fixture(scope="module")
def ja_admin(office: Office) -> Iterator[httpx.Client]:
    """An admin who reads the console in Japanese, signed in."""
    with httpx.Client(base_url=office.url, follow_redirects=False, timeout=60) as client:
        member = new_staff(office.sessions, office.clock, locale="ja", name="管理 花子")
        enrol(client, member, office.clock)
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def count(office: Office, lister: Callable[..., tuple[list[Any], bool]]) -> int:
    """How many rows a catalog list holds, read through the service page by page."""
    total, after = 0, None
    while True:
        rows, more = lister(office.sessions, lambda row: row.id, limit=100, starting_after=after)
        total += len(rows)
        if not more:
            return total
        after = rows[-1]


def submit(client: httpx.Client, kind: str, **fields: str) -> httpx.Response:
    """Open the kind's form, as a person does, and post it with ``fields``."""
    form = client.get(f"{CATALOG}/{kind}/new")
    assert form.status_code == 200, form.text
    return post(client, f"{CATALOG}/{kind}", form.text, **fields)


def created_id(response: httpx.Response, kind: str) -> str:
    assert response.status_code == 303, response.text
    found = re.fullmatch(rf"{CATALOG}\?created=([\w-]+)#{kind}", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


def row_of(page: str, row_id: str) -> str:
    """The list's table row of ``row_id``."""
    found = re.search(rf'data-id="{row_id}">(.*?)(?=<tr[^>]*data-id=|</tbody>)', page, re.S)
    assert found, f"{row_id} is not in the list"
    return found.group(1)


def error_beside(page: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="e-{field}">([^<]*)</p>', page)
    assert found, f"no error beside {field}"
    return found.group(1)


def new_tax_rate(client: httpx.Client) -> str:
    return created_id(submit(client, "tax-rates", name="消費税", percentage="10"), "tax-rates")


def test_a_tax_rate_and_a_flat_yen_price_from_the_forms(office: Office) -> None:
    admin = office.client("admin")
    rate_id = new_tax_rate(admin)
    rate = catalog.get_tax_rate(office.sessions, rate_id, TaxRateOut.of)
    assert (rate.name, rate.percentage, rate.inclusive) == ("消費税", "10", False)

    product = unique("Pro プラン ")
    made = submit(
        admin, "prices", product_name=product, nickname="月額", currency="jpy",
        interval="month", interval_count="1", pricing_model="flat", unit_amount="3,980",
        **{f"tax_rate-{rate_id}": "on", "tier-0-up_to": "", "tier-1-up_to": ""},
    )  # fmt: skip
    price_id = created_id(made, "prices")
    price = catalog.get_price(office.sessions, price_id, PriceOut.of)
    assert (price.product.name, price.nickname, price.currency, price.unit_amount) == (
        product, "月額", "JPY", 3980,
    )  # fmt: skip
    assert (price.pricing_model, price.interval, price.tiers, price.tax_rate_ids) == (
        "flat", "month", None, [rate_id],
    )  # fmt: skip

    listing = admin.get(made.headers["location"])
    assert listing.status_code == 200
    row = row_of(listing.text, price_id)
    assert product in row and "¥3,980" in row and "monthly" in row and "消費税 10%" in row
    assert "消費税" in row_of(listing.text, rate_id) and "10%" in row_of(listing.text, rate_id)
    assert "Saved" in listing.text

    actor = office.members["admin"].member.actor
    entries, _ = audit.list_entries_shaped(
        office.sessions, lambda e: (e.action, e.entity_id, e.details), actor=actor
    )
    rows = {(action, entity): details for action, entity, details in entries}
    assert rows[("price.created", price_id)]["address"] == "127.0.0.1"  # who, and from where
    assert rows[("price.created", price_id)]["pricing_model"] == "flat"
    assert rows[("tax_rate.created", rate_id)]["percentage"] == "10"


def test_a_graduated_price_with_three_tiers_from_the_table(office: Office) -> None:
    admin = office.client("admin")
    product = unique("API ")
    made = submit(
        admin, "prices", product_name=product, currency="JPY", interval="month",
        pricing_model="graduated",
        **{
            "tier-0-up_to": "1,000", "tier-0-unit_amount": "10", "tier-0-flat_amount": "",
            "tier-1-up_to": "10000", "tier-1-unit_amount": "5", "tier-1-flat_amount": "500",
            "tier-2-up_to": "", "tier-2-unit_amount": "0.5", "tier-2-flat_amount": "",
            "tier-3-up_to": "", "tier-3-unit_amount": "", "tier-3-flat_amount": "",
        },
    )  # fmt: skip
    price_id = created_id(made, "prices")
    price = catalog.get_price(office.sessions, price_id, PriceOut.of)
    assert price.pricing_model == "graduated"
    assert price.tiers == [
        {"up_to": "1000", "unit_amount": "10", "flat_amount": 0},
        {"up_to": "10000", "unit_amount": "5", "flat_amount": 500},
        {"up_to": None, "unit_amount": "0.5", "flat_amount": 0},
    ]
    key = api_keys.create_key(office.sessions, name="catalog test", role="service").secret
    through_api = httpx.get(
        f"{office.url}/v1/prices/{price_id}", headers={"Authorization": f"Bearer {key}"}
    )
    assert through_api.status_code == 200 and through_api.json()["tiers"] == price.tiers
    row = row_of(admin.get(CATALOG + "/prices").text, price_id)
    assert "3 tiers" in row and "up to 1,000" in row and "+ ¥500" in row
    assert "above 10,000" in row and "0.5 JPY per unit" in row


def test_tiers_stored_without_a_flat_fee_are_listed(office: Office) -> None:
    """Tiers the API took without ``flat_amount`` (it is optional there) list as well."""
    metric = unique("calls_")
    catalog.create_metric(office.sessions, code=metric, name="Calls", aggregation="count")
    price_id = catalog.create_price(
        office.sessions, product_name=unique("Calls "), currency="JPY",
        pricing_model="graduated", metric_code=metric,
        tiers=[{"up_to": "1000", "unit_amount": "0"}, {"up_to": None, "unit_amount": "0.015"}],
    )  # fmt: skip
    listed = office.client("finance").get(CATALOG + "/prices")
    assert listed.status_code == 200
    row = row_of(listed.text, price_id)
    assert "up to 1,000" in row and "above 1,000" in row and "+ ¥" not in row


def test_a_metric_and_a_metered_price(office: Office) -> None:
    admin = office.client("admin")
    code = unique("api_calls_")
    metric_id = created_id(
        submit(admin, "metrics", code=code, name="API 呼び出し", aggregation="count"), "metrics"
    )
    metric = catalog.get_metric(office.sessions, metric_id, MetricOut.of)
    assert (metric.code, metric.name, metric.aggregation, metric.property) == (
        code, "API 呼び出し", "count", None,
    )  # fmt: skip
    price_id = created_id(
        submit(
            admin, "prices", product_name=unique("Calls "), currency="JPY", interval="month",
            pricing_model="per_unit", unit_amount_decimal="0.015", metric=code,
        ),
        "prices",
    )  # fmt: skip
    price = catalog.get_price(office.sessions, price_id, PriceOut.of)
    assert (price.pricing_model, price.unit_amount_decimal, price.metric_id) == (
        "per_unit", "0.015", metric_id,
    )  # fmt: skip
    page = admin.get(CATALOG).text
    assert f"metered on {code}" in row_of(page, price_id)
    assert "0.015 JPY per unit" in row_of(page, price_id)
    assert code in row_of(page, metric_id) and "Count events" in row_of(page, metric_id)


def test_coupons_percent_and_amount(office: Office) -> None:
    admin = office.client("admin")
    percent_code, amount_code = unique("WELCOME"), unique("YEN500-")
    percent_id = created_id(
        submit(
            admin, "coupons", code=percent_code, name="初回10%オフ", duration="repeating",
            percent_off="10", duration_in_periods="3", max_redemptions="100",
        ),
        "coupons",
    )  # fmt: skip
    amount_id = created_id(
        submit(
            admin, "coupons", code=amount_code, name="500円引き", duration="once",
            amount_off="500", currency="JPY", redeem_by="2031-03-31T23:59:59+09:00",
        ),
        "coupons",
    )  # fmt: skip
    percent = catalog.get_coupon(office.sessions, percent_id, CouponOut.of)
    assert (percent.code, percent.percent_off, percent.amount_off, percent.duration) == (
        percent_code, "10", None, "repeating",
    )  # fmt: skip
    assert (percent.duration_periods, percent.max_redemptions) == (3, 100)
    fixed = catalog.get_coupon(office.sessions, amount_id, CouponOut.of)
    assert (fixed.amount_off, fixed.currency, fixed.duration) == (500, "JPY", "once")
    assert fixed.redeem_by is not None
    assert fixed.redeem_by.isoformat() == "2031-03-31T14:59:59+00:00"
    page = admin.get(CATALOG + "/coupons").text
    assert "10% off" in row_of(page, percent_id) and "for 3 invoices" in row_of(page, percent_id)
    assert "¥500 off" in row_of(page, amount_id)
    assert "2031-03-31 14:59 UTC" in row_of(page, amount_id)


@pytest.mark.parametrize(
    ("typed", "says"),
    [("12.5", "whole number"), ("-3", "0 or more"), ("abc", "whole number")],
)
def test_a_bad_amount_is_refused_beside_its_field_and_nothing_is_stored(
    office: Office, typed: str, says: str
) -> None:
    admin = office.client("admin")
    prices, products = count(office, catalog.list_prices), unique("Bad ")
    refused = submit(
        admin, "prices", product_name=products, currency="JPY", interval="month",
        pricing_model="flat", unit_amount=typed,
    )  # fmt: skip
    assert refused.status_code == 422
    assert says in error_beside(refused.text, "unit_amount")
    assert re.search(rf'name="unit_amount" type="text" value="{re.escape(typed)}"', refused.text)
    assert 'aria-invalid="true"' in refused.text and "Nothing was saved" in refused.text
    assert count(office, catalog.list_prices) == prices


def test_refusals_of_the_service_and_of_a_tier_cell_stay_beside_their_fields(
    office: Office,
) -> None:
    admin = office.client("admin")
    prices, coupons = count(office, catalog.list_prices), count(office, catalog.list_coupons)
    cell = submit(
        admin, "prices", product_name=unique("Tiers "), currency="JPY", pricing_model="volume",
        **{"tier-0-up_to": "100", "tier-0-unit_amount": "3", "tier-1-up_to": "",
           "tier-1-unit_amount": "2", "tier-1-flat_amount": "12.5"},
    )  # fmt: skip
    assert cell.status_code == 422
    assert "whole number" in error_beside(cell.text, "tier-1-flat_amount")
    descending = submit(
        admin, "prices", product_name=unique("Tiers "), currency="JPY", pricing_model="volume",
        **{"tier-0-up_to": "100", "tier-0-unit_amount": "3", "tier-1-up_to": "50",
           "tier-1-unit_amount": "2", "tier-2-unit_amount": "1"},
    )  # fmt: skip
    assert descending.status_code == 422 and "ascend" in error_beside(descending.text, "tiers")
    currency = submit(admin, "prices", product_name=unique("X "), currency="XYZ", unit_amount="1")
    assert "unknown currency" in error_beside(currency.text, "currency")
    both = submit(
        admin, "coupons", code=unique("BOTH"), name="both", duration="once", percent_off="10",
        amount_off="500", currency="JPY",
    )  # fmt: skip
    assert both.status_code == 422 and "exactly one" in error_beside(both.text, "percent_off")
    rates, metrics = count(office, catalog.list_tax_rates), count(office, catalog.list_metrics)
    too_high = submit(admin, "tax-rates", name="消費税", percentage="150%")
    assert "between 0 and 100" in error_beside(too_high.text, "percentage")
    unsummed = submit(admin, "metrics", code=unique("gb_"), name="GB", aggregation="sum")
    assert "needs the property" in error_beside(unsummed.text, "property")
    assert count(office, catalog.list_prices) == prices
    assert count(office, catalog.list_coupons) == coupons
    assert count(office, catalog.list_tax_rates) == rates
    assert count(office, catalog.list_metrics) == metrics

    code = unique("dup_")
    created_id(submit(admin, "metrics", code=code, name="x", aggregation="count"), "metrics")
    again = submit(admin, "metrics", code=code, name="y", aggregation="count")
    assert again.status_code == 422 and "exists already" in error_beside(again.text, "code")


def test_an_admin_archives_a_price(office: Office) -> None:
    admin = office.client("admin")
    price_id = created_id(
        submit(admin, "prices", product_name=unique("Old "), currency="USD", unit_amount="1250"),
        "prices",
    )
    page = admin.get(CATALOG).text
    assert "$12.50" in row_of(page, price_id)
    confirm = admin.get(f"{CATALOG}/prices/{price_id}/archive")  # the list's button
    assert f'href="{CATALOG}/prices/{price_id}/archive"' in row_of(page, price_id)
    assert "Archive this price?" in confirm.text and "$12.50" in confirm.text
    assert catalog.get_price(office.sessions, price_id, PriceOut.of).active
    archived = post(admin, f"{CATALOG}/prices/{price_id}/archive", confirm.text)
    assert archived.status_code == 303
    assert not catalog.get_price(office.sessions, price_id, PriceOut.of).active
    after = admin.get(archived.headers["location"]).text
    assert "archived" in row_of(after, price_id) and "takes no new subscriptions" in after
    assert "/archive" not in row_of(after, price_id)
    assert "archived already" in admin.get(f"{CATALOG}/prices/{price_id}/archive").text
    assert admin.get(f"{CATALOG}/prices/price_nope/archive").status_code == 404
    actor = office.members["admin"].member.actor
    entries, _ = audit.list_entries_shaped(
        office.sessions, lambda e: (e.action, e.entity_id), actor=actor
    )
    assert entries.count(("price.archived", price_id)) == 1


def test_a_form_posted_without_its_csrf_token_is_refused_and_stores_nothing(
    office: Office,
) -> None:
    admin = office.client("admin")
    admin.get(CATALOG)
    prices, rates = count(office, catalog.list_prices), count(office, catalog.list_tax_rates)
    fields = {"product_name": unique("Forged "), "currency": "JPY", "unit_amount": "1"}
    assert admin.post(f"{CATALOG}/prices", data=fields).status_code == 403
    forged = {"name": "x", "percentage": "5", "csrf_token": "forged"}
    assert admin.post(f"{CATALOG}/tax-rates", data=forged).status_code == 403
    assert count(office, catalog.list_prices) == prices
    assert count(office, catalog.list_tax_rates) == rates


@pytest.mark.parametrize("role", ["support", "finance"])
def test_other_roles_read_the_catalog_and_may_not_change_it(office: Office, role: str) -> None:
    admin = office.client("admin")
    price_id = created_id(
        submit(admin, "prices", product_name=unique("Seen "), currency="JPY", unit_amount="980"),
        "prices",
    )
    client = office.client(role)
    page = client.get(CATALOG)
    assert page.status_code == 200
    assert "¥980" in row_of(page.text, price_id) and "only an admin can change it" in page.text
    assert f'href="{CATALOG}/prices/new"' not in page.text and "/archive" not in page.text
    for kind in KINDS:
        assert client.get(f"{CATALOG}/{kind}").status_code == 200
        assert client.get(f"{CATALOG}/{kind}/new").status_code == 403
    assert client.get(f"{CATALOG}/prices/{price_id}/archive").status_code == 403
    prices = count(office, catalog.list_prices)
    fields = {"product_name": unique("Sneaky "), "currency": "JPY", "unit_amount": "1"}
    assert post(client, f"{CATALOG}/prices", page.text, **fields).status_code == 403
    tax = post(client, f"{CATALOG}/tax-rates", page.text, name="x", percentage="5")
    assert tax.status_code == 403
    assert post(client, f"{CATALOG}/prices/{price_id}/archive", page.text).status_code == 403
    assert count(office, catalog.list_prices) == prices
    assert catalog.get_price(office.sessions, price_id, PriceOut.of).active


def test_a_page_of_an_unknown_kind_or_after_an_unknown_row_is_not_found(office: Office) -> None:
    admin = office.client("admin")
    assert admin.get(f"{CATALOG}/plans").status_code == 404
    assert admin.get(f"{CATALOG}/prices?after=price_nope").status_code == 404


def test_every_catalog_page_reads_in_japanese(office: Office, ja_admin: httpx.Client) -> None:
    paths = [CATALOG] + [f"{CATALOG}/{kind}" for kind in KINDS]
    for path in paths + [f"{CATALOG}/{kind}/new" for kind in KINDS]:
        page = ja_admin.get(path)
        assert page.status_code == 200, path
        assert '<html lang="ja">' in page.text and "カタログ" in page.text, path
    refused = submit(ja_admin, "coupons", code="空白 あり", name="", duration="repeating")
    assert refused.status_code == 422
    assert "英数字と - _ だけ" in error_beside(refused.text, "code")
    assert error_beside(refused.text, "name") == "入力してください。"


async def test_the_catalog_in_the_browser(
    office: Office, open_page: OpenPage, screenshot: Screenshot, ja_admin: httpx.Client
) -> None:
    admin = office.client("admin")
    new_tax_rate(admin)
    submit(admin, "metrics", code=unique("storage_gb_"), name="Storage", aggregation="max",
           property="gb")  # fmt: skip
    submit(admin, "coupons", code=unique("SPRING"), name="春の10%オフ", duration="forever",
           percent_off="10")  # fmt: skip

    form = await office.page(open_page, "admin", f"{CATALOG}/prices/new")
    assert await form.locator("#tier-rows tr").count() == 4
    assert not await form.locator("#tiers").is_visible()  # a flat price has no tiers
    product = unique("Team ")
    await form.fill("#f-product_name", product)
    await form.check("input[name=pricing_model][value=graduated]")
    assert await form.locator("#tiers").is_visible()
    assert not await form.locator("#f-unit_amount").is_visible()
    await form.click("#add-tier")  # the script adds a fifth row, numbered
    assert await form.locator("#tier-rows tr").count() == 5
    assert await form.locator("#tier-rows tr").last.locator("th").inner_text() == "5"
    for row, (up_to, unit) in enumerate([("10", "1000"), ("50", "800"), ("", "500")]):
        await form.fill(f"#f-tier-{row}-up_to", up_to)
        await form.fill(f"#f-tier-{row}-unit_amount", unit)
    await screenshot(form, "console-price-new")
    await form.click('form[action="/console/catalog/prices"] button[type=submit]')
    await form.wait_for_url(re.compile(r".*/console/catalog\?created=.*"))
    assert await form.locator("tr.fresh").count() == 1
    assert product in await form.locator("tr.fresh").inner_text()
    await screenshot(form, "console-catalog")
    await form.locator("tr.fresh a.button").click()  # archive: a page to confirm first
    await form.wait_for_url(re.compile(r".*/archive$"))
    await screenshot(form, "console-price-archive")

    ja = await office.page_for(open_page, ja_admin, CATALOG, locale="ja-JP")
    assert await ja.locator("h1").first.inner_text() == "カタログ"
    assert "段階料金（累進）" in await ja.locator("#prices tbody tr").first.inner_text()
    await screenshot(ja, "console-catalog-ja")
    ja_form = await office.page_for(
        open_page, ja_admin, f"{CATALOG}/prices/new", locale="ja-JP",
        allow=[r"HTTP 422: POST .*/console/catalog/prices$", r"status of 422"],
    )  # fmt: skip
    prices = count(office, catalog.list_prices)
    await ja_form.fill("#f-product_name", unique("誤り "))
    await ja_form.fill("#f-unit_amount", "12.5")
    await ja_form.click('form[action="/console/catalog/prices"] button[type=submit]')
    await ja_form.wait_for_selector("#e-unit_amount")
    said = await ja_form.locator("#e-unit_amount").inner_text()
    assert "整数で入力してください" in said
    assert await ja_form.locator("#f-unit_amount").input_value() == "12.5"
    assert count(office, catalog.list_prices) == prices
    await screenshot(ja_form, "console-price-new-ja")

    coupon = await office.page(open_page, "admin", f"{CATALOG}/coupons/new")
    await screenshot(coupon, "console-coupon-new")
    phone = await office.page(open_page, "finance", CATALOG, viewport=PHONE)
    assert await horizontal_overflow(phone) == 0
    await screenshot(phone, "console-catalog-phone")
    phone_form = await office.page(open_page, "admin", f"{CATALOG}/prices/new", viewport=PHONE)
    assert await horizontal_overflow(phone_form) == 0
    await screenshot(phone_form, "console-price-new-phone")
    for kind in ("metrics", "tax-rates", "coupons"):
        phone_form = await office.page(open_page, "admin", f"{CATALOG}/{kind}/new", viewport=PHONE)
        assert await horizontal_overflow(phone_form) == 0, kind


def test_long_lists_are_paged(office: Office) -> None:
    for n in range(55 - count(office, catalog.list_tax_rates)):
        catalog.create_tax_rate(office.sessions, name=f"Rate {n}", percentage="5")
    total = count(office, catalog.list_tax_rates)
    reader = office.client("finance")
    overview = reader.get(CATALOG).text
    section = overview.split('id="tax-rates"', 1)[1].split("</section>", 1)[0]
    assert section.count("data-id=") == 20 and f'href="{CATALOG}/tax-rates"' in section
    seen: list[str] = []
    path = f"{CATALOG}/tax-rates"
    while path:
        page = reader.get(path).text
        seen += re.findall(r'data-id="([\w-]+)"', page)
        older = re.search(r'href="(/console/catalog/tax-rates\?after=[\w-]+)">Older', page)
        path = older.group(1) if older else ""
    assert len(seen) == len(set(seen)) == total
