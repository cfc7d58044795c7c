"""The card-update page, reached the way a customer reaches it: the link in the email."""

from __future__ import annotations

import html
import http.client
import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.app import create_app
from kakin.adapters import links
from kakin.adapters.stripe_gateway import StripeGateway
from models.tables import Subscription
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
    subscription_id, start = await start_subscription(
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
        # The same signed link opens the billing page, linked from this one.
        assert f'href="/billing?{html.escape(emailed.query)}"' in shown.text

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


# -- a form the page did not write -----------------------------------------------------------


def signed_link(subscription_id: str) -> dict[str, str]:
    """The query (and hidden fields) of a genuine card-update link for the subscription."""
    emailed = links.payment_update_url(
        "http://x/pay/update", subscription_id, expires=int(time.time()) + 3600,
        secret=SETTINGS.link_secret,
    )  # fmt: skip
    return {k: v[0] for k, v in parse_qs(urlsplit(emailed).query).items()}


def japanese_subscription(sessions: sessionmaker[Session]) -> str:
    """A subscription (its row; no workflow needed) of a customer who reads Japanese."""
    subscription_id = stored_subscription(sessions)
    with sessions() as session:
        session.get_one(Subscription, subscription_id).customer.locale = "ja"
        session.commit()
    return subscription_id


def test_a_form_that_is_not_utf8_is_a_400_page_in_the_customers_language(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    subscription_id = japanese_subscription(pg_sessions)
    fields = urlencode(signed_link(subscription_id)).encode()
    app = create_app(
        settings=SETTINGS, sessions=pg_sessions, temporal=connect_to("127.0.0.1:1"),
        stripe=stripe_gateway,
    )  # fmt: skip
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with running(app) as url:
        host, port = urlsplit(url).hostname or "", urlsplit(url).port or 0
        connection = http.client.HTTPConnection(host, port, timeout=30)
        # Raw bytes that are not UTF-8, then a percent-encoded byte that is not either.
        connection.request("POST", "/pay/update", body=b"\xff\xfe=1&" + fields, headers=form)
        raw = connection.getresponse()
        page = raw.read().decode()
        kept = connection.sock
        connection.request(
            "POST", "/pay/update", body=fields + b"&card_number=%ff%fe", headers=form
        )
        encoded = connection.getresponse()
        encoded_page = encoded.read().decode()
        assert connection.sock is kept, "the server dropped the kept-alive connection"
        connection.close()
        with httpx.Client(base_url=url, timeout=30) as http_client:
            unknown = http_client.post(
                "/pay/update", content=b"\xff&subscription=sub_x", headers=form
            )
            prefers_ja = http_client.post(
                "/pay/update",
                content=b"\xff&subscription=sub_x",
                headers={**form, "Accept-Language": "en;q=0.5, ja-JP"},
            )
    for status, text in ((raw.status, page), (encoded.status, encoded_page)):
        assert status == 400
        assert "フォームを読み取れませんでした" in text and 'lang="ja"' in text
        assert f'value="{subscription_id}"' in text  # the form again, to try once more
        assert "Traceback" not in text
    # Nobody known: the browser's language, else English.
    assert unknown.status_code == 400 and "We could not read the form" in unknown.text
    assert prefers_ja.status_code == 400 and "フォームを読み取れませんでした" in prefers_ja.text
    assert unknown.headers["X-Request-Id"].startswith("req_")


def test_a_link_whose_token_is_not_ascii_is_refused_not_an_error(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    subscription_id = japanese_subscription(pg_sessions)
    link = signed_link(subscription_id) | {"token": "é" * 32}
    app = create_app(
        settings=SETTINGS, sessions=pg_sessions, temporal=connect_to("127.0.0.1:1"),
        stripe=stripe_gateway,
    )  # fmt: skip
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as http_client:
        shown = http_client.get("/pay/update", params=link)
        posted = http_client.post("/pay/update", data=link | {"card_number": "4242424242424242"})
    assert (shown.status_code, posted.status_code) == (403, 403)
    assert "not valid" in shown.text and "not valid" in posted.text
