"""The email a firing sends the customer: once per firing, as every email is sent.

The same protocol as the notification activity (``activities.notifications``): one
``emails`` row per business key (``alert:<firing id>``), committed as ``sending``
before the provider is called; a later try that finds ``sending`` asks the provider
(``Mailer.find``) before sending again, and a ``sent`` row is never sent twice. The
ingestion calls this after the firings are committed; a firing whose email a crash
left unsent goes out with the next batch for its subscription.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jinja2
from sqlalchemy.orm import Session, sessionmaker

from kakin.adapters import links
from kakin.adapters.mailer import Mailer, OutgoingEmail
from kakin.adapters.rendering import money, render_email
from kakin.platform import metrics
from kakin.services.alerts_evaluation import CAP, MONEY_WATCHES
from kakin.services.invoice_documents import Seller
from models.alert_tables import Alert, AlertFiring
from models.repositories import alerts as alert_sql
from models.repositories import emails as email_sql
from models.tables import BillableMetric, Subscription

EMAIL_KIND = "alert_triggered"
log = logging.getLogger("kakin.alerts")


@dataclass(frozen=True)
class AlertMail:
    """What sending an alert's email needs: the mailer, the templates, the seller."""

    mailer: Mailer
    templates: jinja2.Environment
    seller: Seller


KEY_PREFIX = "alert:"


def business_key(firing_id: int) -> str:
    return f"{KEY_PREFIX}{firing_id}"


def send_alert_emails(
    sessions: sessionmaker[Session], mail: AlertMail, subscription_ids: Iterable[str]
) -> int:
    """Send the emails of these subscriptions' firings not sent yet; how many were sent."""
    sent = 0
    with sessions() as session:
        # A cap reached is told by the refusals themselves (and the ledger), not by email.
        unsent = alert_sql.unsent_firings(
            session, subscription_ids, key_prefix=KEY_PREFIX, silent_prefix=CAP
        )
        for firing in unsent:
            try:
                sent += _send(session, mail, firing)
            except Exception:
                # The usage is stored and the firing recorded: a mail provider down must
                # not fail the batch. The email goes out with the next batch.
                session.rollback()
                log.warning("alert email %s not sent yet", business_key(firing.id), exc_info=True)
    return sent


def _send(session: Session, mail: AlertMail, firing: AlertFiring) -> int:
    alert = alert_sql.alert(session, firing.alert_id)
    subscription = session.get(Subscription, firing.subscription_id)
    if alert is None or subscription is None:
        return 0  # the alert was deleted since: nothing to tell
    customer = subscription.customer
    key = business_key(firing.id)
    content = render_email(
        mail.templates, EMAIL_KIND, customer.locale, context(session, mail, alert, firing)
    )
    row = email_sql.email_by_key(session, key)
    if row is None:
        row = email_sql.new_email(
            session,
            business_key=key,
            kind=EMAIL_KIND,
            customer_id=customer.id,
            subscription_id=subscription.id,
            invoice_id=None,
            to_address=customer.email,
            subject=content.subject,
            locale=customer.locale,
        )
    message = OutgoingEmail(
        key=key,
        to_address=customer.email,
        to_name=customer.name,
        from_address=mail.seller.email_from,
        from_name=mail.seller.email_from_name,
        subject=content.subject,
        html=content.html,
        text=content.text,
        attachments=(),
    )
    provider_id = None
    if row.status == "sending":  # an earlier try may have sent it
        provider_id = mail.mailer.find(key)
    if provider_id is None:
        row.status = "sending"
        session.commit()
        with metrics.sending_email(EMAIL_KIND):
            provider_id = mail.mailer.send(message)
    row.status = "sent"
    row.provider_message_id = provider_id
    row.sent_at = firing.fired_at
    session.commit()
    return 1


def context(session: Session, mail: AlertMail, alert: Alert, firing: AlertFiring) -> dict[str, Any]:
    """What the alert email's templates are given: amounts already written out."""
    subscription = session.get(Subscription, firing.subscription_id)
    assert subscription is not None
    customer = subscription.customer
    locale = customer.locale
    currency = alert.currency or subscription.price.currency
    metric = session.get(BillableMetric, alert.metric_id) if alert.metric_id else None

    def shown(value: str | None) -> str | None:
        if value is None:
            return None
        if alert.watches in MONEY_WATCHES:
            return money(int(Decimal(value)), currency, locale)
        unit = metric.name if metric is not None else ""
        return f"{Decimal(value).normalize():,f} {unit}".strip()

    budget = None if alert.budget is None else Decimal(alert.budget)
    observed = Decimal(firing.observed)
    return {
        "customer_name": customer.name,
        "subscription_id": subscription.id,
        "seller_name": mail.seller.name,
        "time_zone": customer.time_zone,
        "alert": {
            "name": alert.name,
            "watches": alert.watches,
            "metric": metric.name if metric is not None else None,
            "observed": shown(firing.observed),
            "threshold": shown(firing.threshold),
            "budget": shown(alert.budget),
            "percent": (f"{(observed * 100 / budget).quantize(Decimal(1))}%" if budget else None),
            "period_start": firing.period_start,
            "period_end": firing.period_end,
        },
        # Link expiry is not a billing date: the real clock is right here. The button
        # opens the billing page (its usage and budget), or the card page without one.
        "billing_page_url": links.billing_page_url(
            mail.seller.billing_page_url or mail.seller.payment_update_url,
            subscription.id,
            expires=int(time.time()) + links.LINK_LIFETIME_SECONDS,
            secret=mail.seller.link_secret,
        ),
    }
