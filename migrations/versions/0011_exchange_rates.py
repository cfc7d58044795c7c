"""exchange rates the operator enters, for the analytics' optional reporting currency

Revises: 0010
Create Date: 2026-12-02 06:00:00

A new table and nothing else: no rate exists until someone enters one (rates are never
fetched), so there is nothing to back-fill. The revision id is written only in
``revision`` below (and the file name), so renumbering this migration is one edit.
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'exchange_rates',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('reporting_currency', sa.String(length=3), nullable=False),
        sa.Column('rate', sa.String(length=40), nullable=False),
        sa.Column('effective_from', sa.Date(), nullable=False),
        sa.Column('entered_by', sa.String(length=200), nullable=False),
        sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_exchange_rates')),
        sa.UniqueConstraint(
            'currency', 'reporting_currency', 'effective_from',
            name='uq_exchange_rates_pair_effective_from',
        ),
    )


def downgrade() -> None:
    op.drop_table('exchange_rates')
