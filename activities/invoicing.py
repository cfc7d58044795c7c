"""Invoicing activities: a period's invoice drafted, numbered and opened; a plan change
and its proration; the invoice's HTML; an invoice or subscription change recorded.

Each activity is safe to run more than once. Its business key (``invoice:...``,
``proration:...``) is unique in the database, so a retry finds the row its first try
wrote and finishes that work instead of doing it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jinja2
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from billing.money import format_amount
from billing.proration import prorate
from billing.rounding import RoundingMode
from billing.stripe_rules import charge_step, settle
from kakin import contracts
from kakin.platform import metrics
from kakin.services import ledger
from kakin.services.invoice_documents import Seller, invoice_html
from kakin.services.invoice_drafts import (
    Draft,
    closing_period,
    final_draft,
    line_rows,
    period_draft,
)
from kakin.services.invoices import apply_invoice_change
from kakin.services.subscriptions import apply_subscription_change
from models.payloads import (
    CreateInvoiceRequest,
    FinalInvoiceRequest,
    FinalizeInvoiceRequest,
    InvoiceChange,
    InvoiceRef,
    InvoiceStatus,
    PlanChange,
    RenderInvoiceRequest,
    SubscriptionChange,
)
from models.repositories import audit as audit_sql
from models.repositories import catalog as catalog_sql
from models.repositories import invoices as invoice_sql
from models.repositories import subscriptions as subscription_sql
from models.repositories import usage as usage_sql
from models.repositories.common import new_id
from models.tables import (
    CreditTransaction,
    Invoice,
    InvoiceLine,
    Price,
    Subscription,
)


class InvoicingActivities:
    """Invoice and subscription-record activities, with their dependencies injected."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        templates: jinja2.Environment,
        seller: Seller,
    ) -> None:
        self._sessions = session_factory
        self._templates = templates
        self._seller = seller

    @activity.defn(name=contracts.ACTIVITY_CREATE_INVOICE)
    def create_invoice(self, request: CreateInvoiceRequest) -> InvoiceRef:
        """Create the draft invoice for one period (once per period, whatever retries).

        It bills the plan for the new period and the usage of the period it closes.
        The subscription row is locked first: usage ingestion holds it shared, so an
        event is either in this invoice or refused as late, never lost in between.
        """
        key = _period_key(request)
        with self._sessions() as session:
            existing = invoice_sql.invoice_by_key(session, key)
            if existing is not None:
                return _ref(existing)
            subscription, draft = self._draft_period(session, request)
            invoice = self._store_period(session, key, subscription, draft, request)
            ref = _commit_once(session, key, invoice)
            if ref.invoice_id == invoice.id:  # ours committed, not a concurrent try's
                metrics.renewal_started()
            return ref

    @activity.defn(name=contracts.ACTIVITY_CREATE_FINAL_INVOICE)
    def create_final_invoice(self, request: FinalInvoiceRequest) -> InvoiceRef | None:
        """The usage of an ended subscription's last period, billed in arrears.

        None when there is nothing to bill (no metered prices, or no usage cost). The
        subscription is canceled already, so ingestion refuses new events; every event
        it accepted in the open period is on this invoice.
        """
        key = _period_key(request)
        with self._sessions() as session:
            existing = invoice_sql.invoice_by_key(session, key)
            if existing is not None:
                return _ref(existing)
            subscription = usage_sql.lock_subscription(session, request.subscription_id)
            draft = final_draft(
                session, subscription, rounding=RoundingMode(self._seller.tax_rounding)
            )
            if draft is None:
                return None
            start, end = subscription.current_period_start, subscription.current_period_end
            assert start is not None and end is not None  # final_draft needs a period
            invoice = self._store_draft(
                session, key, subscription, draft,
                period_start=start, period_end=end, issued_at=request.ended_at,
            )  # fmt: skip
            return _commit_once(session, key, invoice)

    def _draft_period(
        self, session: Session, request: CreateInvoiceRequest
    ) -> tuple[Subscription, Draft]:
        """The period's draft, on the subscription locked first (see create_invoice)."""
        subscription = usage_sql.lock_subscription(session, request.subscription_id)
        ledger.record_coupons_expired(session, subscription, occurred_at=request.issued_at)
        draft = period_draft(
            session,
            subscription,
            period_start=request.period_start,
            period_end=request.period_end,
            usage_period=closing_period(subscription, request.period_start),
            rounding=RoundingMode(self._seller.tax_rounding),
        )
        return subscription, draft

    def _store_period(
        self,
        session: Session,
        key: str,
        subscription: Subscription,
        draft: Draft,
        request: CreateInvoiceRequest,
    ) -> Invoice:
        """The period's draft added as its invoice; the subscription's current period is
        the one just invoiced."""
        invoice = self._store_draft(
            session,
            key,
            subscription,
            draft,
            period_start=request.period_start,
            period_end=request.period_end,
            issued_at=request.issued_at,
        )
        subscription.current_period_start = request.period_start
        subscription.current_period_end = request.period_end
        return invoice

    def _store_draft(
        self,
        session: Session,
        key: str,
        subscription: Subscription,
        draft: Draft,
        *,
        period_start: datetime,
        period_end: datetime,
        issued_at: datetime,
    ) -> Invoice:
        """Add the draft as an invoice (and the credit it spends) to the session."""
        invoice = _new_draft(
            key,
            subscription,
            currency=draft.currency,
            subtotal=draft.totals.subtotal,
            discount_total=draft.totals.discount_total,
            tax_total=draft.totals.exclusive_tax + draft.totals.inclusive_tax,
            total=draft.totals.total,
            credit_applied=draft.totals.credit_applied,
            carried_forward=draft.carried_forward,
            tax_breakdown=draft.tax_breakdown,
            period_start=period_start,
            period_end=period_end,
            issued_at=issued_at,
            lines=line_rows(draft),
        )
        session.add(invoice)
        if invoice.credit_applied:
            # Spent in the same transaction as the invoice: credit is used once (and a
            # debit, a negative credit_applied, is collected once).
            _take_from_balance(session, f"applied:{key}", invoice, invoice.credit_applied)
        _carry_forward(session, key, invoice)
        return invoice

    @activity.defn(name=contracts.ACTIVITY_FINALIZE_INVOICE)
    def finalize_invoice(self, request: FinalizeInvoiceRequest) -> InvoiceRef:
        """Number the invoice and open it. Numbers are gapless and never reused."""
        with self._sessions() as session:
            # Locked, so a retry racing a slow first try waits and then sees its number.
            invoice = invoice_sql.invoice_for_update(session, request.invoice_id)
            if invoice.number is None:
                number = invoice_sql.take_invoice_number(session, request.finalized_at)
                self._open(session, invoice, number, request.finalized_at)
                # Number, status and audit commit together: a rollback frees the number.
                session.commit()
                metrics.invoice_finalized(invoice.currency)
            return _ref(invoice)

    @activity.defn(name=contracts.ACTIVITY_ISSUE_INVOICE)
    def issue_invoice(self, request: CreateInvoiceRequest) -> InvoiceRef:
        """Create a period's invoice and finalize it, in one activity.

        Two steps, each safe to repeat, under one activity: a renewal costs one
        Temporal action less (billed per action on Temporal Cloud). The first try
        creates, numbers and opens the invoice in one transaction (one session, one
        commit); a retry that finds the invoice finishes it as finalize_invoice does.
        """
        key = _period_key(request)
        with self._sessions() as session:
            existing = invoice_sql.invoice_by_key(session, key)
            if existing is not None:
                ref = _ref(existing)
            else:
                # Number, invoice and audit commit together: gapless. When a concurrent
                # try won, the rollback gives the number taken back.
                issued = self._issue_new(session, key, request)
                ref = _commit_once(session, key, issued)
                if ref.invoice_id == issued.id:  # ours committed, not a concurrent try's
                    metrics.renewal_started()
                    metrics.invoice_finalized(issued.currency)
        if ref.number is not None:
            return ref
        return self.finalize_invoice(
            FinalizeInvoiceRequest(invoice_id=ref.invoice_id, finalized_at=request.issued_at)
        )

    def _open(self, session: Session, invoice: Invoice, number: str, at: datetime) -> None:
        """A draft becomes an open invoice under ``number`` (uncommitted), with its audit row."""
        invoice.number = number
        invoice.registration_number = self._seller.registration_number
        invoice.status = InvoiceStatus.OPEN
        invoice.finalized_at = at
        audit_sql.audit(
            session,
            entity_type="invoice",
            entity_id=invoice.id,
            action="finalized",
            from_status=InvoiceStatus.DRAFT,
            to_status=InvoiceStatus.OPEN,
            actor="workflow",
            occurred_at=at,
            details={"number": invoice.number, "total": invoice.total},
        )
        ledger.record_finalized(session, invoice, occurred_at=at, actor="workflow")

    def _issue_new(self, session: Session, key: str, request: CreateInvoiceRequest) -> Invoice:
        """create_invoice then finalize_invoice's changes, unflushed, for issue_invoice."""
        subscription, draft = self._draft_period(session, request)
        # Taken before the invoice is added (no autoflush of a numberless row), locked
        # until the commit: numbers go out in commit order.
        number = invoice_sql.take_invoice_number(session, request.issued_at)
        invoice = self._store_period(session, key, subscription, draft, request)
        self._open(session, invoice, number, request.issued_at)
        return invoice

    @activity.defn(name=contracts.ACTIVITY_RENDER_INVOICE)
    def render_invoice(self, request: RenderInvoiceRequest) -> None:
        """Render the invoice's HTML (Jinja2) and keep it with the invoice."""
        with self._sessions() as session:
            invoice = invoice_sql.invoice(session, request.invoice_id)
            invoice.html = invoice_html(invoice, self._seller, self._templates)
            session.commit()

    @activity.defn(name=contracts.ACTIVITY_CHANGE_PLAN)
    def change_plan(self, change: PlanChange) -> InvoiceRef | None:
        """Switch the price; for a change now, a draft invoice of the prorated difference.

        The price switch and the proration invoice commit together under one business
        key, so a retry finds the invoice (or, with nothing to charge, finds the price
        already switched and prorates nothing).
        """
        key = f"proration:{change.subscription_id}:{change.period_index}:{change.price_id}"
        with self._sessions() as session:
            existing = invoice_sql.invoice_by_key(session, key)
            if existing is not None:
                return _ref(existing)
            subscription = subscription_sql.subscription(session, change.subscription_id)
            old, new = subscription.price, catalog_sql.price(session, change.price_id)
            if old.id == new.id:
                return None
            subscription.price_id = new.id
            audit_sql.audit(
                session,
                entity_type="subscription",
                entity_id=subscription.id,
                action="plan_changed",
                actor=change.actor,
                reason=change.reason,
                occurred_at=change.occurred_at,
                details={"from_price": old.id, "to_price": new.id},
            )
            ledger.record_plan_change(
                session, subscription, old, new,
                occurred_at=change.occurred_at, actor=change.actor, reason=change.reason,
            )  # fmt: skip
            invoice = None
            if change.prorate_from is not None:
                assert change.period_start is not None and change.period_end is not None
                invoice = self._proration_invoice(
                    key, subscription, old, new, change.prorate_from,
                    change.period_start, change.period_end,
                )  # fmt: skip
                if invoice is not None:
                    session.add(invoice)
                    _carry_forward(session, key, invoice)
            session.commit()
            return _ref(invoice) if invoice is not None else None

    def _proration_invoice(
        self,
        key: str,
        subscription: Subscription,
        old: Price,
        new: Price,
        at: datetime,
        period_start: datetime,
        period_end: datetime,
    ) -> Invoice | None:
        quantity = subscription.quantity
        result = prorate(
            old_amount=old.unit_amount * quantity,
            new_amount=new.unit_amount * quantity,
            period_start=period_start,
            period_end=period_end,
            at=at,
        )
        if result.net <= 0:
            return None  # nothing owed now (customer credit comes with credit notes)
        lines = [
            (f"Unused time on {old.nickname or old.product.name}", -result.credit, "proration"),
            (f"Remaining time on {new.nickname or new.product.name}", result.charge, "proration"),
        ]
        # Charged at once, so Stripe's rules apply as to a period's invoice.
        settled = settle(result.net, new.currency)
        if settled.rounding:
            step = format_amount(charge_step(new.currency), new.currency)
            lines.append(
                (f"Rounding (Stripe charges {new.currency} in steps of {step})",
                 settled.rounding, "rounding")
            )  # fmt: skip
        return _new_draft(
            key,
            subscription,
            currency=new.currency,
            subtotal=result.net,
            total=result.net + settled.rounding,
            carried_forward=settled.carried_forward,
            period_start=at,
            period_end=period_end,
            issued_at=at,
            lines=[
                InvoiceLine(
                    position=position,
                    description=description,
                    kind=kind,
                    unit_amount=amount,
                    quantity=1,
                    amount=amount,
                    period_start=at,
                    period_end=period_end,
                )
                for position, (description, amount, kind) in enumerate(lines)
            ],
        )

    @activity.defn(name=contracts.ACTIVITY_RECORD_INVOICE_CHANGE)
    def record_invoice_change(self, change: InvoiceChange) -> None:
        with self._sessions() as session:
            apply_invoice_change(session, change)
            session.commit()

    @activity.defn(name=contracts.ACTIVITY_RECORD_SUBSCRIPTION_CHANGE)
    def record_subscription_change(self, change: SubscriptionChange) -> None:
        """Write a status change to the subscription row and the audit log (once)."""
        with self._sessions() as session:
            apply_subscription_change(session, change)
            session.commit()

    def activities(self) -> list[Any]:
        """Every activity method, for ``Worker(activities=...)``."""
        return [
            self.create_invoice,
            self.create_final_invoice,
            self.issue_invoice,
            self.finalize_invoice,
            self.render_invoice,
            self.record_invoice_change,
            self.change_plan,
            self.record_subscription_change,
        ]


