"""The catalog: metrics, usage prices, tax rates and coupons, refused with a reason when wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.services import catalog
from kakin.services import subscriptions as subscriptions_service
from kakin.services.catalog import CatalogError
from models.db import make_engine, make_session_factory
from models.repositories import catalog as catalog_sql
from models.repositories.common import new_id
from models.tables import Subscription
from tests.helpers import customer_and_price, observe


@pytest.fixture
def sessions(database_url: str) -> sessionmaker[Session]:
    return make_session_factory(make_engine(database_url))


def unique(prefix: str) -> str:
    return f"{prefix}_{new_id('x')}"


def test_prices_of_every_model_are_checked_before_they_are_stored(
    sessions: sessionmaker[Session],
) -> None:
    metric = unique("api_calls")
    catalog.create_metric(sessions, code=metric, name="API calls", aggregation="count")
    price_id = catalog.create_price(
        sessions, product_name="API", currency="JPY", pricing_model="graduated",
        metric_code=metric,
        tiers=[{"up_to": "1000", "unit_amount": "0"}, {"up_to": None, "unit_amount": "0.015"}],
    )  # fmt: skip
    with sessions() as session:
        price = catalog_sql.price(session, price_id)
        assert price.metric is not None and price.metric.code == metric

    cases = [
        ({"pricing_model": "graduated", "metric_code": metric,
          "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": "5", "unit_amount": "1"},
                    {"up_to": None, "unit_amount": "1"}]}, "tiers must ascend"),
        ({"pricing_model": "volume", "metric_code": metric,
          "tiers": [{"up_to": "10", "unit_amount": "1"}]}, "last tier must be open-ended"),
        ({"pricing_model": "package", "metric_code": metric}, "package price needs package_size"),
        ({"pricing_model": "per_unit", "metric_code": "nope"}, "unknown metric 'nope'"),
        ({"pricing_model": "flat", "metric_code": metric}, "needs a usage pricing model"),
        ({"pricing_model": "per_unit", "unit_amount_decimal": "0.1.2"}, "unit_amount_decimal"),
        ({"tax_rate_ids": ["txr_missing"]}, "tax rate 'txr_missing' does not exist"),
        ({"currency": "XXY"}, "unknown currency"),
    ]  # fmt: skip
    for fields, message in cases:
        arguments = {"product_name": "API", "currency": "JPY", **fields}
        with pytest.raises(CatalogError, match=message):
            catalog.create_price(sessions, **arguments)  # type: ignore[arg-type]


def test_metric_and_coupon_codes_are_unique_and_checked(sessions: sessionmaker[Session]) -> None:
    code = unique("gb")
    catalog.create_metric(sessions, code=code, name="GB", aggregation="sum", property="gb")
    with pytest.raises(CatalogError, match="exists already"):
        catalog.create_metric(sessions, code=code, name="GB", aggregation="sum", property="gb")
    with pytest.raises(CatalogError, match="needs the property"):
        catalog.create_metric(sessions, code=unique("gb"), name="GB", aggregation="sum")
    with pytest.raises(CatalogError, match="percent_off must be above 0 and at most 100"):
        catalog.create_coupon(
            sessions, code=unique("BIG"), name="x", duration="once", percent_off="150"
        )
    with pytest.raises(CatalogError, match="needs the currency"):
        catalog.create_coupon(sessions, code=unique("YEN"), name="x", duration="once",
                              amount_off=500)  # fmt: skip
    with pytest.raises(CatalogError, match="between 0 and 100"):
        catalog.create_tax_rate(sessions, name="VAT", percentage="120")


def test_a_coupon_is_redeemed_no_more_than_allowed_and_not_after_expiry(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    now = datetime.now(UTC)
    once = unique("ONCE")
    catalog.create_coupon(
        pg_sessions, code=once, name="one only", duration="once", percent_off="10",
        max_redemptions=1,
    )  # fmt: skip
    expired = unique("OLD")
    catalog.create_coupon(
        pg_sessions, code=expired, name="old", duration="forever", percent_off="5",
        redeem_by=now - timedelta(days=1),
    )  # fmt: skip
    subscriptions = []
    for _ in range(2):
        customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway)
        with pg_sessions() as session:
            subscription = Subscription(
                id=new_id("sub"), customer_id=customer_id, price_id=price_id,
                status="active", workflow_id=new_id("wf"),
            )  # fmt: skip
            session.add(subscription)
            session.commit()
            subscriptions.append(subscription.id)

    catalog.redeem_coupon(pg_sessions, subscription_id=subscriptions[0], code=once)
    with pytest.raises(CatalogError, match=r"has coupon .* already"):
        catalog.redeem_coupon(pg_sessions, subscription_id=subscriptions[0], code=once)
    with pytest.raises(CatalogError, match="reached its limit of 1 redemption"):
        catalog.redeem_coupon(pg_sessions, subscription_id=subscriptions[1], code=once)
    with pytest.raises(CatalogError, match="expired"):
        catalog.redeem_coupon(pg_sessions, subscription_id=subscriptions[1], code=expired)


async def test_a_coupon_is_its_own_line_for_its_periods_and_taxed_after_the_discount(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
) -> None:
    rate = catalog.create_tax_rate(pg_sessions, name="消費税", percentage="10", jurisdiction="JP")
    customer_id, price_id = customer_and_price(pg_sessions, stripe_gateway, unit_amount=3000)
    with pg_sessions() as session:
        catalog_sql.price(session, price_id).tax_rate_ids = [rate]
        session.commit()
    code = unique("WELCOME")
    catalog.create_coupon(
        pg_sessions, code=code, name="welcome", duration="repeating", percent_off="10",
        duration_in_periods=2,
    )  # fmt: skip
    start = (await time_env.get_current_time()) + timedelta(hours=1)
    subscription_id = await subscriptions_service.start_subscription(
        time_env.client, pg_sessions, task_queue=task_queue, customer_id=customer_id,
        price_id=price_id, start_at=start,
    )  # fmt: skip
    catalog.redeem_coupon(pg_sessions, subscription_id=subscription_id, code=code)

    await time_env.sleep(timedelta(days=95))

    invoices = observe(pg_sessions, subscription_id).invoices
    assert len(invoices) >= 4
    # 3,000 - 10% = 2,700, taxed 270: 2,970 for two periods; then 3,300 again.
    assert [(i.subtotal, i.discount_total, i.tax_total, i.total) for i in invoices[:3]] == [
        (3000, 300, 270, 2970),
        (3000, 300, 270, 2970),
        (3000, 0, 300, 3300),
    ]
    discount = [line for line in invoices[0].lines if line.kind == "discount"]
    assert [(d.description, d.amount) for d in discount] == [(code, -300)]
    assert all(i.status == "paid" for i in invoices)
