"""The Stripe calls kakin makes, through the real ``stripe`` SDK.

A charge is one request: the PaymentIntent is created and confirmed at once
(``confirm=True``), with the attempt's business key in its metadata (``kakin_key``).
If the worker dies, or the answer is lost, after Stripe accepted the charge, the
retried activity has no intent id stored; it *finds* the intent by listing the
customer's PaymentIntents and matching ``kakin_key``, and creates one only if there
is none. So exactly-once does not depend on Stripe honouring idempotency keys (the
localstripe emulator ignores them). The keys are still sent, for real Stripe's own
protection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import stripe
from stripe.params import PaymentIntentConfirmParams, PaymentIntentCreateParams

# Stripe's test cards, accepted only in test mode (see create_test_payment_method).
TEST_CARDS = {"4242424242424242", "4000000000000341", "4000000000000002", "4000000000009995"}

# When several intents carry the same business key (only possible if a lost create was
# not found and was sent again), the one that took the money decides.
_PRECEDENCE = {"succeeded": 4, "processing": 3, "requires_action": 2, "requires_confirmation": 1}


class LiveModeRefusedError(Exception):
    """A test-only feature (test clock, test card) was asked of a live Stripe key."""


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
    ) -> None:
        # Temporal retries failed activities with backoff; SDK-level retries on top
        # would re-send a confirm whose first try may already have succeeded.
        base = {"api": api_base} if api_base else None
        self._client = stripe.StripeClient(
            api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=0,
            # Well under the charge activity's 60 s timeout: a hung call ends before
            # Temporal starts a retry of the same attempt, so the two never overlap.
            http_client=stripe.RequestsClient(timeout=20),
        )
        self.live_mode = api_key.startswith(("sk_live_", "rk_live_"))
        # localstripe rejects off_session on confirm; real Stripe needs it for
        # charges made while the customer is away.
        self._confirm_off_session = confirm_off_session
        # Real Stripe lists a customer's PaymentIntents; localstripe answers "Unexpected
        # customer" to the filter, and is then scanned whole (see find_intent).
        self._intents_by_customer = True

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

    # -- charges --------------------------------------------------------------------

    def charge(
        self,
        *,
        amount: int,
        currency: str,
        stripe_customer_id: str,
        payment_method_id: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> IntentState:
        """Create the PaymentIntent and confirm it in the same request.

        A decline comes back as a state (with the intent's id), transport faults as
        exceptions: the caller cannot know whether Stripe made the intent, and must
        look for it (find_intent) before trying again.
        """
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": stripe_customer_id,
            "payment_method": payment_method_id,
            "metadata": metadata,
            "confirm": True,
        }
        if self._confirm_off_session:
            params["off_session"] = True
        try:
            intent = self._client.v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.CardError as error:
            return self._declined(error, intent_id=None)
        return _state(intent)

    def find_intent(self, *, stripe_customer_id: str, kakin_key: str) -> IntentState | None:
        """The PaymentIntent created for ``kakin_key``, if one was.

        For a retry whose last try may have sent the create but never stored the id:
        intents carry their business key in metadata, so the retry finds the first
        intent instead of charging twice (no idempotency keys needed).
        """
        found = [
            intent
            for intent in self._intents_of(stripe_customer_id)
            if (intent.to_dict().get("metadata") or {}).get("kakin_key") == kakin_key
        ]
        if not found:
            return None
        return _state(max(found, key=lambda intent: _PRECEDENCE.get(intent.status, 0)))

    def _intents_of(self, stripe_customer_id: str) -> Iterable[Any]:
        if self._intents_by_customer:
            try:
                page = self._client.v1.payment_intents.list(
                    params={"customer": stripe_customer_id, "limit": 100}
                )
                return page.auto_paging_iter()
            except stripe.InvalidRequestError as error:
                # localstripe has no customer filter on this list; real Stripe has.
                if self.live_mode or "Unexpected customer" not in str(error):
                    raise
                self._intents_by_customer = False
        page = self._client.v1.payment_intents.list(params={"limit": 100})
        return (
            intent
            for intent in page.auto_paging_iter()
            if intent.to_dict().get("customer") == stripe_customer_id
        )

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
            return self._declined(error, intent_id=intent_id)
        except stripe.InvalidRequestError:
            # Already confirmed by a try whose answer we lost: Stripe's state decides.
            state = self.retrieve_intent(intent_id)
            if state.status == "requires_confirmation":
                raise
            return state
        return _state(intent)

    def _declined(self, error: stripe.CardError, *, intent_id: str | None) -> IntentState:
        """A card error as a declined state, naming the intent it declined."""
        body = error.error
        status = "requires_payment_method"
        if body is not None and body.payment_intent is not None:
            intent_id = body.payment_intent.id
            status = body.payment_intent.status or status
        elif intent_id is None and body is not None and body.charge:
            # localstripe names only the charge; real Stripe sends the intent itself.
            charge = self._client.v1.charges.retrieve(body.charge)
            intent_id = _id(charge.to_dict().get("payment_intent"))
        return IntentState(
            id=intent_id or "",
            status=status,
            decline_code=(body.decline_code if body else None) or error.code or "card_declined",
            message=error.user_message or str(error),
        )

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


def _id(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the object."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None
