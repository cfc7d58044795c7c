"""When alerts fire, and the hard caps that refuse usage: both decided at ingestion.

**Evaluated on ingestion, not in the workflow.** Usage reaches kakin only through
``kakin.services.usage.ingest``, so right after a batch is stored is the one moment a
threshold can be crossed, and the customer hears of it within the request (far inside
the 60 s promised) without the subscription's workflow waking up, or growing its
history, for every batch: a workflow that slept until renewal would have to poll.
Bills move only with usage (the plan's part is fixed for the period), so nothing is
missed between batches; a new period re-arms every threshold because the firings are
keyed by the period's start.

**Exactly once.** ``evaluate`` runs in its own transaction right after the batch is
committed, reading the period's totals as committed (so two batches racing each other
cannot both stay below a threshold they cross together). Each crossed threshold is
an insert-or-nothing of its (alert, period start, threshold) row, and only the request
that inserted it writes the ``alert.triggered`` ledger entry, in the same transaction.
Totals, not the batch, are evaluated, so a batch sent again (whose events the
ingestion acknowledges as duplicates) finds every threshold recorded and adds nothing;
and if a process died between the batch's commit and its evaluation, the resend
repairs it. The email is sent after that commit (``kakin.services.alert_emails``),
keyed by the firing, like every other email.

**Hard caps refuse at ingestion.** A usage alert may carry ``hard_cap``: an event that
would take the metric's period total *past* the cap is refused with its reason; one
that brings it exactly *to* the cap is accepted. Refusing is honest (the client knows
at once which events did not count, and nothing is quietly dropped from a bill) and
simple (the invoice needs no special case). Batches counting under a cap take a lock
on that subscription's cap (``models.repositories.alerts.lock_caps``). Caps apply to
count, sum and max metrics, whose totals each event moves predictably.

**What is watched.**

- ``bill``: the current period's bill so far, tax excluded, discounts included: the
  plan and licensed items of the period (billed in advance) plus the period's usage
  so far, composed by ``invoice_drafts.compose`` as the upcoming invoice is;
- ``forecast``: the same with the metered quantities (count and sum metrics) run on
  to the period's end at the rate observed so far, as the analytics forecast runs
  usage (``analytics_forecast``): the time "so far" is the newest usage event's, the
  billing clock the customer's usage carries (test clocks included);
- ``usage``: one metric's quantity in the period.

A customer's alert adds up its subscriptions (in the alert's currency, or metered on
its metric); its period is the newest of their current periods, so it re-arms when
any of them renews.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from billing import rating
from billing.analytics.ledger import EntryKind
from kakin.services import ledger as ledger_service
from kakin.services.invoice_drafts import (
    DraftLine,
    compose,
    plan_lines,
    rating_price,
    usage_lines,
)
from models.alert_tables import Alert
from models.repositories import alerts as alert_sql
from models.repositories import usage as usage_sql
from models.tables import BillableMetric, Subscription, utcnow

WATCHES = ("bill", "forecast", "usage")
MONEY_WATCHES = ("bill", "forecast")
CAPPABLE = ("count", "sum", "max")
CAP = "cap:"  # the threshold key of a hard cap reached: "cap:" and the cap
MAX_STEPS = 100  # recurring steps recorded at most per evaluation (a runaway guard)
_PROJECTED = ("count", "sum")  # metered quantities that grow with time
_MICRO = datetime.resolution  # one microsecond: durations as exact integers


# -- thresholds ---------------------------------------------------------------------------


def resolve(term: dict[str, str], budget: Decimal | None) -> Decimal:
    """A stored threshold (``{"percent": "80"}`` of the budget, or ``{"value": "5000"}``)."""
    if "percent" in term:
        if budget is None:
            raise ValueError("a percent threshold needs a budget")
        return budget * Decimal(term["percent"]) / 100
    return Decimal(term["value"])


def budget_of(alert: Alert) -> Decimal | None:
    return None if alert.budget is None else Decimal(alert.budget)


def levels(alert: Alert) -> list[Decimal]:
    """The alert's thresholds as absolute values, ascending."""
    budget = budget_of(alert)
    return [resolve(term, budget) for term in alert.thresholds]


