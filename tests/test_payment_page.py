"""The card-update page, reached the way a customer reaches it: the link in the email."""

from __future__ import annotations

import html
import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import links
from activities.stripe_gateway import StripeGateway
from api.app import create_app
from tests.helpers import DECLINED_CARD, observe
from tests.test_api import SETTINGS, connect_to, running
from tests.test_subscription_workflow import advance_to, status_of
from tests.test_support_actions import _start


def link_in_outbox(outbox: Path, kind: str) -> str:
    [page] = [p for p in outbox.glob(f"email_{kind}_*.html")]
    found = re.search(r'href="(http://localhost:8000/pay/update\?[^"]+)"', page.read_text())
    assert found, "the email has no card-update link"
    return html.unescape(found.group(1))


async def test_a_customer_updates_the_card_from_the_email_and_the_payment_retries(
    time_env: WorkflowEnvironment,
    time_worker: Worker,
    pg_sessions: sessionmaker[Session],
    stripe_gateway: StripeGateway,
    task_queue: str,
    outbox: Path,
) -> None:
    subscription_id, start = await _start(
        time_env, pg_sessions, stripe_gateway, task_queue, card=DECLINED_CARD
    )
    await advance_to(time_env, start + timedelta(days=1))
    emailed = urlsplit(link_in_outbox(outbox, "payment_failed"))
    query = {k: v[0] for k, v in parse_qs(emailed.query).items()}
    assert query["subscription"] == subscription_id

    app = create_app(
        settings=SETTINGS,
        sessions=pg_sessions,
        temporal=connect_to(time_env.client.service_client.config.target_host),
        stripe=stripe_gateway,
    )
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        shown = http.get(emailed.path, params=query)
        assert shown.status_code == 200
        assert "3,000円" in shown.text and "お支払い方法の更新" in shown.text

        tampered = http.get(emailed.path, params=query | {"subscription": "sub_someone_else"})
        assert tampered.status_code == 403 and "not valid" in tampered.text
        old = urlsplit(links.payment_update_url(
            "http://x/pay/update", subscription_id, expires=int(time.time()) - 1,
            secret=SETTINGS.link_secret,
        ))  # fmt: skip
        expired = http.get(emailed.path, params={k: v[0] for k, v in parse_qs(old.query).items()})
        assert expired.status_code == 403 and "expired" in expired.text

        not_a_test_card = http.post(emailed.path, data=query | {"card_number": "4111111111111111"})
        assert not_a_test_card.status_code == 422
        assert "4111111111111111" not in not_a_test_card.text
        assert (await status_of(time_env, subscription_id)).status == "past_due"

        paid = http.post(emailed.path, data=query | {"card_number": "4242 4242 4242 4242"})
        assert paid.status_code == 200 and "再試行" in paid.text
    await advance_to(time_env, start + timedelta(days=1, minutes=1))

    assert (await status_of(time_env, subscription_id)).status == "active"
    seen = observe(pg_sessions, subscription_id)
    assert [i.status for i in seen.invoices] == ["paid"]
    assert seen.email_kinds == ["payment_failed", "receipt"]
    updated = [a for a in seen.audit if a.action == "status_changed" and a.to_status == "active"]
    assert [a.actor for a in updated] == ["customer"]
