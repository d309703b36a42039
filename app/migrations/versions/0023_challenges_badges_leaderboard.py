"""challenges, their completions and per-earn progress; members' badges and leaderboard opt-in; programs'
challenges_from / challenges_until (an earn sends no challenge query outside them)

Revision ID: 0023
Revises: 0024
"""
from alembic import op
import sqlalchemy as sa

revision = '0023'
down_revision = '0024'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('challenges',
    sa.Column('id', BigId, nullable=False),
    sa.Column('program_id', BigId, nullable=False),
    sa.Column('merchant_id', BigId, nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('goal', sa.String(length=16), nullable=False),
    sa.Column('target', sa.Numeric(14, 2), nullable=False),
    sa.Column('category', sa.String(length=60), nullable=True),
    sa.Column('window', sa.String(length=16), nullable=False),
    sa.Column('window_days', sa.Integer(), nullable=True),
    sa.Column('reward_points', sa.Integer(), nullable=False),
    sa.Column('badge', sa.String(length=40), nullable=True),
    sa.Column('repeatable', sa.Boolean(), nullable=False),
    sa.Column('clawback', sa.Boolean(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], ),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_challenges_program_id'), ['program_id'], unique=False)
    op.create_table('challenge_completions',
    sa.Column('id', BigId, nullable=False),
    sa.Column('challenge_id', BigId, nullable=False),
    sa.Column('member_id', BigId, nullable=False),
    sa.Column('bonus_entry_id', BigId, nullable=True),
    sa.Column('badge', sa.String(length=40), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['bonus_entry_id'], ['ledger_entries.id'], ),
    sa.ForeignKeyConstraint(['challenge_id'], ['challenges.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('challenge_completions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_challenge_completions_challenge_id'), ['challenge_id'], unique=False)
        batch_op.create_index('ix_challenge_completions_member', ['member_id', 'challenge_id'], unique=False)
    op.create_table('challenge_progress',
    sa.Column('id', BigId, nullable=False),
    sa.Column('challenge_id', BigId, nullable=False),
    sa.Column('member_id', BigId, nullable=False),
    sa.Column('entry_id', BigId, nullable=False),
    sa.Column('value', sa.Numeric(14, 2), nullable=False),
    sa.Column('completion_id', BigId, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['challenge_id'], ['challenges.id'], ),
    sa.ForeignKeyConstraint(['completion_id'], ['challenge_completions.id'], ),
    sa.ForeignKeyConstraint(['entry_id'], ['ledger_entries.id'], ),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('challenge_progress', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_challenge_progress_completion_id'), ['completion_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_challenge_progress_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index('ix_challenge_progress_member', ['member_id', 'challenge_id', 'created_at'],
                              unique=False)
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('challenges_from', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('challenges_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('challenges_shown', sa.String(length=16), nullable=True))
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('badges', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('leaderboard_opt_in', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('leaderboard_name', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('leaderboard_name')
        batch_op.drop_column('leaderboard_opt_in')
        batch_op.drop_column('badges')
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_column('challenges_shown')
        batch_op.drop_column('challenges_until')
        batch_op.drop_column('challenges_from')
    op.drop_table('challenge_progress')
    op.drop_table('challenge_completions')
    op.drop_table('challenges')
