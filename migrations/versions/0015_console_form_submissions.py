"""console form submissions: each form's one-time token, so a form sent twice acts once

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_form_submissions",
        sa.Column("nonce", sa.String(length=40), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_console_form_submissions")),
    )
    op.create_index(
        op.f("ix_console_form_submissions_submitted_at"),
        "console_form_submissions",
        ["submitted_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_console_form_submissions_submitted_at", table_name="console_form_submissions"
    )
    op.drop_table("console_form_submissions")
