"""invoice amounts carried forward below Stripe's minimum; proration line kinds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing invoices carried nothing forward.
    op.add_column('invoices', sa.Column('carried_forward', sa.BigInteger(), nullable=False, server_default='0'))
    # Proration lines were stored with the column's default kind, "subscription"; their
    # invoice's business key says what they are.
    op.execute(
        "UPDATE invoice_lines SET kind = 'proration' WHERE invoice_id IN "
        "(SELECT id FROM invoices WHERE business_key LIKE 'proration:%')"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE invoice_lines SET kind = 'subscription' WHERE kind = 'proration'"
    )
    with op.batch_alter_table('invoices') as batch:
        batch.drop_column('carried_forward')
