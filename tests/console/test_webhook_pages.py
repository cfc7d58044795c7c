"""Outgoing webhooks in the console: an admin adds an endpoint and sees its secret once,
disables and enables it, rotates the secret, reads a delivery's tries and resends it;
other roles are refused."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest

from kakin.services import customers, webhook_deliveries
from kakin.views.webhook_events import event_data
from models.webhook_payloads import TryInput
from tests.console.browsing import browser, enrol, new_staff, post
from tests.console.office import Office
from tests.support.browser import PHONE, OpenPage, Screenshot, horizontal_overflow

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=_-]{20,}")
RECEIVER = "http://127.0.0.1:9/kakin-hooks"  # loopback: allowed in test mode, never answers


def add_endpoint(office: Office, url: str, *events: str) -> tuple[str, str]:
    """Add an endpoint through the form; its id and the secret the answer shows."""
    admin = office.client("admin")
    form = admin.get("/console/webhooks")
    assert form.status_code == 200, form.text
    fields = {f"event.{e}": "on" for e in events} if events else {"all_events": "on"}
    made = post(admin, "/console/webhooks", form.text, url=url, description="テスト受信", **fields)
    assert made.status_code == 200, made.text
    assert made.headers["cache-control"] == "no-store"
    shown = SECRET.findall(made.text)
    assert len(set(shown)) == 1, "the answer shows the new secret, once"
    found = re.search(r'href="/console/webhooks/(we_[^"/]+|[a-z]+_[A-Za-z0-9]+)"', made.text)
    assert found, made.text
    return found.group(1), shown[0]


def test_an_admin_adds_disables_enables_and_rotates_an_endpoint(office: Office) -> None:
    admin = office.client("admin")
    endpoint_id, secret = add_endpoint(office, RECEIVER, "invoice.paid", "customer.created")

    listed = admin.get("/console/webhooks").text
    assert RECEIVER in listed and secret not in listed, "the list never shows a secret"
    page = admin.get(f"/console/webhooks/{endpoint_id}")
    assert page.status_code == 200 and secret not in page.text
    assert "invoice.paid" in page.text and "customer.created" in page.text
    assert "enabled" in page.text and "No deliveries yet." in page.text

    off = post(admin, f"/console/webhooks/{endpoint_id}/enabled", page.text, enabled="false")
    assert off.status_code == 303
    after = admin.get(off.headers["location"]).text
    assert "The endpoint is disabled." in after and ">Enable<" in after
    on = post(admin, f"/console/webhooks/{endpoint_id}/enabled", after, enabled="true")
    enabled = admin.get(on.headers["location"]).text
    assert "The endpoint is enabled." in enabled

    rotated = post(admin, f"/console/webhooks/{endpoint_id}/rotate", enabled)
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    new = SECRET.findall(rotated.text)
    assert len(set(new)) == 1 and new[0] != secret
    again = admin.get(f"/console/webhooks/{endpoint_id}").text
    assert new[0] not in again and "Old secret signs until" in again

    # A form without an event type, or with a URL that is not one, changes nothing.
    form = admin.get("/console/webhooks").text
    wrong = post(admin, "/console/webhooks", form, url="https://shop.example.jp/hooks")
    assert wrong.status_code == 422 and "at least one event type" in wrong.text
    assert not SECRET.search(wrong.text)


def _a_failed_delivery(office: Office, endpoint_id: str) -> str:
    """A customer created (customer.created), dispatched as the dispatcher does, and one
    try recorded as the sender records it: the receiver answered 500."""
    customers.create_customer(
        office.sessions, office.stripe, email="hooks@example.jp", name="配信 太郎",
        currency="JPY", locale="ja",
    )  # fmt: skip
    webhook_deliveries.dispatch(office.sessions, event_data)
    mine = webhook_deliveries.list_deliveries(office.sessions, endpoint_id, lambda row, _: row.id)
    assert len(mine) == 1
    now = datetime.now(UTC)
    webhook_deliveries.record_try(
        office.sessions,
        TryInput(delivery_id=mine[0], run=0, number=1, scheduled_at=now, last=True),
        webhook_deliveries.TryRecord(
            outcome="failed", attempted_at=now, duration_ms=42, status_code=500,
            excerpt="upstream <b>down</b>",
        ),
    )  # fmt: skip
    return mine[0]


async def test_a_delivery_shows_its_tries_and_is_resent(office: Office) -> None:
    admin = office.client("admin")
    endpoint_id, _ = await asyncio.to_thread(add_endpoint, office, RECEIVER, "customer.created")
    delivery_id = await asyncio.to_thread(_a_failed_delivery, office, endpoint_id)

    page = await asyncio.to_thread(admin.get, f"/console/webhooks/{endpoint_id}")
    assert f'id="{delivery_id}"' in page.text
    assert "failed" in page.text and ">500<" in page.text and "42 ms" in page.text
    assert "upstream &lt;b&gt;down&lt;/b&gt;" in page.text, "the excerpt is shown as text"

    resent = await asyncio.to_thread(
        post, admin, f"/console/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend",
        page.text,
    )  # fmt: skip
    assert resent.status_code == 303, resent.text
    after = await asyncio.to_thread(admin.get, resent.headers["location"])
    assert "The delivery is being sent again." in after.text
    assert "resent 1×" in after.text and "pending" in after.text
    # The office's worker runs no webhook workflows: end the resend's run here.
    client = await office.app.state.deps.connected()
    await client.get_workflow_handle(f"webhook-delivery-{delivery_id}-1").terminate("test")


@pytest.mark.parametrize("role", ["support", "finance"])
def test_other_roles_may_not_see_or_add_endpoints(office: Office, role: str) -> None:
    client = office.client(role)
    assert client.get("/console/webhooks").status_code == 403
    home = client.get("/console/").text
    assert 'href="/console/webhooks"' not in home
    made = post(client, "/console/webhooks", home, url=RECEIVER, all_events="on")
    assert made.status_code == 403 and not SECRET.search(made.text)


async def test_the_webhooks_page_in_the_browser(
    office: Office, open_page: OpenPage, screenshot: Screenshot
) -> None:
    endpoint_id, _ = await asyncio.to_thread(
        add_endpoint, office, "http://127.0.0.1:9/a-rather-long/path/for/the/shop/webhooks",
        "invoice.paid", "invoice.payment_failed", "customer.created",
    )  # fmt: skip
    await asyncio.to_thread(_a_failed_delivery, office, endpoint_id)
    page = await office.page(open_page, "admin", "/console/webhooks")
    assert await page.locator("h1").inner_text() == "Webhooks"
    await screenshot(page, "console-webhooks")
    await page.goto(f"/console/webhooks/{endpoint_id}")
    await screenshot(page, "console-webhook-endpoint")

    with browser(office.url) as client:
        enrol(client, new_staff(office.sessions, office.clock, locale="ja", name="管理 次郎"),
              office.clock)  # fmt: skip
        ja = await office.page_for(open_page, client, "/console/webhooks", locale="ja-JP")
        await screenshot(ja, "console-webhooks-ja")
        phone = await office.page_for(
            open_page, client, f"/console/webhooks/{endpoint_id}", viewport=PHONE
        )
        assert await horizontal_overflow(phone) == 0
        await screenshot(phone, "console-webhook-endpoint-phone")
