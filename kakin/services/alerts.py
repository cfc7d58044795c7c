"""Budgets and alerts on a subscription or a customer: set, read, change, remove.

An alert watches the current period's bill so far, the forecast bill, or one metric's
usage (``kakin.services.alerts_evaluation`` says how each is computed and when they
fire) against ascending thresholds, absolute or in percent of a budget, with an
optional recurring step after the last. A usage alert on a subscription may carry a
hard cap. Every change is in the audit log with who made it; raising or lowering a
cap is its own action (``usage_cap_changed``) so support can find it.

Money is in the currency's minor unit (3980 is 3,980円; 1250 is $12.50), usage in
the metric's unit (up to six decimals).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from billing.money import normalize_currency
from kakin.services.alerts_evaluation import (
    CAP,
    CAPPABLE,
    MONEY_WATCHES,
    WATCHES,
    cap_key,
    crossed,
    group_of,
    key,
    levels,
    resolve,
    watched,
)
from kakin.services.errors import ConflictError, InvalidRequestError, MissingError, NotFoundError
from models.alert_tables import Alert
from models.repositories import alerts as alert_sql
from models.repositories import audit as audit_sql
from models.repositories import usage as usage_sql
from models.repositories.common import new_id
from models.tables import BillableMetric, Customer, Subscription, utcnow

MAX_THRESHOLDS = 20


@dataclass(frozen=True)
class Threshold:
    """One threshold: ``percent`` of the budget, or an absolute ``value``."""

    percent: Decimal | None = None
    value: Decimal | None = None

    def stored(self) -> dict[str, str]:
        if (self.percent is None) == (self.value is None):
            raise InvalidRequestError("a threshold is either a percent or a value, not both")
        if self.percent is not None:
            return {"percent": key(self.percent)}
        assert self.value is not None
        return {"value": key(self.value)}


@dataclass(frozen=True)
class AlertSpec:
    """What an alert watches and when it fires (see the module docstring for units)."""

    watches: str
    thresholds: tuple[Threshold, ...]
    name: str = ""
    metric: str | None = None  # the metric's code, for a usage alert
    budget: Decimal | None = None
    recurring: Threshold | None = None
    hard_cap: Decimal | None = None


@dataclass(frozen=True)
class AlertDetails:
    """An alert as the faces show it, with where it stands in the current period.

    Attributes:
        current: The watched value now (None: no open period it applies to).
        fired: The thresholds fired in the current period, as keyed (``"cap"`` is the cap).
        cap_reached: The hard cap stops further usage of the metric this period.
    """

    id: str
    customer_id: str
    subscription_id: str | None
    name: str
    watches: str
    metric: str | None
    currency: str | None
    budget: str | None
    thresholds: list[dict[str, str]]
    levels: list[str]
    recurring: dict[str, str] | None
    hard_cap: str | None
    created_at: datetime
    updated_at: datetime
    current: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    fired: list[str] = field(default_factory=list)
    next_threshold: str | None = None
    cap_reached: bool = False
    # When each of ``fired`` fired (the API, the console and the billing page show it).
    fired_at: dict[str, datetime] = field(default_factory=dict)


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequestError(f"{name} must be a number, got {value!r}") from None
    if not number.is_finite() or number < 0:
        raise InvalidRequestError(f"{name} must be a number of 0 or more")
    if number >= Decimal(10) ** 15:
        raise InvalidRequestError(f"{name} must be below 10^15")
    return number


def _checked(
    session: Session, spec: AlertSpec, currency: str, *, on_subscription: bool
) -> dict[str, Any]:
    """The columns of an alert built from ``spec``; InvalidRequestError says what is wrong."""
    if spec.watches not in WATCHES:
        raise InvalidRequestError(f"watches must be one of {', '.join(WATCHES)}")
    if not spec.thresholds:
        raise InvalidRequestError("an alert needs at least one threshold")
    if len(spec.thresholds) > MAX_THRESHOLDS:
        raise InvalidRequestError(f"an alert has at most {MAX_THRESHOLDS} thresholds")
    money = spec.watches in MONEY_WATCHES
    budget = None if spec.budget is None else _decimal(spec.budget, "budget")
    stored = [term.stored() for term in spec.thresholds]
    recurring = None if spec.recurring is None else spec.recurring.stored()
    try:
        values = [resolve(term, budget) for term in stored]
        step = None if recurring is None else resolve(recurring, budget)
    except ValueError as error:
        raise InvalidRequestError(str(error)) from None
    if any(value <= 0 for value in values) or (step is not None and step <= 0):
        raise InvalidRequestError("thresholds and the recurring step must be above 0")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise InvalidRequestError("thresholds must be in ascending order, each above the last")
    if money and budget is not None and budget != budget.to_integral_value():
        raise InvalidRequestError("a budget is a whole amount in the currency's minor unit")
    metric_id = None
    if spec.watches == "usage":
        if not spec.metric:
            raise InvalidRequestError("a usage alert needs the metric's code")
        metric = usage_sql.metrics_by_code(session, {spec.metric}).get(spec.metric)
        if metric is None:
            raise MissingError(f"there is no metric with code {spec.metric!r}")
        metric_id = metric.id
        if spec.hard_cap is not None:
            if not on_subscription:
                raise InvalidRequestError("a hard cap is set on a subscription's usage alert")
            if metric.aggregation not in CAPPABLE:
                raise InvalidRequestError(
                    f"a hard cap needs a {', '.join(CAPPABLE)} metric; {spec.metric!r} is "
                    f"{metric.aggregation}"
                )
    elif spec.metric:
        raise InvalidRequestError("only a usage alert names a metric")
    if spec.hard_cap is not None and spec.watches != "usage":
        raise InvalidRequestError("a hard cap is for a usage alert (one metric)")
    cap = None if spec.hard_cap is None else _decimal(spec.hard_cap, "hard_cap")
    return {
        "name": spec.name[:200],
        "watches": spec.watches,
        "metric_id": metric_id,
        "currency": currency if money else None,
        "budget": None if budget is None else key(budget),
        "thresholds": stored,
        "recurring": recurring,
        "hard_cap": None if cap is None else key(cap),
    }


def create_alert(
    sessions: sessionmaker[Session],
    spec: AlertSpec,
    *,
    subscription_id: str | None = None,
    customer_id: str | None = None,
    currency: str | None = None,
    actor: str,
) -> AlertDetails:
    """Set an alert on a subscription, or on a customer across its subscriptions.

    A customer's money alert is in ``currency`` (default: the customer's own).
    """
    if (subscription_id is None) == (customer_id is None):
        raise InvalidRequestError("an alert is on a subscription or on a customer")
    with sessions() as session:
        if subscription_id is not None:
            subscription = session.get(Subscription, subscription_id)
            if subscription is None:
                raise NotFoundError(f"Subscription {subscription_id!r} does not exist")
            if subscription.status == "canceled":
                raise ConflictError(f"Subscription {subscription_id!r} is canceled")
            owner, money_in = subscription.customer_id, subscription.price.currency
        else:
            customer = session.get(Customer, customer_id)
            if customer is None:
                raise NotFoundError(f"Customer {customer_id!r} does not exist")
            owner = customer.id
            try:
                money_in = normalize_currency(currency or customer.currency)
            except ValueError as error:
                raise InvalidRequestError(str(error)) from None
        columns = _checked(session, spec, money_in, on_subscription=subscription_id is not None)
        now = utcnow()
        alert = Alert(
            id=new_id("alrt"),
            customer_id=owner,
            subscription_id=subscription_id,
            created_by=actor[:200],
            created_at=now,
            updated_at=now,
            **columns,
        )
        session.add(alert)
        session.flush()
        _audit(session, alert, "alert_created", actor, details=_described(alert))
        session.commit()
        return details_of(session, alert)


def list_alerts(
    sessions: sessionmaker[Session],
    *,
    subscription_id: str | None = None,
    customer_id: str | None = None,
) -> list[AlertDetails]:
    """The alerts on a subscription, or a customer's customer-wide alerts."""
    with sessions() as session:
        if subscription_id is not None:
            if session.get(Subscription, subscription_id) is None:
                raise NotFoundError(f"Subscription {subscription_id!r} does not exist")
            rows = alert_sql.subscription_alerts(session, subscription_id)
        else:
            if customer_id is None or session.get(Customer, customer_id) is None:
                raise NotFoundError(f"Customer {customer_id!r} does not exist")
            rows = alert_sql.customer_alerts(session, customer_id)
        return [details_of(session, row) for row in rows]


