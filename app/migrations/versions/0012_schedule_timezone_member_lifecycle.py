"""scheduled_jobs (the periodic jobs' schedule and leases), programs.timezone, members.deleted_at and
members.tier_override_id, rewards.retired_at

Revision ID: 0012
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0014'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'scheduled_jobs',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_as_of', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('leased_by', sa.String(length=200), nullable=True),
        sa.Column('leased_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=False, server_default='UTC'))
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tier_override_id', _ID, nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key('fk_members_tier_override_id_tiers', 'tiers', ['tier_override_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_constraint('fk_members_tier_override_id_tiers', type_='foreignkey')
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('tier_override_id')
    with op.batch_alter_table('rewards', schema=None) as batch_op:
        batch_op.drop_column('retired_at')
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_column('timezone')
    op.drop_table('scheduled_jobs')
