"""Spend and usage alerts, their firings, and the hard caps they may carry.

In a module of their own (on the same ``Base`` as ``models.tables``), like the staff
tables: none of billing reads them. Whatever builds or compares the whole schema (the
Alembic env, the migration test) imports this module beside ``models.tables``.

An ``AlertFiring`` row is what makes a threshold fire once: its (alert, period start,
threshold) triple is unique and inserted with "insert or nothing", so two requests
racing over the same crossing, or the same usage sent again, record one firing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, UTCDateTime, utcnow


class Alert(Base):
    """What is watched (``watches``) against which ascending thresholds.

    ``watches``: ``bill`` (the current period's bill so far, tax excluded, discounts
    included), ``forecast`` (the bill the period is on course for) or ``usage`` (one
    metric's quantity). On a subscription, or on a customer (``subscription_id`` None:
    the sum over its subscriptions). Thresholds and the recurring step are stored as
    given, ``{"percent": "80"}`` (of ``budget``) or ``{"value": "5000"}`` (minor units
    for money, the metric's unit for usage), so a budget change moves the percents.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_customer_id", "customer_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    watches: Mapped[str] = mapped_column(String(20))  # bill | forecast | usage
    metric_id: Mapped[str | None] = mapped_column(ForeignKey("billable_metrics.id"))
    currency: Mapped[str | None] = mapped_column(String(3))  # bill and forecast alerts
    budget: Mapped[str | None] = mapped_column(String(40))  # a decimal, as given
    thresholds: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    recurring: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # usage alerts: further usage of the metric in the period is refused past it
    hard_cap: Mapped[str | None] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AlertFiring(Base):
    """One threshold crossed in one period: unique per (alert, period start, threshold).

    ``threshold`` is the crossed value as a normalised decimal string (``"3200"``), or
    ``"cap"`` for a hard cap reached. ``subscription_id`` is the subscription whose
    usage crossed it (its billing page is the one the email links to).
    """

    __tablename__ = "alert_firings"
    __table_args__ = (
        UniqueConstraint("alert_id", "period_start", "threshold"),
        Index("ix_alert_firings_subscription_id", "subscription_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    customer_id: Mapped[str] = mapped_column(String(40))
    subscription_id: Mapped[str] = mapped_column(String(40))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    threshold: Mapped[str] = mapped_column(String(40))
    observed: Mapped[str] = mapped_column(String(40))  # the watched value when it fired
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