def _owned(session: Session, alert_id: str, owner: dict[str, str | None]) -> Alert:
    alert = alert_sql.alert(session, alert_id)
    if alert is None or any(getattr(alert, name) != value for name, value in owner.items()):
        raise NotFoundError(f"Alert {alert_id!r} does not exist")
    return alert


def _owner(subscription_id: str | None, customer_id: str | None) -> dict[str, str | None]:
    """Which alerts a path may reach: its subscription's, or its customer's own (any,
    for a face that names neither: the CLI)."""
    if subscription_id is None and customer_id is None:
        return {}
    if subscription_id is not None:
        return {"subscription_id": subscription_id}
    return {"customer_id": customer_id, "subscription_id": None}


def get_alert(
    sessions: sessionmaker[Session],
    alert_id: str,
    *,
    subscription_id: str | None = None,
    customer_id: str | None = None,
) -> AlertDetails:
    with sessions() as session:
        return details_of(session, _owned(session, alert_id, _owner(subscription_id, customer_id)))


def update_alert(
    sessions: sessionmaker[Session],
    alert_id: str,
    changes: dict[str, Any],
    *,
    subscription_id: str | None = None,
    customer_id: str | None = None,
    actor: str,
    reason: str = "",
) -> AlertDetails:
    """Change an alert's name, thresholds, budget, step or hard cap; audited.

    ``changes`` holds ``AlertSpec``'s fields to change (``watches`` and ``metric`` stay).
    A cap change is audited as ``usage_cap_changed`` with the old and new cap; raising
    it lets the usage it refused be sent again at once.
    """
    unknown = set(changes) - {"name", "thresholds", "budget", "recurring", "hard_cap"}
    if unknown:
        raise InvalidRequestError(f"cannot change {', '.join(sorted(unknown))} of an alert")
    with sessions() as session:
        alert = _owned(session, alert_id, _owner(subscription_id, customer_id))
        before = _described(alert)
        metric_code = None
        if alert.metric_id is not None:
            metric = session.get(BillableMetric, alert.metric_id)
            metric_code = metric.code if metric is not None else None
        current = AlertSpec(
            watches=alert.watches,
            name=alert.name,
            metric=metric_code,
            budget=None if alert.budget is None else Decimal(alert.budget),
            thresholds=tuple(_threshold(term) for term in alert.thresholds),
            recurring=None if alert.recurring is None else _threshold(alert.recurring),
            hard_cap=None if alert.hard_cap is None else Decimal(alert.hard_cap),
        )
        spec = AlertSpec(**{**current.__dict__, **changes})
        columns = _checked(
            session,
            spec,
            alert.currency or "",
            on_subscription=alert.subscription_id is not None,
        )
        for name, value in columns.items():
            setattr(alert, name, value)
        alert.updated_at = utcnow()
        after = _described(alert)
        if before.get("hard_cap") != after.get("hard_cap"):
            capped = {"from": before.get("hard_cap"), "to": after.get("hard_cap")}
            _audit(session, alert, "usage_cap_changed", actor, reason=reason, details=capped)
        if {k: v for k, v in before.items() if k != "hard_cap"} != {
            k: v for k, v in after.items() if k != "hard_cap"
        }:
            _audit(session, alert, "alert_updated", actor, reason=reason,
                   details={"from": before, "to": after})  # fmt: skip
        session.commit()
        return details_of(session, alert)


