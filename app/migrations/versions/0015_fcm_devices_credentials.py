"""fcm_devices (merchant-app FCM tokens per member) and fcm_credentials (a merchant's sealed Firebase key)

Revision ID: 0015
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0009'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('fcm_devices',
    sa.Column('id', BigId, nullable=False),
    sa.Column('merchant_id', BigId, nullable=False),
    sa.Column('member_id', BigId, nullable=False),
    sa.Column('token', sa.String(length=1024), nullable=False),
    sa.Column('platform', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('merchant_id', 'token')
    )
    with op.batch_alter_table('fcm_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fcm_devices_member_id'), ['member_id'], unique=False)

    op.create_table('fcm_credentials',
    sa.Column('merchant_id', BigId, nullable=False),
    sa.Column('project_id', sa.String(length=128), nullable=False),
    sa.Column('client_email', sa.String(length=254), nullable=False),
    sa.Column('sealed_key', sa.LargeBinary(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], ),
    sa.PrimaryKeyConstraint('merchant_id')
    )


def downgrade() -> None:
    op.drop_table('fcm_credentials')
    with op.batch_alter_table('fcm_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fcm_devices_member_id'))
    op.drop_table('fcm_devices')
