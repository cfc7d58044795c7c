"""billing ledger: index (currency, recorded_at), so the analytics read a currency's recent entries without a scan

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 06:20:00
"""

from alembic import op


revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An entry is booked at max(occurred_at, recorded_at): "booked at or after H" is
    # "occurred_at >= H or recorded_at >= H", which PostgreSQL answers from this index
    # and (currency, occurred_at) together. The analytics cache of closed buckets
    # (kakin.services.analytics_cache) reads only the entries booked since its horizon.
    op.create_index(
        "ix_billing_ledger_currency_recorded_at", "billing_ledger", ["currency", "recorded_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_billing_ledger_currency_recorded_at", table_name="billing_ledger")
