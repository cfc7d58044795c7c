"""The outgoing webhooks' activities: look at the ledger for new deliveries, and make one try.

Dependencies come in through ``__init__`` (the sender and the resolver too), so tests
can inject doubles. A try is safe to retry: the receiver may see the request again
(at least once; it de-duplicates on webhook-id), the try is recorded once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.sessions import activity_sessions
from kakin import contracts
from kakin.adapters.webhook_sender import SendResult, send
from kakin.platform import metrics
from kakin.platform.codec import Keyring
from kakin.services import webhook_deliveries
from kakin.services.webhook_deliveries import EventShaper, Prepared, TryRecord
from kakin.services.webhook_targets import Resolver, TargetRefusedError, check_url, resolve
from models.tables import utcnow
from models.webhook_payloads import Dispatched, TryInput, TryOutcome

Sender = Callable[..., SendResult]


class WebhookActivities:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        keyring: Keyring,
        shape_event: EventShaper,
        live_mode: bool,
        timeout_seconds: float = 15.0,
        sender: Sender = send,
        resolver: Resolver = resolve,
    ) -> None:
        self._sessions = activity_sessions(session_factory)  # see activities/sessions.py
        self._keyring = keyring
        self._shape = shape_event
        self._live_mode = live_mode
        self._timeout = timeout_seconds
        self._send = sender
        self._resolve = resolver

    def activities(self) -> list[Callable[..., Any]]:
        return [self.dispatch_webhooks, self.mark_webhooks_dispatched, self.try_webhook]

    @activity.defn(name=contracts.ACTIVITY_DISPATCH_WEBHOOKS)
    def dispatch_webhooks(self) -> Dispatched:
        return webhook_deliveries.dispatch(self._sessions, self._shape)

    @activity.defn(name=contracts.ACTIVITY_MARK_WEBHOOKS_DISPATCHED)
    def mark_webhooks_dispatched(self, delivery_ids: list[str]) -> None:
        webhook_deliveries.mark_dispatched(self._sessions, delivery_ids)

    @activity.defn(name=contracts.ACTIVITY_TRY_WEBHOOK)
    def try_webhook(self, input: TryInput) -> TryOutcome:
        prepared = webhook_deliveries.prepare_try(self._sessions, self._keyring, input)
        if not isinstance(prepared, Prepared):
            if prepared.status == "skipped":  # the endpoint disabled (or deleted)
                metrics.webhook_delivery("disabled")
            return prepared
        try:
            # Again at each try: the name may resolve elsewhere since registration.
            check_url(prepared.url, live_mode=self._live_mode, resolver=self._resolve)
        except TargetRefusedError as error:
            record = TryRecord(outcome="refused", attempted_at=utcnow(), error=str(error))
        else:
            sent = self._send(
                prepared.url, event_id=prepared.event_id, body=prepared.body,
                secrets=prepared.secrets, timeout=self._timeout,
            )  # fmt: skip
            record = TryRecord(
                outcome=sent.outcome, attempted_at=sent.attempted_at,
                duration_ms=sent.duration_ms, status_code=sent.status_code,
                excerpt=sent.excerpt, error=sent.error,
                retry_after_seconds=sent.retry_after_seconds,
            )  # fmt: skip
        outcome = webhook_deliveries.record_try(self._sessions, input, record)
        if outcome.final and outcome.status != "skipped":  # skipped: the delivery deleted
            # delivered, or failed for good: a 410 ("gone") disables the endpoint too.
            metrics.webhook_delivery("disabled" if record.outcome == "gone" else outcome.status)
        return outcome
