"""the billing ledger: one append-only row per change that moves money or MRR

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:00:00

Existing data is back-filled with the entries the pipeline would have written, under
the same event keys (so a change retried after the upgrade adds nothing), each
recorded when it occurred (recorded_at = occurred_at): a back-fill reproduces history,
it is not news. Invoices, payments and credit notes are copied in set-based SQL (the
bulk of the rows); subscriptions go through Python, because their MRR is the rule of
kakin.services.ledger (plan, items, forever coupons, status) and must be the same
number the live pipeline writes. What the tables no longer say is approximated: a
subscription starts at its anchor (else its creation) on its current plan, and a
status other than active or trialing is reached at the last audit row that reached it
(canceled: canceled_at; else the row's last update).
"""

from collections import defaultdict
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa

# The MRR rule itself (not a copy): the back-filled MRR must equal what the pipeline
# computes. It reads only the columns it is given (its Protocols), never the ORM.
from kakin.services.ledger import mrr_from, status_key, status_kind


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'billing_ledger',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('event_key', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('customer_id', sa.String(length=40), nullable=False),
        sa.Column('subscription_id', sa.String(length=40), nullable=False),
        sa.Column('invoice_id', sa.String(length=40), nullable=False),
        sa.Column('currency', sa.String(length=10), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('mrr_before', sa.BigInteger(), nullable=False),
        sa.Column('mrr_after', sa.BigInteger(), nullable=False),
        sa.Column('status_before', sa.String(length=20), nullable=False),
        sa.Column('status_after', sa.String(length=20), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('decline_code', sa.String(length=64), nullable=False),
        sa.Column('dunning_step', sa.String(length=40), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('corrects', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_ledger')),
        sa.UniqueConstraint('event_key', name=op.f('uq_billing_ledger_event_key')),
    )
    op.create_index('ix_billing_ledger_currency_occurred_at', 'billing_ledger', ['currency', 'occurred_at'])
    op.create_index('ix_billing_ledger_subscription_id_id', 'billing_ledger', ['subscription_id', 'id'])
    op.create_index(op.f('ix_billing_ledger_customer_id'), 'billing_ledger', ['customer_id'])
    bind = op.get_bind()
    _backfill_subscriptions(bind)
    for statement in _money_statements(bind.dialect.name):
        bind.execute(sa.text(statement))


_LEDGER = sa.table(
    'billing_ledger',
    *(sa.column(name, sa.String()) for name in (
        'event_key', 'kind', 'customer_id', 'subscription_id', 'invoice_id', 'currency',
        'status_before', 'status_after', 'actor', 'decline_code', 'dunning_step',
    )),
    *(sa.column(name, sa.BigInteger()) for name in (
        'amount', 'mrr_before', 'mrr_after', 'attempt', 'corrects',
    )),
    sa.column('occurred_at', sa.DateTime(timezone=True)),
    sa.column('recorded_at', sa.DateTime(timezone=True)),
    sa.column('due_at', sa.DateTime(timezone=True)),
    sa.column('details', sa.JSON()),
)
_SUBSCRIPTIONS = sa.table(
    'subscriptions',
    *(sa.column(name) for name in ('id', 'customer_id', 'price_id', 'quantity', 'status',
                                   'cancel_reason')),
    *(sa.column(name, sa.DateTime(timezone=True)) for name in (
        'billing_cycle_anchor', 'created_at', 'canceled_at', 'updated_at',
    )),
)
_PRICES = sa.table(
    'prices',
    *(sa.column(name) for name in (
        'id', 'currency', 'unit_amount', 'unit_amount_decimal', 'pricing_model',
        'package_size', 'metric_id', 'interval', 'interval_count',
    )),
    sa.column('tiers', sa.JSON()),
)
_ITEMS = sa.table('subscription_items', *(sa.column(name) for name in (
    'subscription_id', 'price_id', 'quantity', 'created_at',
)))
_DISCOUNTS = sa.table('subscription_discounts', *(sa.column(name) for name in (
    'subscription_id', 'coupon_id', 'redeemed_at',
)))
_COUPONS = sa.table('coupons', *(sa.column(name) for name in (
    'id', 'code', 'duration', 'percent_off', 'amount_off', 'currency', 'duration_periods',
)))
_AUDIT = sa.table(
    'audit_log',
    *(sa.column(name) for name in ('entity_type', 'entity_id', 'to_status')),
    sa.column('occurred_at', sa.DateTime(timezone=True)),
)
_BATCH = 5000


def _utc(moment: datetime) -> datetime:
    # SQLite gives naive UTC back; PostgreSQL aware, in the session's zone.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _backfill_subscriptions(bind: sa.engine.Connection) -> None:
    """A started entry per subscription, and one for its status if it is not running."""
    prices = {row.id: row for row in bind.execute(sa.select(_PRICES))}
    items = defaultdict(list)
    for row in bind.execute(sa.select(_ITEMS).order_by(_ITEMS.c.created_at)):
        items[row.subscription_id].append((prices[row.price_id], row.quantity))
    coupons = {row.id: row for row in bind.execute(sa.select(_COUPONS))}
    redeemed = defaultdict(list)
    for row in bind.execute(sa.select(_DISCOUNTS).order_by(_DISCOUNTS.c.redeemed_at)):
        redeemed[row.subscription_id].append(coupons[row.coupon_id])
    reached = {
        (row.entity_id, row.to_status): row.at
        for row in bind.execute(
            sa.select(_AUDIT.c.entity_id, _AUDIT.c.to_status,
                      sa.func.max(_AUDIT.c.occurred_at).label('at'))
            .where(_AUDIT.c.entity_type == 'subscription',
                   _AUDIT.c.to_status.in_(('past_due', 'suspended', 'paused')))
            .group_by(_AUDIT.c.entity_id, _AUDIT.c.to_status)
        )
    }
    rows = []
    query = sa.select(_SUBSCRIPTIONS).order_by(_SUBSCRIPTIONS.c.created_at, _SUBSCRIPTIONS.c.id)
    for sub in bind.execute(query):
        rows.extend(_subscription_entries(sub, prices[sub.price_id], items[sub.id],
                                          redeemed[sub.id], reached))
        if len(rows) >= _BATCH:
            bind.execute(_LEDGER.insert(), rows)
            rows = []
    if rows:
        bind.execute(_LEDGER.insert(), rows)


def _subscription_entries(sub, plan, items, coupons, reached) -> list[dict]:
    started = sub.status if sub.status == 'trialing' else 'active'
    at = _utc(sub.billing_cycle_anchor or sub.created_at)

    def mrr(status: str) -> int:
        return mrr_from(status=status, plan=plan, quantity=sub.quantity, items=items,
                        coupons=coupons)

    def entry(key: str, kind: str, moment: datetime, before: int, after: int,
              status_before: str, status_after: str, details: dict) -> dict:
        return {
            'event_key': key, 'kind': kind, 'occurred_at': moment, 'recorded_at': moment,
            'customer_id': sub.customer_id, 'subscription_id': sub.id, 'invoice_id': '',
            'currency': plan.currency, 'amount': 0, 'mrr_before': before, 'mrr_after': after,
            'status_before': status_before, 'status_after': status_after, 'actor': 'system',
            'attempt': 0, 'decline_code': '', 'dunning_step': '', 'due_at': None,
            'details': details, 'corrects': 0,
        }

    first = mrr(started)
    entries = [entry(f'subscription.started:{sub.id}', 'subscription.started', at, 0, first,
                     '', started, {'price_id': plan.id, 'quantity': str(sub.quantity)})]
    if sub.status in ('active', 'trialing'):
        return entries
    if sub.status == 'canceled':
        moment = sub.canceled_at
    else:
        moment = reached.get((sub.id, sub.status)) or sub.updated_at
    moment = max(at, _utc(moment or at))
    kind = status_kind(started, sub.status)
    details = {'reason': sub.cancel_reason} if sub.status == 'canceled' and sub.cancel_reason else {}
    entries.append(entry(status_key(kind, sub.id, sub.status, moment), str(kind), moment,
                         first, mrr(sub.status), started, sub.status, details))
    return entries


def _money_statements(dialect: str) -> list[str]:
    """INSERT ... SELECT for invoices, payments and credit notes (the pipeline's keys)."""
    obj = 'json_build_object' if dialect == 'postgresql' else 'json_object'
    columns = (
        'event_key, kind, occurred_at, recorded_at, customer_id, subscription_id, invoice_id,'
        ' currency, amount, mrr_before, mrr_after, status_before, status_after, actor,'
        ' attempt, decline_code, dunning_step, due_at, details, corrects'
    )
    step = (
        "CASE WHEN {a} = 0 THEN 'external' WHEN {a} = 1 THEN ''"
        " ELSE 'retry_' || CAST({a} - 1 AS TEXT) END"
    )
    return [
        # invoice.finalized: the total, due when finalized, its metered part.
        f"INSERT INTO billing_ledger ({columns})"
        " SELECT 'invoice.finalized:' || i.id, 'invoice.finalized', i.finalized_at,"
        " i.finalized_at, i.customer_id, i.subscription_id, i.id, i.currency, i.total, 0, 0,"
        " 'draft', 'open', 'workflow', 0, '', '', i.finalized_at,"
        f" {obj}('number', COALESCE(i.number, ''),"
        " 'usage_amount', CAST(COALESCE(u.amount, 0) AS TEXT),"
        " 'amount_due', CAST(i.total - i.credit_applied - i.carried_forward AS TEXT),"
        " 'credit_applied', CAST(i.credit_applied AS TEXT),"
        " 'carried_forward', CAST(i.carried_forward AS TEXT)), 0"
        " FROM invoices i LEFT JOIN (SELECT invoice_id, SUM(amount) AS amount"
        " FROM invoice_lines WHERE kind = 'usage' GROUP BY invoice_id) u"
        " ON u.invoice_id = i.id WHERE i.finalized_at IS NOT NULL",
        # payment.failed / payment.succeeded: every settled attempt, when attempted.
        f"INSERT INTO billing_ledger ({columns})"
        " SELECT CASE p.status WHEN 'succeeded' THEN 'payment.succeeded:'"
        " ELSE 'payment.failed:' END || p.business_key,"
        " CASE p.status WHEN 'succeeded' THEN 'payment.succeeded' ELSE 'payment.failed' END,"
        " p.attempted_at, p.attempted_at, i.customer_id, i.subscription_id, i.id,"
        " p.currency, p.amount, 0, 0, '', '', 'workflow', p.attempt,"
        f" COALESCE(p.decline_code, ''), {step.format(a='p.attempt')}, NULL,"
        f" CASE p.status WHEN 'succeeded' THEN {obj}('payment_intent',"
        " COALESCE(p.stripe_payment_intent_id, ''))"
        f" ELSE {obj}('message', COALESCE(p.failure_message, '')) END, 0"
        " FROM payment_attempts p JOIN invoices i ON i.id = p.invoice_id"
        " WHERE p.status IN ('succeeded', 'declined')",
        # invoice.paid: the cash it took, at the attempt that paid it.
        f"INSERT INTO billing_ledger ({columns})"
        " SELECT 'invoice.paid:' || i.id, 'invoice.paid',"
        " COALESCE(i.paid_at, i.finalized_at, i.issued_at),"
        " COALESCE(i.paid_at, i.finalized_at, i.issued_at), i.customer_id,"
        " i.subscription_id, i.id, i.currency, i.amount_paid, 0, 0, 'open', 'paid',"
        f" 'workflow', COALESCE(p.attempt, 0), '', {step.format(a='COALESCE(p.attempt, 0)')},"
        f" NULL, {obj}(), 0"
        " FROM invoices i LEFT JOIN (SELECT invoice_id, MAX(attempt) AS attempt"
        " FROM payment_attempts WHERE status = 'succeeded' GROUP BY invoice_id) p"
        " ON p.invoice_id = i.id WHERE i.status = 'paid'",
        # invoice.voided / invoice.written_off: what was left unpaid, when marked.
        f"INSERT INTO billing_ledger ({columns})"
        " SELECT CASE i.status WHEN 'void' THEN 'invoice.voided:'"
        " ELSE 'invoice.written_off:' END || i.id,"
        " CASE i.status WHEN 'void' THEN 'invoice.voided' ELSE 'invoice.written_off' END,"
        " COALESCE(a.at, i.finalized_at, i.issued_at),"
        " COALESCE(a.at, i.finalized_at, i.issued_at), i.customer_id, i.subscription_id,"
        " i.id, i.currency, i.total - i.credit_applied - i.carried_forward - i.amount_paid,"
        f" 0, 0, 'open', i.status, 'workflow', 0, '', '', NULL, {obj}(), 0"
        " FROM invoices i LEFT JOIN (SELECT entity_id, action, MAX(occurred_at) AS at"
        " FROM audit_log WHERE entity_type = 'invoice'"
        " AND action IN ('marked_void', 'marked_uncollectible') GROUP BY entity_id, action) a"
        " ON a.entity_id = i.id AND a.action = 'marked_' || i.status"
        " WHERE i.status IN ('void', 'uncollectible')",
        # credit_note.issued, and refund.created for the refunded ones.
        *(
            f"INSERT INTO billing_ledger ({columns})"
            f" SELECT '{kind}:' || n.id, '{kind}', n.created_at, n.created_at,"
            " n.customer_id, i.subscription_id, i.id, n.currency, n.amount, 0, 0, '', '',"
            f" n.actor, 0, '', '', NULL, {details}, 0"
            f" FROM credit_notes n JOIN invoices i ON i.id = n.invoice_id{where}"
            for kind, details, where in (
                ('credit_note.issued',
                 f"{obj}('credit_note', n.number, 'method', n.method, 'reason', n.reason,"
                 " 'tax_amount', CAST(n.tax_amount AS TEXT))", ''),
                ('refund.created',
                 f"{obj}('credit_note', n.number, 'refund', COALESCE(n.stripe_refund_id, ''))",
                 " WHERE n.status = 'refunded'"),
            )
        ),
    ]


def downgrade() -> None:
    op.drop_index(op.f('ix_billing_ledger_customer_id'), table_name='billing_ledger')
    op.drop_index('ix_billing_ledger_subscription_id_id', table_name='billing_ledger')
    op.drop_index('ix_billing_ledger_currency_occurred_at', table_name='billing_ledger')
    op.drop_table('billing_ledger')
