"""Test clocks and test cards are refused with a live Stripe key, at every entry."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from kakin.adapters.stripe_gateway import LiveModeRefusedError, StripeGateway
from kakin.platform.settings import Settings
from kakin.services import errors, subscriptions
from models.payloads import ChargeRequest
from tests.conftest import make_activities

LIVE = StripeGateway(api_key="sk_live_not_a_real_key", api_base="http://127.0.0.1:9")


def test_settings_know_a_live_key() -> None:
    assert Settings(stripe_api_key="sk_live_x").live_mode
    assert not Settings(stripe_api_key="sk_test_x").live_mode


async def test_starting_on_a_test_clock_is_refused_in_live_mode(
    pg_sessions: sessionmaker[Session],
) -> None:
    unused_client: Client = None  # type: ignore[assignment]  # refused before any call
    with pytest.raises(errors.InvalidRequestError, match="test clocks are refused"):
        await subscriptions.start_subscription(
            unused_client, pg_sessions, task_queue="billing", customer_id="cus_x",
            price_id="price_x", test_clock_speed=1000.0, live_mode=True,
        )  # fmt: skip


def test_the_charge_activity_refuses_a_test_clock_with_a_live_key(
    pg_sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    billing = make_activities(pg_sessions, LIVE, tmp_path)
    request = ChargeRequest(
        invoice_id="in_x", attempt=1, attempted_at=datetime.now(UTC), test_clock=True
    )
    with pytest.raises(ApplicationError, match="live Stripe key") as refused:
        ActivityEnvironment().run(billing.payments.charge_invoice, request)
    assert refused.value.non_retryable


def test_card_numbers_are_refused_with_a_live_key() -> None:
    with pytest.raises(LiveModeRefusedError):
        LIVE.create_test_payment_method(card_number="4242424242424242", stripe_customer_id="cus")


def test_only_test_cards_are_accepted_in_test_mode(stripe_gateway: StripeGateway) -> None:
    with pytest.raises(ValueError, match="only Stripe test card numbers"):
        stripe_gateway.create_test_payment_method(
            card_number="4111 1111 1111 1112", stripe_customer_id="cus_x"
        )
