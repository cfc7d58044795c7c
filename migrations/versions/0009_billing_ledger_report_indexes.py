"""billing ledger: indexes the analytics reads use (a currency's entries of some kinds, an invoice's entries)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 04:00:00
"""

from alembic import op


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # models.repositories.analytics reads a currency's MRR entries, its corrections and
    # its failed payments by kind, and the entries of chosen invoices: without these,
    # each of those reads is a scan of the whole ledger.
    op.create_index("ix_billing_ledger_currency_kind", "billing_ledger", ["currency", "kind"])
    op.create_index("ix_billing_ledger_invoice_id", "billing_ledger", ["invoice_id"])


def downgrade() -> None:
    op.drop_index("ix_billing_ledger_invoice_id", table_name="billing_ledger")
    op.drop_index("ix_billing_ledger_currency_kind", table_name="billing_ledger")
