"""members.google_object: the card has a Google Wallet object. With apple_devices, the earn's locking statement
tells whom a change must reach, and the EXISTS statement per earn goes (passupdates.locked_members).

Revision ID: 0028
Revises: 0027
"""
from alembic import op
import sqlalchemy as sa

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('google_object', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE members SET google_object = EXISTS "
               "(SELECT 1 FROM google_objects WHERE google_objects.member_id = members.id)")


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('google_object')