def delete_alert(
    sessions: sessionmaker[Session],
    alert_id: str,
    *,
    subscription_id: str | None = None,
    customer_id: str | None = None,
    actor: str,
    reason: str = "",
) -> None:
    """Remove an alert (its firings go with it; the ledger keeps what was sent)."""
    with sessions() as session:
        alert = _owned(session, alert_id, _owner(subscription_id, customer_id))
        _audit(session, alert, "alert_deleted", actor, reason=reason, details=_described(alert))
        session.delete(alert)
        session.commit()


def _threshold(term: dict[str, str]) -> Threshold:
    if "percent" in term:
        return Threshold(percent=Decimal(term["percent"]))
    return Threshold(value=Decimal(term["value"]))


def _described(alert: Alert) -> dict[str, Any]:
    return {
        "name": alert.name,
        "watches": alert.watches,
        "metric_id": alert.metric_id,
        "currency": alert.currency,
        "budget": alert.budget,
        "thresholds": list(alert.thresholds),
        "recurring": alert.recurring,
        "hard_cap": alert.hard_cap,
    }


def _audit(
    session: Session,
    alert: Alert,
    action: str,
    actor: str,
    *,
    reason: str = "",
    details: dict[str, Any],
) -> None:
    audit_sql.audit(
        session,
        entity_type="alert",
        entity_id=alert.id,
        action=action,
        actor=actor[:200],
        occurred_at=utcnow(),
        reason=reason,
        details={
            **details,
            "subscription_id": alert.subscription_id,
            "customer_id": alert.customer_id,
        },
    )


def _fired_order(value: str) -> tuple[bool, Decimal]:
    capped = value.startswith(CAP)
    return capped, Decimal(value.removeprefix(CAP))


