"""live updates: devices, outbox, counters

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:06:37.491831
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('counters',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.bulk_insert(sa.table('counters', sa.column('name', sa.String), sa.column('value', sa.BigInteger)),
                   [{'name': 'pass_updates', 'value': 0}])
    op.create_table('device_logs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message', sa.String(length=1000), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('device_registrations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('device_library_id', sa.String(length=128), nullable=False),
    sa.Column('push_token', sa.String(length=200), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_library_id', 'member_id')
    )
    with op.batch_alter_table('device_registrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_registrations_device_library_id'), ['device_library_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_device_registrations_member_id'), ['member_id'], unique=False)

    op.create_table('outbox_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('program_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_events_member_id'), ['member_id'], unique=False)
        batch_op.create_index('ix_outbox_pending', ['delivered_at', 'dead_at', 'available_at'], unique=False)

    op.create_table('signed_passes',
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('cache_key', sa.String(length=128), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('member_id')
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pass_update_tag', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.create_index(batch_op.f('ix_members_pass_update_tag'), ['pass_update_tag'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_pass_update_tag'))
        batch_op.drop_column('pass_update_tag')

    op.drop_table('signed_passes')
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending')
        batch_op.drop_index(batch_op.f('ix_outbox_events_member_id'))

    op.drop_table('outbox_events')
    with op.batch_alter_table('device_registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_registrations_member_id'))
        batch_op.drop_index(batch_op.f('ix_device_registrations_device_library_id'))

    op.drop_table('device_registrations')
    op.drop_table('device_logs')
    op.drop_table('counters')
