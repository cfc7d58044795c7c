"""spend and usage alerts, their firings (once per threshold and period), hard caps

Revises: 0011
Create Date: 2026-12-02 06:30:00

Two new tables and nothing else: no alert exists until someone sets one, so there is
nothing to back-fill. The lead renumbers this migration: the revision id is written
only in ``revision`` below (and the file name).
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'alerts',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('customer_id', sa.String(length=40), nullable=False),
        sa.Column('subscription_id', sa.String(length=40), nullable=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('watches', sa.String(length=20), nullable=False),
        sa.Column('metric_id', sa.String(length=40), nullable=True),
        sa.Column('currency', sa.String(length=3), nullable=True),
        sa.Column('budget', sa.String(length=40), nullable=True),
        sa.Column('thresholds', sa.JSON(), nullable=False),
        sa.Column('recurring', sa.JSON(), nullable=True),
        sa.Column('hard_cap', sa.String(length=40), nullable=True),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_alerts_customer_id_customers')),
        sa.ForeignKeyConstraint(['metric_id'], ['billable_metrics.id'], name=op.f('fk_alerts_metric_id_billable_metrics')),
        sa.ForeignKeyConstraint(['subscription_id'], ['subscriptions.id'], name=op.f('fk_alerts_subscription_id_subscriptions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    )
    op.create_index('ix_alerts_customer_id', 'alerts', ['customer_id'], unique=False)
    op.create_index(op.f('ix_alerts_subscription_id'), 'alerts', ['subscription_id'], unique=False)
    op.create_table(
        'alert_firings',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('alert_id', sa.String(length=40), nullable=False),
        sa.Column('customer_id', sa.String(length=40), nullable=False),
        sa.Column('subscription_id', sa.String(length=40), nullable=False),
        sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('period_end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('threshold', sa.String(length=40), nullable=False),
        sa.Column('observed', sa.String(length=40), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.Column('fired_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_firings_alert_id_alerts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_firings')),
        sa.UniqueConstraint('alert_id', 'period_start', 'threshold', name=op.f('uq_alert_firings_alert_id')),
    )
    op.create_index('ix_alert_firings_subscription_id', 'alert_firings', ['subscription_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_alert_firings_subscription_id', table_name='alert_firings')
    op.drop_table('alert_firings')
    op.drop_index(op.f('ix_alerts_subscription_id'), table_name='alerts')
    op.drop_index('ix_alerts_customer_id', table_name='alerts')
    op.drop_table('alerts')
