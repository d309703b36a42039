"""holds (two-phase redeem), and on ledger_entries the held-points change, the hold, and the API key and store
that made each entry

Revision ID: 0010
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'holds',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('reward_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column('points', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('reference', sa.String(length=200), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id']),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id']),
        sa.ForeignKeyConstraint(['reward_id'], ['rewards.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_status_expires', ['status', 'expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_holds_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_holds_merchant_id'), ['merchant_id'], unique=False)
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('hold_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.add_column(sa.Column('api_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.add_column(sa.Column('store', sa.String(length=120), nullable=True))
        batch_op.create_index(batch_op.f('ix_ledger_entries_hold_id'), ['hold_id'], unique=False)
        batch_op.create_foreign_key('fk_ledger_entries_hold_id_holds', 'holds', ['hold_id'], ['id'])
        batch_op.create_foreign_key('fk_ledger_entries_api_key_id_api_keys', 'api_keys', ['api_key_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_constraint('fk_ledger_entries_api_key_id_api_keys', type_='foreignkey')
        batch_op.drop_constraint('fk_ledger_entries_hold_id_holds', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_ledger_entries_hold_id'))
        batch_op.drop_column('store')
        batch_op.drop_column('api_key_id')
        batch_op.drop_column('hold_id')
        batch_op.drop_column('held')
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_holds_merchant_id'))
        batch_op.drop_index(batch_op.f('ix_holds_member_id'))
        batch_op.drop_index('ix_holds_status_expires')
    op.drop_table('holds')
