"""The SSRF rule: in live mode a webhook goes only to public addresses, checked when the
endpoint is registered and again before every try (DNS can change)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from kakin.adapters.stripe_gateway import StripeGateway
from kakin.adapters.webhook_sender import SendResult
from kakin.services import customers, webhook_deliveries
from kakin.services.webhook_targets import TargetRefusedError, check_url
from kakin.views.webhook_endpoints import WebhookDeliveryOut
from kakin.views.webhook_events import event_data
from models.tables import utcnow
from models.webhook_payloads import TryInput
from tests.webhooks.conftest import hook_activities, register

PUBLIC = "93.184.216.34"


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://192.168.1.20:8080/hook", "192.168.1.20 is a private address"),
        ("http://127.0.0.1:9000/hook", "127.0.0.1 is a loopback address"),
        ("http://[::1]/hook", "::1 is a loopback address"),
        ("http://[::ffff:10.0.0.1]/", "10.0.0.1 is a private address"),
        ("http://100.100.100.200/", "a cloud metadata address"),
        ("http://224.0.0.1/", "a multicast address"),
        ("http://0.0.0.0/", "an unspecified address"),
    ],
)
def test_live_mode_refuses_addresses_that_are_not_public(url: str, why: str) -> None:
    with pytest.raises(TargetRefusedError) as refused:
        check_url(url, live_mode=True)
    message = str(refused.value)
    assert url in message and why in message and "in live mode" in message


def test_a_name_resolving_to_loopback_is_refused_in_live_mode_naming_both() -> None:
    with pytest.raises(TargetRefusedError, match=r"hooks\.example\.jp resolves to 127\.0\.0\.1"):
        check_url("https://hooks.example.jp/in", live_mode=True, resolver=resolving_to("127.0.0.1"))
    # Every address must be public: one private among public ones is refused.
    with pytest.raises(TargetRefusedError, match=r"10\.1\.2\.3 is a private address"):
        check_url(
            "https://x.example.jp/", live_mode=True, resolver=resolving_to(PUBLIC, "10.1.2.3")
        )
    # The real resolver: localhost is loopback.
    with pytest.raises(TargetRefusedError, match="localhost resolves to"):
        check_url("http://localhost:8000/hook", live_mode=True)


def test_public_addresses_pass_and_test_mode_allows_loopback_only() -> None:
    check_url("https://hooks.example.jp/in", live_mode=True, resolver=resolving_to(PUBLIC))
    check_url("http://127.0.0.1:9000/hook", live_mode=False)
    check_url("http://localhost:9000/hook", live_mode=False)
    with pytest.raises(TargetRefusedError, match="link-local"):
        check_url("http://169.254.169.254/", live_mode=False)
    for bad in ("ftp://example.jp/", "http:///nohost", "https://user:pw@example.jp/"):
        with pytest.raises(TargetRefusedError):
            check_url(bad, live_mode=False, resolver=resolving_to(PUBLIC))


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/", "http://10.0.0.1/", "http://localhost:8000/hook"]
)
def test_registering_such_a_url_in_live_mode_is_refused(
    pg_sessions: sessionmaker[Session], url: str
) -> None:
    with pytest.raises(TargetRefusedError, match="is refused"):
        register(pg_sessions, url, ["*"], live_mode=True)


def test_a_target_refused_by_delivery_time_is_not_called_and_the_try_says_why(
    pg_sessions: sessionmaker[Session], stripe_gateway: StripeGateway
) -> None:
    # Registered in test mode (loopback allowed); the worker now runs in live mode.
    endpoint = register(pg_sessions, "http://127.0.0.1:9/hook", ["customer.created"])
    customers.create_customer(
        pg_sessions, stripe_gateway, email="ssrf@example.jp", name="ssrf", currency="JPY"
    )
    (delivery_id,) = webhook_deliveries.dispatch(pg_sessions, event_data).delivery_ids
    sent: list[str] = []

    def sender(url: str, **_: object) -> SendResult:
        sent.append(url)
        raise AssertionError("a refused target is never called")

    live = hook_activities(pg_sessions, sender=sender, live_mode=True)
    outcome = live.try_webhook(
        TryInput(delivery_id=delivery_id, run=0, number=1, scheduled_at=utcnow())
    )
    assert (outcome.status, outcome.final) == ("refused", False)  # tried again on schedule
    assert sent == []
    shown = webhook_deliveries.get_delivery(pg_sessions, delivery_id, WebhookDeliveryOut.of)
    (tried,) = shown.attempts
    assert tried.outcome == "refused" and "127.0.0.1 is a loopback address" in tried.error
    assert shown.endpoint_id == endpoint.id and shown.status == "pending"
