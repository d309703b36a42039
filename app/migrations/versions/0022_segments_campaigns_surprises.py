"""Segments, campaigns and their recipients, surprises, member tags, and whether a card was
ever in an Apple or Google wallet (members.apple_ever_installed, google_ever_saved; backfilled from what is known
now).

Revision ID: 0022
Revises: 0021
"""
from alembic import op
import sqlalchemy as sa

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('apple_ever_installed', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('google_ever_saved', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE members SET apple_ever_installed = (apple_devices > 0), google_ever_saved = google_saved")
    op.create_table(
        'member_tags',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('member_id', _ID, sa.ForeignKey('members.id'), nullable=False),
        sa.Column('tag', sa.String(40), nullable=False),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.UniqueConstraint('member_id', 'tag'))
    op.create_index('ix_member_tags_tag', 'member_tags', ['tag', 'member_id'])
    op.create_table(
        'segments',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('merchant_id', _ID, sa.ForeignKey('merchants.id'), nullable=False),
        sa.Column('program_id', _ID, sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('name', sa.String(120), nullable=False),
        sa.Column('rules', sa.JSON(), nullable=False),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.Column('updated_at', _WHEN, nullable=False),
        sa.Column('deleted_at', _WHEN, nullable=True))
    op.create_index('ix_segments_merchant_id', 'segments', ['merchant_id'])
    op.create_index('ix_segments_program_id', 'segments', ['program_id'])
    op.create_table(
        'campaigns',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('merchant_id', _ID, sa.ForeignKey('merchants.id'), nullable=False),
        sa.Column('program_id', _ID, sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('segment_id', _ID, sa.ForeignKey('segments.id'), nullable=False),
        sa.Column('name', sa.String(120), nullable=False),
        sa.Column('title', sa.JSON(), nullable=True),
        sa.Column('body', sa.JSON(), nullable=True),
        sa.Column('offer_text', sa.JSON(), nullable=True),
        sa.Column('offer_ends_at', _WHEN, nullable=True),
        sa.Column('offer_cleared_at', _WHEN, nullable=True),
        sa.Column('cap_count', sa.Integer(), nullable=True),
        sa.Column('cap_days', sa.Integer(), nullable=True),
        sa.Column('send_at', _WHEN, nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('cursor', sa.BigInteger(), nullable=False),
        sa.Column('targeted', sa.Integer(), nullable=True),
        sa.Column('started_at', _WHEN, nullable=True),
        sa.Column('finished_at', _WHEN, nullable=True),
        sa.Column('cancelled_at', _WHEN, nullable=True),
        sa.Column('created_at', _WHEN, nullable=False))
    op.create_index('ix_campaigns_merchant_id', 'campaigns', ['merchant_id'])
    op.create_index('ix_campaigns_program_id', 'campaigns', ['program_id'])
    op.create_index('ix_campaigns_status_send_at', 'campaigns', ['status', 'send_at'])
    op.create_index('ix_campaigns_offer_ends', 'campaigns', ['offer_ends_at', 'offer_cleared_at'])
    op.create_table(
        'campaign_recipients',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('campaign_id', _ID, sa.ForeignKey('campaigns.id'), nullable=False),
        sa.Column('member_id', _ID, sa.ForeignKey('members.id'), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('card_updated', sa.Boolean(), nullable=False),
        sa.Column('redeemed_at', _WHEN, nullable=True),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.UniqueConstraint('campaign_id', 'member_id'))
    op.create_index('ix_campaign_recipients_member', 'campaign_recipients', ['member_id', 'created_at'])
    op.create_table(
        'surprises',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('merchant_id', _ID, sa.ForeignKey('merchants.id'), nullable=False),
        sa.Column('program_id', _ID, sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('segment_id', _ID, sa.ForeignKey('segments.id'), nullable=False),
        sa.Column('seed', sa.String(64), nullable=False),
        sa.Column('sample_size', sa.Integer(), nullable=False),
        sa.Column('points', sa.Integer(), nullable=False),
        sa.Column('reward_id', _ID, sa.ForeignKey('rewards.id'), nullable=True),
        sa.Column('eligible_count', sa.Integer(), nullable=False),
        sa.Column('eligible_digest', sa.String(64), nullable=False),
        sa.Column('member_ids', sa.JSON(), nullable=False),
        sa.Column('created_at', _WHEN, nullable=False))
    op.create_index('ix_surprises_merchant_id', 'surprises', ['merchant_id'])
    op.create_index('ix_surprises_program_id', 'surprises', ['program_id'])


def downgrade() -> None:
    for table in ('surprises', 'campaign_recipients', 'campaigns', 'segments', 'member_tags'):
        op.drop_table(table)
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('google_ever_saved')
        batch_op.drop_column('apple_ever_installed')
