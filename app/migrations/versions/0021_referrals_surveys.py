"""Referrals (programs.referral_settings, referrals, referral_rewards) and surveys (surveys, survey_invitations,
survey_responses, programs.purchase_surveys).

Revision ID: 0021
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa

revision = '0021'
down_revision = '0017'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('referral_settings', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('purchase_surveys', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'referrals',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('merchant_id', _ID, sa.ForeignKey('merchants.id'), nullable=False),
        sa.Column('program_id', _ID, sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('referrer_id', _ID, sa.ForeignKey('members.id'), nullable=False),
        sa.Column('referee_id', _ID, sa.ForeignKey('members.id'), nullable=False, unique=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=True),
        sa.Column('ip', sa.String(length=45), nullable=True),
        sa.Column('ordinal', sa.Integer(), nullable=True),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.Column('completed_at', _WHEN, nullable=True),
    )
    op.create_index('ix_referrals_referrer_created', 'referrals', ['referrer_id', 'created_at'])
    op.create_index('ix_referrals_program_ip_created', 'referrals', ['program_id', 'ip', 'created_at'])
    op.create_table(
        'referral_rewards',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('referral_id', _ID, sa.ForeignKey('referrals.id'), nullable=False),
        sa.Column('qualifying_entry_id', _ID, sa.ForeignKey('ledger_entries.id'), nullable=True),
        sa.Column('referrer_entry_id', _ID, sa.ForeignKey('ledger_entries.id'), nullable=True),
        sa.Column('referee_entry_id', _ID, sa.ForeignKey('ledger_entries.id'), nullable=True),
        sa.Column('referrer_points', sa.Integer(), nullable=False),
        sa.Column('referee_points', sa.Integer(), nullable=False),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.Column('reversed_at', _WHEN, nullable=True),
    )
    op.create_index('ix_referral_rewards_referral_id', 'referral_rewards', ['referral_id'])
    op.create_index('ix_referral_rewards_qualifying_entry_id', 'referral_rewards', ['qualifying_entry_id'])
    op.create_table(
        'surveys',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('merchant_id', _ID, sa.ForeignKey('merchants.id'), nullable=False),
        sa.Column('program_id', _ID, sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('title', sa.String(length=120), nullable=False),
        sa.Column('title_translations', sa.JSON(), nullable=False),
        sa.Column('questions', sa.JSON(), nullable=False),
        sa.Column('bonus_points', sa.Integer(), nullable=False),
        sa.Column('after_purchases', sa.Integer(), nullable=True),
        sa.Column('open_days', sa.Integer(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', _WHEN, nullable=False),
    )
    op.create_index('ix_surveys_program_id', 'surveys', ['program_id'])
    op.create_table(
        'survey_invitations',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('survey_id', _ID, sa.ForeignKey('surveys.id'), nullable=False),
        sa.Column('member_id', _ID, sa.ForeignKey('members.id'), nullable=False),
        sa.Column('expires_at', _WHEN, nullable=False),
        sa.Column('answered_at', _WHEN, nullable=True),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.UniqueConstraint('survey_id', 'member_id'),
    )
    op.create_index('ix_survey_invitations_member_id', 'survey_invitations', ['member_id'])
    op.create_table(
        'survey_responses',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('survey_id', _ID, sa.ForeignKey('surveys.id'), nullable=False),
        sa.Column('member_id', _ID, sa.ForeignKey('members.id'), nullable=False),
        sa.Column('answers', sa.JSON(), nullable=False),
        sa.Column('bonus_entry_id', _ID, sa.ForeignKey('ledger_entries.id'), nullable=True),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.UniqueConstraint('survey_id', 'member_id'),
    )
    op.create_index('ix_survey_responses_survey_id', 'survey_responses', ['survey_id'])


def downgrade() -> None:
    for table in ('survey_responses', 'survey_invitations', 'surveys', 'referral_rewards', 'referrals'):
        op.drop_table(table)
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_column('purchase_surveys')
        batch_op.drop_column('referral_settings')