def _ref(invoice: Invoice) -> InvoiceRef:
    return InvoiceRef(
        invoice_id=invoice.id,
        number=invoice.number,
        status=InvoiceStatus(invoice.status),
        amount_due=invoice.amount_due,
        currency=invoice.currency,
    )


def _period_key(request: CreateInvoiceRequest | FinalInvoiceRequest) -> str:
    """A period's invoice: one per subscription and period index, whatever retries."""
    return f"invoice:{request.subscription_id}:{request.period_index}"


def _commit_once(session: Session, key: str, invoice: Invoice) -> InvoiceRef:
    """Commit the new invoice under ``key``; if a concurrent try of this same activity
    committed first (the key is unique), roll back and answer with its invoice."""
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return _ref(invoice_sql.invoice_by_key(session, key, required=True))
    return _ref(invoice)


def _new_draft(key: str, subscription: Subscription, **amounts: Any) -> Invoice:
    """A draft invoice row of ``subscription`` under its business key."""
    return Invoice(
        id=new_id("in"),
        business_key=key,
        subscription_id=subscription.id,
        customer_id=subscription.customer_id,
        status=InvoiceStatus.DRAFT,
        **amounts,
    )


def _take_from_balance(session: Session, key: str, invoice: Invoice, amount: int) -> None:
    """The customer's balance moves by ``-amount`` for ``invoice``, once (``key`` is unique)."""
    session.add(
        CreditTransaction(
            business_key=key,
            customer_id=invoice.customer_id,
            currency=invoice.currency,
            amount=-amount,
            invoice_id=invoice.id,
        )
    )


def _carry_forward(session: Session, key: str, invoice: Invoice) -> None:
    """An invoice below Stripe's minimum charge moves its amount due to the customer's
    balance, as a debit the next invoice collects (as Stripe does); in the invoice's
    transaction, once."""
    if invoice.carried_forward:
        _take_from_balance(session, f"carried:{key}", invoice, invoice.carried_forward)
