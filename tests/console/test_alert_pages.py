"""Alerts in the console: support adds an alert on a subscription and on a customer,
sees which thresholds fired this period and when, raises a hard cap with a reason (in
the audit log) and removes an alert; finance reads only."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from kakin.services import alerts as alert_service
from kakin.services.alerts import AlertSpec, Threshold
from kakin.services.usage import UsageEventIn, ingest
from models.tables import AuditLog
from tests.console.browsing import browser, enrol, new_staff, post
from tests.console.office import Office
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow
from tests.usage.test_usage_ingestion import at, metered_subscription


def alerts_path(subscription_id: str) -> str:
    return f"/console/subscriptions/{subscription_id}/alerts"


def add(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    """Send the page's add form as a person fills it in."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return post(client, path, page.text, **fields)


def capped(office: Office) -> tuple[str, str, str]:
    """A metered subscription with a usage alert at 50 GB and a hard cap of 100 GB, used
    up to the cap (the third event refused): (subscription, metric, alert id)."""
    _, subscription_id, code = metered_subscription(office.sessions)
    made = alert_service.create_alert(
        office.sessions,
        AlertSpec(watches="usage", metric=code, thresholds=(Threshold(value=Decimal(50)),),
                  hard_cap=Decimal(100)),
        subscription_id=subscription_id, actor="test",
    )  # fmt: skip
    events = [
        UsageEventIn(f"e{n}", code, at(n + 1), {"gb": gb}, subscription_id=subscription_id)
        for n, gb in enumerate((60, 40, 5))
    ]
    assert [r.status for r in ingest(office.sessions, events)][-1] == "rejected"
    return subscription_id, code, made.id


def test_support_adds_a_bill_alert_in_yen_and_removes_it(office: Office) -> None:
    _, subscription_id, _ = metered_subscription(office.sessions)
    support = office.client("support")
    path = alerts_path(subscription_id)
    assert "No alerts yet." in support.get(path).text
    # ¥5,000 typed as people read it; thresholds as percents of it.
    made = add(support, path, watches="bill", name="月の予算", budget="5,000",
               thresholds="80%, 100%")  # fmt: skip
    assert made.status_code == 303, made.text
    page = support.get(made.headers["location"]).text
    assert "The alert was added." in page and "月の予算" in page
    assert "5,000" in page and "4,000" in page, "the budget and 80% of it, in yen"
    assert "1,000" in page, "the bill so far: the base price"
    [alert] = alert_service.list_alerts(office.sessions, subscription_id=subscription_id)
    assert (alert.budget, alert.levels) == ("5000", ["4000", "5000"])

    wrong = add(support, path, watches="bill", thresholds="lots")
    assert wrong.status_code == 422 and "Check the form" in wrong.text
    no_reason = post(support, f"{path}/{alert.id}/remove", page, reason=" ")
    assert no_reason.status_code == 422 and "Say why" in no_reason.text
    removed = post(support, f"{path}/{alert.id}/remove", page, reason="顧客の依頼")
    assert removed.status_code == 303
    assert "The alert was removed." in support.get(removed.headers["location"]).text
    assert alert_service.list_alerts(office.sessions, subscription_id=subscription_id) == []
    with office.sessions() as session:
        row = session.scalars(
            select(AuditLog).where(
                AuditLog.entity_id == alert.id, AuditLog.action == "alert_deleted"
            )
        ).one()
    assert row.reason == "顧客の依頼" and row.actor.startswith("staff:")