def details_of(session: Session, alert: Alert) -> AlertDetails:
    """The alert with its current value and this period's firings."""
    metric = None
    if alert.metric_id is not None:
        row = session.get(BillableMetric, alert.metric_id)
        metric = row.code if row is not None else None
    seen = watched(session, alert, group_of(session, alert))
    fired: list[str] = []
    fired_at: dict[str, datetime] = {}
    next_threshold = None
    cap_reached = False
    if seen is not None:
        rows = alert_sql.firings(session, alert.id, period_start=seen.period_start)
        fired = [row.threshold for row in rows]
        fired_at = {row.threshold: row.fired_at for row in rows}
        cap = alert.hard_cap
        cap_reached = cap is not None and cap_key(Decimal(cap)) in fired
        done = {Decimal(value) for value in fired if not value.startswith(CAP)}
        hit = crossed(alert, seen.value)
        upcoming = [value for value in levels(alert) if value not in done and value not in hit]
        if upcoming:
            next_threshold = key(upcoming[0])
        elif alert.recurring and levels(alert):
            step = resolve(alert.recurring, None if alert.budget is None else Decimal(alert.budget))
            last = max([*levels(alert), *hit])
            next_threshold = key(last + step)
        fired = sorted(fired, key=_fired_order)
    return AlertDetails(
        id=alert.id,
        customer_id=alert.customer_id,
        subscription_id=alert.subscription_id,
        name=alert.name,
        watches=alert.watches,
        metric=metric,
        currency=alert.currency,
        budget=alert.budget,
        thresholds=list(alert.thresholds),
        levels=[key(value) for value in levels(alert)],
        recurring=alert.recurring,
        hard_cap=alert.hard_cap,
        created_at=alert.created_at,
        updated_at=alert.updated_at,
        current=None if seen is None else key(seen.value),
        period_start=None if seen is None else seen.period_start,
        period_end=None if seen is None else seen.period_end,
        fired=fired,
        next_threshold=next_threshold,
        cap_reached=cap_reached,
        fired_at=fired_at,
    )


# -- the budget: what the customer sets on their billing page -------------------------------

DEFAULT_BUDGET_PERCENTS = (50, 80, 100)


def _is_budget(item: AlertDetails) -> bool:
    return item.watches == "bill" and item.budget is not None


def subscription_budget(
    sessions: sessionmaker[Session], subscription_id: str
) -> AlertDetails | None:
    """The subscription's budget: its (first) bill-so-far alert with a budget; None: none.

    The budget counts what a ``bill`` alert watches: the period's bill so far, tax
    excluded, discounts included (``alerts_evaluation.bill_so_far``).
    """
    found = list_alerts(sessions, subscription_id=subscription_id)
    return next((item for item in found if _is_budget(item)), None)


def set_budget(
    sessions: sessionmaker[Session], subscription_id: str, budget: int, *, actor: str
) -> AlertDetails:
    """Set or change the subscription's budget (minor units); audited.

    A new budget fires at 50 %, 80 % and 100 % of it; a changed one keeps the
    thresholds it had (they are percents of the budget, or the customer's own values).
    """
    current = subscription_budget(sessions, subscription_id)
    if current is None:
        spec = AlertSpec(
            watches="bill",
            name="budget",
            budget=Decimal(budget),
            thresholds=tuple(Threshold(percent=Decimal(p)) for p in DEFAULT_BUDGET_PERCENTS),
        )
        return create_alert(sessions, spec, subscription_id=subscription_id, actor=actor)
    return update_alert(
        sessions, current.id, {"budget": Decimal(budget)},
        subscription_id=subscription_id, actor=actor,
    )  # fmt: skip


def remove_budget(sessions: sessionmaker[Session], subscription_id: str, *, actor: str) -> bool:
    """Remove the subscription's budget alert (False: there was none); audited."""
    current = subscription_budget(sessions, subscription_id)
    if current is None:
        return False
    delete_alert(sessions, current.id, subscription_id=subscription_id, actor=actor)
    return True


@dataclass(frozen=True)
class UsageCap:
    """A hard cap on one metric of a subscription, and where the period stands."""

    alert_id: str
    metric: str
    cap: str
    used: str | None
    reached: bool


def usage_caps(sessions: sessionmaker[Session], subscription_id: str) -> list[UsageCap]:
    """The subscription's hard caps (for its status): reached ones refuse usage."""
    with sessions() as session:
        capped = alert_sql.capped(session, {subscription_id})
        found = [details_of(session, alert) for alert in capped]
    return [
        UsageCap(item.id, item.metric or "", item.hard_cap or "", item.current, item.cap_reached)
        for item in found
    ]
