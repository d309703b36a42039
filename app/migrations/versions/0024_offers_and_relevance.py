"""Personalised offers (offer_templates, member_offers, purchase_items) and relevance (programs.locations,
programs.beacons)

Revision ID: 0024
Revises: 0022
"""
from alembic import op
import sqlalchemy as sa

revision = '0024'
down_revision = '0022'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locations', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('beacons', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('offers_active', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'purchase_items',
        sa.Column('id', BigId, primary_key=True),
        sa.Column('entry_id', BigId, sa.ForeignKey('ledger_entries.id'), nullable=False),
        sa.Column('member_id', BigId, sa.ForeignKey('members.id'), nullable=False),
        sa.Column('sku', sa.String(length=64), nullable=True),
        sa.Column('category', sa.String(length=60), nullable=True),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Numeric(14, 2), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_purchase_items_entry_id', 'purchase_items', ['entry_id'])
    op.create_index('ix_purchase_items_member_created', 'purchase_items', ['member_id', 'created_at'])
    op.create_index('ix_purchase_items_category_created', 'purchase_items', ['category', 'created_at'])
    op.create_table(
        'offer_templates',
        sa.Column('id', BigId, primary_key=True),
        sa.Column('program_id', BigId, sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('settings', sa.JSON(), nullable=False),
        sa.Column('texts', sa.JSON(), nullable=False),
        sa.Column('labels', sa.JSON(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_offer_templates_program_id', 'offer_templates', ['program_id'])
    op.create_table(
        'member_offers',
        sa.Column('member_id', BigId, sa.ForeignKey('members.id'), primary_key=True),
        sa.Column('program_id', BigId, sa.ForeignKey('programs.id'), nullable=False),
        sa.Column('template_id', BigId, sa.ForeignKey('offer_templates.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('shown', sa.JSON(), nullable=False),
        sa.Column('chosen_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_member_offers_program_id', 'member_offers', ['program_id'])
    op.create_index('ix_member_offers_template_id', 'member_offers', ['template_id'])


def downgrade() -> None:
    op.drop_table('member_offers')
    op.drop_table('offer_templates')
    op.drop_table('purchase_items')
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_column('offers_active')
        batch_op.drop_column('beacons')
        batch_op.drop_column('locations')
