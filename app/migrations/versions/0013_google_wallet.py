"""Google Wallet: a program's class, a member's object, callback nonces, and members.google_saved

Revision ID: 0013
Revises: 0018
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'google_classes',
        sa.Column('program_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('class_id', sa.String(length=220), nullable=False),
        sa.Column('sent_version', sa.Integer(), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['program_id'], ['programs.id']),
        sa.PrimaryKeyConstraint('program_id'),
        sa.UniqueConstraint('class_id'),
    )
    op.create_table(
        'google_objects',
        sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('object_id', sa.String(length=220), nullable=False),
        sa.Column('sent', sa.JSON(), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('notified_at', sa.JSON(), nullable=False),
        sa.Column('message_ids', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id']),
        sa.PrimaryKeyConstraint('member_id'),
        sa.UniqueConstraint('object_id'),
    )
    op.create_table(
        'google_callback_nonces',
        sa.Column('nonce', sa.String(length=200), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('nonce'),
    )
    op.create_index('ix_google_callback_nonces_received_at', 'google_callback_nonces', ['received_at'], unique=False)
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('google_saved', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('google_saved')
    op.drop_index('ix_google_callback_nonces_received_at', table_name='google_callback_nonces')
    op.drop_table('google_callback_nonces')
    op.drop_table('google_objects')
    op.drop_table('google_classes')
