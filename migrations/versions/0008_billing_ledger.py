"""the billing ledger: one append-only row per change that moves money or MRR

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:00:00
"""

from alembic import op
import sqlalchemy as sa


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


def downgrade() -> None:
    op.drop_index(op.f('ix_billing_ledger_customer_id'), table_name='billing_ledger')
    op.drop_index('ix_billing_ledger_subscription_id_id', table_name='billing_ledger')
    op.drop_index('ix_billing_ledger_currency_occurred_at', table_name='billing_ledger')
    op.drop_table('billing_ledger')