def test_fired_thresholds_and_a_cap_raised_with_a_reason(office: Office) -> None:
    subscription_id, code, alert_id = capped(office)
    support = office.client("support")
    path = alerts_path(subscription_id)
    page = support.get(path).text
    assert "cap reached" in page and code in page and "<strong>100</strong>" in page
    # Both the threshold and the cap fired this period, each with its time.
    assert page.count("<time datetime=") >= 2
    fired = r'<span class="num">50</span>\s*<span class="badge badge-past_due">fired'
    assert re.search(fired, page), "the 50 GB threshold is marked fired"

    wrong = post(support, f"{path}/{alert_id}/cap", page, hard_cap="200", reason="")
    assert wrong.status_code == 422 and "Say why" in wrong.text
    raised = post(support, f"{path}/{alert_id}/cap", page, hard_cap="200", reason="電話で依頼")
    assert raised.status_code == 303, raised.text
    after = support.get(raised.headers["location"]).text
    assert "The cap was changed" in after and "<strong>200</strong>" in after
    assert "cap reached" not in after
    with office.sessions() as session:
        row = session.scalars(
            select(AuditLog).where(
                AuditLog.entity_id == alert_id, AuditLog.action == "usage_cap_changed"
            )
        ).one()
    support_email = office.members["support"].member.email
    assert (row.reason, row.actor) == ("電話で依頼", f"staff:{support_email}")
    assert (row.details["from"], row.details["to"]) == ("100", "200")
    # The subscription's page links to its alerts.
    assert f'href="{path}"' in support.get(f"/console/subscriptions/{subscription_id}").text


def test_a_customer_alert_from_the_customer_page(office: Office) -> None:
    customer_id, _, _ = metered_subscription(office.sessions)
    support = office.client("support")
    path = f"/console/customers/{customer_id}/alerts"
    assert f'href="{path}"' in support.get(f"/console/customers/{customer_id}").text
    made = add(support, path, watches="forecast", budget="10000", thresholds="50%")
    assert made.status_code == 303, made.text
    page = support.get(made.headers["location"]).text
    assert "Forecast bill" in page and "10,000" in page and "5,000" in page
    assert 'name="hard_cap"' not in page, "a cap is a subscription's"


@pytest.mark.parametrize("role", ["finance"])
def test_finance_reads_but_may_not_change(office: Office, role: str) -> None:
    subscription_id, _, alert_id = capped(office)
    finance = office.client(role)
    path = alerts_path(subscription_id)
    page = finance.get(path)
    assert page.status_code == 200 and "cap reached" in page.text
    assert "Add an alert" not in page.text and "/cap" not in page.text
    for action, fields in (
        ("", {"watches": "bill", "budget": "1", "thresholds": "1"}),
        (f"/{alert_id}/cap", {"hard_cap": "999", "reason": "x"}),
        (f"/{alert_id}/remove", {"reason": "x"}),
    ):
        assert post(finance, path + action, page.text, **fields).status_code == 403
    [alert] = alert_service.list_alerts(office.sessions, subscription_id=subscription_id)
    assert alert.hard_cap == "100"


async def test_the_alerts_page_in_the_browser(
    office: Office, open_page: OpenPage, screenshot: Screenshot
) -> None:
    subscription_id, _, _ = capped(office)
    alert_service.create_alert(
        office.sessions,
        AlertSpec(watches="bill", name="Monthly budget", budget=Decimal(5000),
                  thresholds=(Threshold(percent=Decimal(50)), Threshold(percent=Decimal(80)))),
        subscription_id=subscription_id, actor="test",
    )  # fmt: skip
    page = await office.page(open_page, "support", alerts_path(subscription_id))
    assert await page.locator("h1").inner_text() == "Alerts"
    await screenshot(page, "console-subscription-alerts")
    with browser(office.url) as client:
        enrol(client, new_staff(office.sessions, office.clock, role="support", locale="ja",
                                name="サポート 花子"), office.clock)  # fmt: skip
        ja = await office.page_for(open_page, client, alerts_path(subscription_id), locale="ja-JP")
        await screenshot(ja, "console-subscription-alerts-ja")
        phone = await office.page_for(
            open_page, client, alerts_path(subscription_id), viewport=PHONE
        )
        assert await horizontal_overflow(phone) == 0
        await screenshot(phone, "console-subscription-alerts-phone")
