"""staff console: staff members, recovery codes, sessions and sign-in attempts

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'staff_members',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('locale', sa.String(length=5), nullable=False),
        sa.Column('password_hash', sa.String(length=200), nullable=False),
        sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('totp_secret', sa.Text(), nullable=True),
        sa.Column('totp_confirmed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('totp_last_step', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_members')),
        sa.UniqueConstraint('email', name=op.f('uq_staff_members_email')),
    )
    op.create_table(
        'staff_recovery_codes',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('staff_id', sa.String(length=40), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_members.id'], name=op.f('fk_staff_recovery_codes_staff_id_staff_members')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_recovery_codes')),
    )
    op.create_index(op.f('ix_staff_recovery_codes_staff_id'), 'staff_recovery_codes', ['staff_id'])
    op.create_table(
        'staff_sessions',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('staff_id', sa.String(length=40), nullable=False),
        sa.Column('stage', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('user_agent', sa.String(length=300), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['staff_id'], ['staff_members.id'], name=op.f('fk_staff_sessions_staff_id_staff_members')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sessions')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_staff_sessions_token_hash')),
    )
    op.create_index(op.f('ix_staff_sessions_staff_id'), 'staff_sessions', ['staff_id'])
    op.create_table(
        'staff_sign_in_attempts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stage', sa.String(length=20), nullable=False),
        sa.Column('outcome', sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sign_in_attempts')),
    )
    op.create_index('ix_staff_sign_in_attempts_email_at', 'staff_sign_in_attempts', ['email', 'at'])
    op.create_index('ix_staff_sign_in_attempts_address_at', 'staff_sign_in_attempts', ['address', 'at'])


def downgrade() -> None:
    op.drop_table('staff_sign_in_attempts')
    op.drop_table('staff_sessions')
    op.drop_table('staff_recovery_codes')
    op.drop_table('staff_members')
