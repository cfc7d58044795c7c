"""staff members: password_temporary, so an invited person changes the handed-over password first

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 13:55:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Accounts invited before this column kept their handed-over passwords: they are
    # not forced now (nothing says which changed theirs), only new invitations are.
    op.add_column(
        "staff_members",
        sa.Column("password_temporary", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("staff_members", "password_temporary")