def crossed(alert: Alert, observed: Decimal) -> list[Decimal]:
    """Every threshold at or below ``observed``: the listed ones, then the recurring steps
    after the last (at most ``MAX_STEPS`` of those)."""
    values = levels(alert)
    hit = [value for value in values if value <= observed]
    if alert.recurring and values:
        step = resolve(alert.recurring, budget_of(alert))
        if step > 0:
            last = values[-1]
            count = min(int((observed - last) // step), MAX_STEPS) if observed > last else 0
            hit += [last + step * n for n in range(1, count + 1)]
    return hit


def cap_key(cap: Decimal) -> str:
    """A cap reached, as its firing is keyed: a raised cap reached fires again."""
    return f"{CAP}{key(cap)}"


def key(value: Decimal) -> str:
    """A threshold as its firing row keeps it: ``Decimal("3200.0")`` is ``"3200"``."""
    text = f"{value.normalize():f}"
    return text[:40]


# -- what is watched ----------------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    """An alert's watched value now, with the period it belongs to.

    Attributes:
        value: Minor units of ``currency`` (bill, forecast), or the metric's quantity.
        subscription_id: The subscription the period (and the email's link) is taken from.
        as_of: The newest usage in the period (None: no usage yet).
    """

    value: Decimal
    currency: str
    period_start: datetime
    period_end: datetime
    subscription_id: str
    as_of: datetime | None


def _period(subscription: Subscription) -> tuple[datetime, datetime] | None:
    start, end = subscription.current_period_start, subscription.current_period_end
    if start is None or end is None:
        return None
    return start.astimezone(UTC), end.astimezone(UTC)


def _plan(subscription: Subscription, start: datetime, end: datetime) -> list[DraftLine]:
    # A trial bills no plan for its period: only its usage counts.
    if subscription.status == "trialing":
        return []
    return plan_lines(subscription, start=start, end=end)


def bill_so_far(session: Session, subscription: Subscription) -> int:
    """The current period's bill so far: tax excluded, discounts included."""
    period = _period(subscription)
    if period is None:
        return 0
    start, end = period
    charges = _plan(subscription, start, end)
    charges += usage_lines(session, subscription, start=start, end=end)
    return _untaxed(session, subscription, charges)


def forecast_bill(session: Session, subscription: Subscription, as_of: datetime | None) -> int:
    """The bill the period is on course for: its usage run on to the period's end."""
    period = _period(subscription)
    if period is None:
        return 0
    start, end = period
    used = usage_lines(session, subscription, start=start, end=end)
    if as_of is not None and start < as_of < end:
        factor = Fraction((end - start) // _MICRO, (as_of - start) // _MICRO)
        used = [_projected(subscription, line, factor) for line in used]
    return _untaxed(session, subscription, _plan(subscription, start, end) + used)


def _projected(subscription: Subscription, line: DraftLine, factor: Fraction) -> DraftLine:
    price = next(
        (item.price for item in subscription.items if item.price.id == line.details["price_id"]),
        None,
    )
    if price is None or price.metric is None or price.metric.aggregation not in _PROJECTED:
        return line
    quantity = Decimal(line.usage_quantity or "0") * factor.numerator / factor.denominator
    rated = rating.rate(price=rating_price(price), quantity=quantity, currency=price.currency)
    return replace(line, amount=rated.amount, usage_quantity=f"{quantity.normalize():f}")


def _untaxed(session: Session, subscription: Subscription, charges: list[DraftLine]) -> int:
    totals = compose(session, subscription, charges).totals
    return totals.subtotal - totals.discount_total


def usage_of(session: Session, subscription: Subscription, metric: BillableMetric) -> Decimal:
    period = _period(subscription)
    if period is None:
        return Decimal(0)
    return usage_sql.aggregate(
        session, subscription_id=subscription.id, metric=metric, start=period[0], end=period[1]
    )


def _meters(subscription: Subscription, metric_id: str | None) -> bool:
    return any(item.price.metric_id == metric_id for item in subscription.items)


def watched(session: Session, alert: Alert, group: Sequence[Subscription]) -> Watched | None:
    """The alert's value over ``group`` (its subscription, or its customer's), or None
    when none of them has an open period it applies to."""
    if alert.watches == "usage":
        members = [s for s in group if _meters(s, alert.metric_id) and _period(s)]
    else:
        members = [s for s in group if s.price.currency == alert.currency and _period(s)]
    if not members:
        return None
    newest = max(members, key=lambda s: (_period(s) or (s.created_at, s.created_at))[0])
    start, end = _period(newest) or (newest.created_at, newest.created_at)
    total = Decimal(0)
    latest: datetime | None = None
    for subscription in members:
        period = _period(subscription)
        assert period is not None
        as_of = alert_sql.latest_usage_at(session, subscription.id, *period)
        if as_of is not None:
            as_of = as_of.astimezone(UTC)
            latest = as_of if latest is None else max(latest, as_of)
        if alert.watches == "bill":
            total += bill_so_far(session, subscription)
        elif alert.watches == "forecast":
            total += forecast_bill(session, subscription, as_of)
        else:
            metric = session.get(BillableMetric, alert.metric_id)
            assert metric is not None
            total += usage_of(session, subscription, metric)
    return Watched(total, newest.price.currency, start, end, newest.id, latest)


def group_of(session: Session, alert: Alert) -> list[Subscription]:
    """The subscriptions an alert adds up."""
    if alert.subscription_id is not None:
        subscription = session.get(Subscription, alert.subscription_id)
        return [] if subscription is None or subscription.status == "canceled" else [subscription]
    return alert_sql.customer_subscriptions(session, alert.customer_id)


# -- hard caps, inside the ingestion's transaction ----------------------------------------


@dataclass(frozen=True)
class CapCheck:
    """What the caps decided for a batch: the refused events (index to reason) and the
    alerts whose cap refused something (their ``usage.cap_reached`` is due)."""

    refused: dict[int, str]
    capped_alerts: frozenset[str]


def check_caps(session: Session, rows: Sequence[tuple[int, dict[str, Any]]]) -> CapCheck:
    """Refuse the events (``(index, row to insert)``, in the batch's order) that would
    take a capped metric past its cap in the period; the others count toward it."""
    caps: dict[tuple[str, str], Alert] = {}
    for alert in alert_sql.capped(session, {row["subscription_id"] for _, row in rows}):
        assert alert.subscription_id is not None and alert.metric_id is not None
        pair = (alert.subscription_id, alert.metric_id)
        held = caps.get(pair)
        if held is None or Decimal(alert.hard_cap or 0) < Decimal(held.hard_cap or 0):
            caps[pair] = alert  # the lowest cap on a metric is the one that binds
    affected = [(i, row) for i, row in rows if (row["subscription_id"], row["metric_id"]) in caps]
    if not affected:
        return CapCheck({}, frozenset())
    for subscription_id in sorted({row["subscription_id"] for _, row in affected}):
        alert_sql.lock_caps(session, subscription_id)
    stored = usage_sql.stored_event_ids(
        session, {(row["customer_id"], row["event_id"]) for _, row in affected}
    )
    totals: dict[tuple[str, str], Decimal] = {}
    refused: dict[int, str] = {}
    capped: set[str] = set()
    for index, row in affected:
        if (row["customer_id"], row["event_id"]) in stored:
            continue  # a duplicate: counted once already, answered as such
        pair = (row["subscription_id"], row["metric_id"])
        alert = caps[pair]
        metric = session.get(BillableMetric, row["metric_id"])
        subscription = session.get(Subscription, row["subscription_id"])
        assert metric is not None and subscription is not None
        if pair not in totals:
            totals[pair] = usage_of(session, subscription, metric)
        cap = Decimal(alert.hard_cap or 0)
        after = _added(metric.aggregation, totals[pair], row["value"])
        if after > cap:
            refused[index] = (
                f"the usage cap of {key(cap)} {metric.code} for this period is reached: this "
                f"event would bring it to {key(after)}; raise the cap to report more"
            )
            capped.add(alert.id)
            continue
        totals[pair] = after
    return CapCheck(refused, frozenset(capped))


def _added(aggregation: str, total: Decimal, scaled: int | None) -> Decimal:
    if aggregation == "count":
        return total + 1
    value = Decimal(scaled or 0).scaleb(-usage_sql.VALUE_DECIMALS)
    if aggregation == "max":
        return max(total, value)
    return total + value


# -- firing, in its own transaction after the batch's -------------------------------------


def evaluate(
    sessions: sessionmaker[Session],
    subscription_ids: Iterable[str],
    *,
    capped_alerts: Iterable[str] = (),
) -> list[int]:
    """Record every threshold the committed usage of these subscriptions crossed and
    that is not recorded yet (with its ledger entry); returns the new firings' ids."""
    ids = set(subscription_ids)
    if not ids:
        return []
    capped = set(capped_alerts)
    with sessions() as session:
        customers = {s.customer_id for s in alert_sql.subscriptions(session, ids)}
        alerts = alert_sql.watching(session, subscription_ids=ids, customer_ids=customers)
        if not alerts:
            return []
        fired: list[int] = []
        for alert in alerts:
            seen = watched(session, alert, group_of(session, alert))
            if seen is None:
                continue
            for level in crossed(alert, seen.value):
                firing = _fire(session, alert, seen, key(level), EntryKind.ALERT_TRIGGERED)
                if firing is not None:
                    fired.append(firing)
            cap = None if alert.hard_cap is None else Decimal(alert.hard_cap)
            if cap is not None and (seen.value >= cap or alert.id in capped):
                _fire(session, alert, seen, cap_key(cap), EntryKind.USAGE_CAP_REACHED)
        session.commit()
        return fired


def _fire(
    session: Session, alert: Alert, seen: Watched, threshold: str, kind: EntryKind
) -> int | None:
    """Insert the firing unless it exists; the ledger entry goes with the insert."""
    at = seen.as_of or utcnow()
    firing_id = alert_sql.insert_firing(
        session,
        alert_id=alert.id,
        customer_id=alert.customer_id,
        subscription_id=seen.subscription_id,
        period_start=seen.period_start,
        period_end=seen.period_end,
        threshold=threshold,
        observed=key(seen.value),
        fired_at=at,
        details={"watches": alert.watches},
    )
    if firing_id is None:
        return None
    details = {
        "alert_id": alert.id,
        "watches": alert.watches,
        "threshold": threshold.removeprefix(CAP),
        "observed": key(seen.value),
        "period_start": seen.period_start.isoformat(),
        "period_end": seen.period_end.isoformat(),
    }
    if alert.budget is not None:
        details["budget"] = alert.budget
    if alert.metric_id is not None:
        details["metric_id"] = alert.metric_id
    ledger_service.record_notice(
        session,
        kind,
        f"{kind}:{alert.id}:{seen.period_start.isoformat()}:{threshold}",
        occurred_at=at,
        customer_id=alert.customer_id,
        subscription_id=seen.subscription_id,
        currency=seen.currency,
        amount=int(seen.value) if alert.watches in MONEY_WATCHES else 0,
        details=details,
    )
    return firing_id if kind is EntryKind.ALERT_TRIGGERED else None
