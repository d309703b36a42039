"""members.phone, and indexes to find a member by email or phone within a merchant (the counter's search)

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=32), nullable=True))
        batch_op.create_index('ix_members_merchant_email', ['merchant_id', 'email'], unique=False)
        batch_op.create_index('ix_members_merchant_phone', ['merchant_id', 'phone'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_merchant_phone')
        batch_op.drop_index('ix_members_merchant_email')
        batch_op.drop_column('phone')
