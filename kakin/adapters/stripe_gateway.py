"""The Stripe calls kakin makes, through the real ``stripe`` SDK.

A charge is two calls on purpose: create the PaymentIntent (unconfirmed), store its
id, then confirm it. If the worker dies after Stripe accepted the charge, the retried
activity finds the stored id, retrieves the PaymentIntent and sees it succeeded, so
exactly-once does not depend on Stripe honouring idempotency keys (the localstripe
emulator ignores them). The keys are still sent, for real Stripe's own protection.

Every request goes through kakin.adapters.stripe_pacing's HTTP client: paced by the
process's token bucket (when the gateway is given one) and retried after Stripe's
Retry-After when answered 429.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe
from stripe.params import PaymentIntentConfirmParams

from kakin.adapters.stripe_pacing import RATE_LIMITED_RETRIES, PacedHttpClient, TokenBucket

# Stripe's test cards, accepted only in test mode (see create_test_payment_method).
TEST_CARDS = {"4242424242424242", "4000000000000341", "4000000000000002", "4000000000009995"}


class LiveModeRefusedError(Exception):
    """A test-only feature (test clock, test card) was asked of a live Stripe key."""


@dataclass(frozen=True)
class CardSummary:
    """What staff may see of a card: its brand and last four digits, never the number."""

    brand: str
    last4: str


@dataclass(frozen=True)
class IntentState:
    """What we need to know of a PaymentIntent after a call."""

    id: str
    status: str  # Stripe's status: succeeded, requires_confirmation, processing, ...
    decline_code: str | None = None
    message: str = ""
    amount: int = 0
    currency: str = ""
    invoice_id: str = ""  # our invoice, from the intent's kakin_invoice_id metadata


class StripeGateway:
    """Thin, injectable wrapper: activities depend on this, tests point it anywhere."""

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str | None = None,
        confirm_off_session: bool = True,
        bucket: TokenBucket | None = None,
        rate_limited_retries: int = RATE_LIMITED_RETRIES,
    ) -> None:
        """``bucket``: the process's Stripe token bucket (kakin.runtime.stripe_bucket),
        shared by every gateway of the process; None sends unpaced (tests, setup).
        ``rate_limited_retries``: 429s retried after Retry-After before RateLimitError."""
        # Temporal retries failed activities with backoff; SDK-level retries on top
        # would re-send a confirm whose first try may already have succeeded.
        base = {"api": api_base} if api_base else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=0,
            # Well under the charge activity's 60 s timeout: a hung call ends before
            # Temporal starts a retry of the same attempt, so the two never overlap
            # (the pacing client adds at most MAX_WAIT_SECONDS of waiting per call).
            http_client=PacedHttpClient(
                bucket=bucket, timeout=20, rate_limited_retries=rate_limited_retries
            ),
        )
        self.live_mode = api_key.startswith(("sk_live_", "rk_live_"))
        # localstripe rejects off_session on confirm; real Stripe needs it for
        # charges made while the customer is away.
        self._confirm_off_session = confirm_off_session

    # -- customers and payment methods ------------------------------------------

    def create_customer(self, *, email: str, name: str, kakin_customer_id: str) -> str:
        customer = self._client.v1.customers.create(
            params={
                "email": email,
                "name": name,
                "metadata": {"kakin_customer_id": kakin_customer_id},
            },
            options={"idempotency_key": f"customer:{kakin_customer_id}"},
        )
        return customer.id

    def create_test_payment_method(self, *, card_number: str, stripe_customer_id: str) -> str:
        """Turn a Stripe *test* card number into an attached PaymentMethod.

        The number goes straight to Stripe and is never stored or logged by kakin.
        """
        if self.live_mode:
            raise LiveModeRefusedError("card numbers are only accepted with a test-mode Stripe key")
        number = card_number.replace(" ", "").replace("-", "")
        if number not in TEST_CARDS:
            raise ValueError("only Stripe test card numbers are accepted in test mode")
        method = self._client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
            }
        )
        self._client.v1.payment_methods.attach(method.id, params={"customer": stripe_customer_id})
        return method.id

    def set_default_payment_method(
        self, *, stripe_customer_id: str, payment_method_id: str
    ) -> None:
        """Make an attached card the customer's default at Stripe (for invoices and events).

        Stripe's default is the one source of truth for "the customer's card": a
        ``customer.updated`` event is checked against it, so a card kakin switched to
        must be Stripe's default too, or the next unrelated event would switch back.
        """
        self._client.v1.customers.update(
            stripe_customer_id,
            params={"invoice_settings": {"default_payment_method": payment_method_id}},
        )

    def default_payment_method(self, stripe_customer_id: str) -> str | None:
        """The customer's current default card at Stripe (None if it has none)."""
        customer = self._client.v1.customers.retrieve(stripe_customer_id)
        settings = customer.to_dict().get("invoice_settings") or {}
        method = settings.get("default_payment_method")
        if isinstance(method, dict):  # expanded
            method = method.get("id")
        return str(method) if method else None

    def card_summary(self, payment_method_id: str) -> CardSummary | None:
        """The brand and last 4 of a card PaymentMethod (None for another kind)."""
        method = self._client.v1.payment_methods.retrieve(payment_method_id).to_dict()
        card = method.get("card") or {}
        if not card.get("last4"):
            return None
        return CardSummary(brand=str(card.get("brand") or ""), last4=str(card["last4"]))

    # -- charges --------------------------------------------------------------------

    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        stripe_customer_id: str,
        payment_method_id: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> str:
        intent = self._client.v1.payment_intents.create(
            params={
                "amount": amount,
                "currency": currency.lower(),
                "customer": stripe_customer_id,
                "payment_method": payment_method_id,
                "metadata": metadata,
            },
            options={"idempotency_key": idempotency_key},
        )
        return intent.id

    def retrieve_intent(self, intent_id: str) -> IntentState:
        return _state(self._client.v1.payment_intents.retrieve(intent_id))

    def confirm_intent(self, intent_id: str, *, idempotency_key: str) -> IntentState:
        """Confirm; a decline comes back as a state, transport faults as exceptions."""
        params: PaymentIntentConfirmParams = (
            {"off_session": True} if self._confirm_off_session else {}
        )
        try:
            intent = self._client.v1.payment_intents.confirm(
                intent_id,
                params=params,
                options={"idempotency_key": idempotency_key},
            )
        except stripe.CardError as error:
            body = error.error
            return IntentState(
                id=intent_id,
                status="requires_payment_method",
                decline_code=(body.decline_code if body else None) or error.code or "card_declined",
                message=error.user_message or str(error),
            )
        except stripe.InvalidRequestError:
            # Already confirmed by a try whose answer we lost: Stripe's state decides.
            state = self.retrieve_intent(intent_id)
            if state.status == "requires_confirmation":
                raise
            return state
        return _state(intent)

    # -- refunds ----------------------------------------------------------------------

    def find_refund(self, *, payment_intent_id: str, kakin_key: str) -> str | None:
        """The refund made for ``kakin_key`` on this payment, if one was made.

        Refunds carry their business key in metadata, so a retry after a lost answer
        finds the first refund instead of refunding twice (no idempotency keys needed).
        """
        refunds = self._client.v1.refunds.list(
            params={"payment_intent": payment_intent_id, "limit": 100}
        )
        for refund in refunds.data:
            metadata = refund.to_dict().get("metadata") or {}
            if metadata.get("kakin_key") == kakin_key:
                return str(refund.id)
        return None

    def refund(
        self, *, payment_intent_id: str, amount: int, kakin_key: str, idempotency_key: str
    ) -> str:
        """Refund ``amount`` of a succeeded payment; returns the refund id."""
        refund = self._client.v1.refunds.create(
            params={
                "payment_intent": payment_intent_id,
                "amount": amount,
                "metadata": {"kakin_key": kakin_key},
            },
            options={"idempotency_key": idempotency_key},
        )
        return str(refund.id)


def _state(intent: Any) -> IntentState:
    data = intent.to_dict()
    error = data.get("last_payment_error") or {}
    return IntentState(
        id=intent.id,
        status=intent.status,
        decline_code=error.get("decline_code") or error.get("code"),
        message=error.get("message") or "",
        amount=int(data.get("amount") or 0),
        currency=str(data.get("currency") or "").upper(),
        invoice_id=str((data.get("metadata") or {}).get("kakin_invoice_id") or ""),
    )
