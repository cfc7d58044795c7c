"""A finalized invoice over the API and the CLI shows what its HTML shows: each line's
kind, a usage line's quantity, the tax per rate; in the upcoming invoice's shape.

A metered subscription: a 1,000 JPY plan and 4 JPY per API call, both at 10%. The
period's 1,500 calls are a 6,000 JPY usage line on the renewal, in arrears. The upcoming
invoice taken before the renewal and the renewal's invoice read back over HTTP are the
same JSON, field for field.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog, customers
from kakin.services.api_keys import CreatedKey
from kakin.services.invoice_drafts import upcoming_draft
from kakin.services.usage import UsageEventIn, ingest
from kakin.views.invoices import InvoiceLineOut, UpcomingInvoice
from models.payloads import SubscriptionStatus
from models.repositories import subscriptions as subscription_sql
from models.repositories.common import new_id
from models.tables import Subscription
from tests.cli.test_cli import kakin
from tests.conftest import make_activities
from tests.helpers import OK_CARD, client, running
from tests.models.test_database import START, invoice_request


@pytest.fixture(scope="module")
def no_temporal_api(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> Iterator[str]:
    """The API, served for real; reading invoices needs no Temporal."""
    from api.app import create_app
    from kakin.platform.settings import Settings

    def no_temporal() -> Any:
        raise AssertionError("reading an invoice must not need Temporal")

    app = create_app(
        settings=Settings(stripe_api_key="sk_test_kakin", database_url="sqlite:///unused.db"),
        sessions=pg_sessions,
        temporal=no_temporal,
        stripe=stripe_gateway,
    )
    with running(app) as base:
        yield base


def shape(value: Any) -> Any:
    """The keys of every object, recursively (list items each), without the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return None


def metered_renewal(
    sessions: sessionmaker[Session], stripe_gateway: StripeGateway, outbox: Path
) -> tuple[str, dict[str, Any], tuple[str, str, str]]:
    """A metered subscription's renewal: its invoice id, the upcoming invoice's JSON, and
    the ids of the tax rate, the plan and the metered price."""
    rate = catalog.create_tax_rate(sessions, name="消費税", percentage="10", jurisdiction="JP")
    metric = f"calls_{new_id('m')}"
    catalog.create_metric(sessions, code=metric, name="API calls", aggregation="sum",
                          property="calls")  # fmt: skip
    plan = catalog.create_price(sessions, product_name="Pro", currency="JPY", unit_amount=1000,
                                tax_rate_ids=[rate])  # fmt: skip
    metered = catalog.create_price(
        sessions, product_name="API", nickname="API calls", currency="JPY",
        pricing_model="per_unit", unit_amount_decimal="4", metric_code=metric,
        tax_rate_ids=[rate],
    )  # fmt: skip
    customer = customers.create_customer(
        sessions, stripe_gateway, email="jiro@example.jp", name="鈴木 次郎", currency="JPY",
        locale="ja", time_zone="Asia/Tokyo", card_number=OK_CARD,
    )  # fmt: skip
    subscription_id = new_id("sub")
    with sessions() as session:
        session.add(
            Subscription(id=subscription_id, customer_id=customer, price_id=plan,
                         status=SubscriptionStatus.ACTIVE,
                         workflow_id=f"subscription-{subscription_id}")
        )  # fmt: skip
        session.commit()
    catalog.add_item(sessions, subscription_id=subscription_id, price_id=metered)

    billing = make_activities(sessions, stripe_gateway, outbox)
    env = ActivityEnvironment()
    first, renewal = invoice_request(subscription_id, 0), invoice_request(subscription_id, 1)
    env.run(billing.invoicing.issue_invoice, first)
    events = [
        UsageEventIn(event_id=f"batch-{n}", metric=metric, customer_id=customer,
                     timestamp=START + timedelta(days=n + 1), properties={"calls": 500})
        for n in range(3)
    ]  # fmt: skip
    assert {result.status for result in ingest(sessions, events)} == {"accepted"}
    with sessions() as session:
        draft = upcoming_draft(
            session,
            subscription_sql.subscription(session, subscription_id),
            next_start=renewal.period_start,
            next_end=renewal.period_end,
        )
        upcoming = UpcomingInvoice.of(
            subscription_id, renewal.period_start, renewal.period_end, draft
        ).model_dump(mode="json")
    ref = env.run(billing.invoicing.issue_invoice, renewal)
    return ref.invoice_id, upcoming, (rate, plan, metered)


def test_a_metered_invoice_over_the_api_shows_kinds_usage_and_tax_as_the_upcoming_one(
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    no_temporal_api: str,
    made_keys: dict[str, CreatedKey],
    postgres_url: str,
    tmp_path: Path,
) -> None:
    invoice_id, upcoming, (rate, plan, metered) = metered_renewal(
        pg_sessions, stripe_gateway, tmp_path
    )

    with client(no_temporal_api, made_keys["service"].secret) as http:
        response = http.get(f"/v1/invoices/{invoice_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        schema = http.get("/openapi.json").json()["components"]["schemas"]

    # What the HTML prints: the usage line's 1,500 units, each line's kind, tax per rate.
    usage = [line for line in body["lines"] if line["kind"] == "usage"]
    assert [(x["description"], x["usage_quantity"], x["amount"]) for x in usage] == [
        ("API calls", "1500", 6000)
    ]
    assert usage[0]["tax_rate_ids"] == [rate] and usage[0]["details"]["metric"].startswith("calls_")
    assert [(x["kind"], x["details"]["price_id"]) for x in body["lines"]] == [
        ("subscription", plan), ("usage", metered),
    ]  # fmt: skip
    assert [(t["tax_rate_id"], t["percentage"], t["taxable"], t["tax"]) for t in body["taxes"]] == [
        (rate, "10", 7000, 700)
    ]
    assert (body["subtotal"], body["tax_total"], body["total"]) == (7000, 700, 7700)
    assert (body["credit_applied"], body["carried_forward"], body["amount_due"]) == (0, 0, 7700)

    # The same shape as the upcoming invoice, recursively; and the same lines and taxes.
    assert shape(body) == shape(upcoming)
    assert body["lines"] == upcoming["lines"] and body["taxes"] == upcoming["taxes"]
    assert set(schema["InvoiceDetail"]["properties"]) == set(
        schema["UpcomingInvoice"]["properties"]
    )
    assert set(schema["InvoiceLineOut"]["properties"]) == set(schema["LineOut"]["properties"])

    # `kakin invoices show --json` prints the API's invoice (and the customer).
    result = kakin(postgres_url, "invoices", "show", invoice_id, "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed.pop("customer")["name"] == "鈴木 次郎"
    assert printed == body


def test_old_lines_without_tax_rate_ids_in_details_read_their_one_rate() -> None:
    """Lines stored before details carried the rate list show the rate printed beside them."""
    from models.tables import InvoiceLine

    line = InvoiceLine(
        position=0, description="Pro", kind="subscription", unit_amount=1000, quantity=1,
        amount=1000, period_start=START, period_end=START, usage_quantity=None,
        tax_rate_id="txr_1", details={},
    )  # fmt: skip
    out = InvoiceLineOut.of(line)
    assert (out.tax_rate_ids, out.details) == (["txr_1"], {})
