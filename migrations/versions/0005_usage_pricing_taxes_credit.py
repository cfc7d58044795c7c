"""usage, pricing models, coupons, taxes, credit notes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 22:54:48.896493
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('billable_metrics',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('aggregation', sa.String(length=20), nullable=False),
    sa.Column('property', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billable_metrics')),
    sa.UniqueConstraint('code', name=op.f('uq_billable_metrics_code'))
    )
    op.create_table('coupons',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('percent_off', sa.String(length=12), nullable=True),
    sa.Column('amount_off', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('duration', sa.String(length=10), nullable=False),
    sa.Column('duration_periods', sa.Integer(), nullable=True),
    sa.Column('redeem_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('max_redemptions', sa.Integer(), nullable=True),
    sa.Column('times_redeemed', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code'))
    )
    op.create_table('tax_rates',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('percentage', sa.String(length=12), nullable=False),
    sa.Column('inclusive', sa.Boolean(), nullable=False),
    sa.Column('jurisdiction', sa.String(length=100), nullable=False),
    sa.Column('reduced', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tax_rates'))
    )
    op.create_table('credit_transactions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('business_key', sa.String(length=200), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('credit_note_id', sa.String(length=40), nullable=True),
    sa.Column('invoice_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_credit_transactions_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_transactions')),
    sa.UniqueConstraint('business_key', name=op.f('uq_credit_transactions_business_key'))
    )
    op.create_index(op.f('ix_credit_transactions_customer_id'), 'credit_transactions', ['customer_id'], unique=False)
    op.create_table('subscription_discounts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('coupon_id', sa.String(length=40), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['coupon_id'], ['coupons.id'], name=op.f('fk_subscription_discounts_coupon_id_coupons')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_subscription_discounts_subscription_id_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_discounts')),
    sa.UniqueConstraint('subscription_id', 'coupon_id', name=op.f('uq_subscription_discounts_subscription_id'))
    )
    op.create_index(op.f('ix_subscription_discounts_subscription_id'), 'subscription_discounts', ['subscription_id'], unique=False)
    op.create_table('subscription_items',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('price_id', sa.String(length=40), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['price_id'], ['prices.id'], name=op.f('fk_subscription_items_price_id_prices')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_subscription_items_subscription_id_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_items')),
    sa.UniqueConstraint('subscription_id', 'price_id', name=op.f('uq_subscription_items_subscription_id'))
    )
    op.create_index(op.f('ix_subscription_items_subscription_id'), 'subscription_items', ['subscription_id'], unique=False)
    op.create_table('usage_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('metric_id', sa.String(length=40), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=True),
    sa.Column('group_key', sa.String(length=255), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_usage_events_customer_id_customers')),
    sa.ForeignKeyConstraint(['metric_id'], ['billable_metrics.id'], name=op.f('fk_usage_events_metric_id_billable_metrics')),
    sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_usage_events_subscription_id_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_events')),
    sa.UniqueConstraint('customer_id', 'event_id', name=op.f('uq_usage_events_customer_id'))
    )
    op.create_index('ix_usage_events_period', 'usage_events', ['subscription_id', 'metric_id', 'timestamp'], unique=False)
    op.create_table('credit_notes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('tax_amount', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=False),
    sa.Column('memo', sa.Text(), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('stripe_refund_id', sa.String(length=255), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('breakdown', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_credit_notes_customer_id_customers')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_credit_notes_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_notes')),
    sa.UniqueConstraint('number', name=op.f('uq_credit_notes_number'))
    )
    op.create_index(op.f('ix_credit_notes_customer_id'), 'credit_notes', ['customer_id'], unique=False)
    # Credit notes are numbered gaplessly like invoices, in a series of their own.
    op.bulk_insert(
        sa.table("invoice_number_sequences", sa.column("series"), sa.column("next_value")),
        [{"series": "credit_note", "next_value": 1}],
    )
    op.create_index(op.f('ix_credit_notes_invoice_id'), 'credit_notes', ['invoice_id'], unique=False)
    op.add_column('customers', sa.Column('tax_rate_ids', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    op.add_column('invoice_lines', sa.Column('kind', sa.String(length=20), nullable=False, server_default='subscription'))
    op.add_column('invoice_lines', sa.Column('usage_quantity', sa.String(length=60), nullable=True))
    op.add_column('invoice_lines', sa.Column('tax_rate_id', sa.String(length=40), nullable=True))
    op.add_column('invoice_lines', sa.Column('details', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    op.add_column('invoices', sa.Column('discount_total', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('invoices', sa.Column('tax_total', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('invoices', sa.Column('credit_applied', sa.BigInteger(), nullable=False, server_default='0'))
    op.add_column('invoices', sa.Column('tax_breakdown', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    op.add_column('invoices', sa.Column('registration_number', sa.String(length=20), nullable=False, server_default=''))
    # Existing rows keep their meaning through the server defaults (flat price, no
    # taxes, no details). SQLite cannot add a foreign key in place: batch mode
    # rebuilds the table there and alters it in place on PostgreSQL.
    with op.batch_alter_table('prices') as batch:
        batch.add_column(sa.Column('pricing_model', sa.String(length=20), nullable=False, server_default='flat'))
        batch.add_column(sa.Column('metric_id', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('unit_amount_decimal', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('package_size', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('tiers', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('tax_rate_ids', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch.create_foreign_key(op.f('fk_prices_metric_id_billable_metrics'), 'billable_metrics', ['metric_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('prices') as batch:
        batch.drop_constraint(op.f('fk_prices_metric_id_billable_metrics'), type_='foreignkey')
        for column in ('tax_rate_ids', 'tiers', 'package_size', 'unit_amount_decimal', 'metric_id', 'pricing_model'):
            batch.drop_column(column)
    op.drop_column('invoices', 'registration_number')
    op.drop_column('invoices', 'tax_breakdown')
    op.drop_column('invoices', 'credit_applied')
    op.drop_column('invoices', 'tax_total')
    op.drop_column('invoices', 'discount_total')
    op.drop_column('invoice_lines', 'details')
    op.drop_column('invoice_lines', 'tax_rate_id')
    op.drop_column('invoice_lines', 'usage_quantity')
    op.drop_column('invoice_lines', 'kind')
    op.drop_column('customers', 'tax_rate_ids')
    op.execute("DELETE FROM invoice_number_sequences WHERE series = 'credit_note'")
    op.drop_index(op.f('ix_credit_notes_invoice_id'), table_name='credit_notes')
    op.drop_index(op.f('ix_credit_notes_customer_id'), table_name='credit_notes')
    op.drop_table('credit_notes')
    op.drop_index('ix_usage_events_period', table_name='usage_events')
    op.drop_table('usage_events')
    op.drop_index(op.f('ix_subscription_items_subscription_id'), table_name='subscription_items')
    op.drop_table('subscription_items')
    op.drop_index(op.f('ix_subscription_discounts_subscription_id'), table_name='subscription_discounts')
    op.drop_table('subscription_discounts')
    op.drop_index(op.f('ix_credit_transactions_customer_id'), table_name='credit_transactions')
    op.drop_table('credit_transactions')
    op.drop_table('tax_rates')
    op.drop_table('coupons')
    op.drop_table('billable_metrics')
