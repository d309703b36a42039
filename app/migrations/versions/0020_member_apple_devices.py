"""members.apple_devices: how many devices are registered for the card's updates (the member's `wallets.apple`)

Revision ID: 0020
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa

revision = '0020'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('apple_devices', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE members SET apple_devices = (SELECT count(*) FROM device_registrations "
               "WHERE device_registrations.member_id = members.id)")


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('apple_devices')
