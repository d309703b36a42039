"""The loyalty engine: credits become lots (lot_remaining, expires_at, pending_until on ledger_entries, and
lot_consumptions), expiry and pending policies, earn rules, promotions, bonus actions and tier rules on programs,
tier multipliers and perks, the member's earned tier, review date, override end, pending points and next
expiry, stamp cards (stamps, vouchers) and paid memberships (membership_periods). Every member's existing balance
becomes one opening lot that never expires; members keep their tier (reviewed once an upgrade sets a date).

Revision ID: 0017
Revises: 0020
"""
from alembic import op
import sqlalchemy as sa

revision = '0017'
down_revision = '0020'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('type', sa.String(length=8), nullable=False, server_default='points'))
        batch_op.add_column(sa.Column('stamps_required', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stamp_reward', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('stamp_milestones', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('stamps_expire_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('expiry_policy', sa.String(length=16), nullable=False,
                                      server_default='never'))
        batch_op.add_column(sa.Column('expiry_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('expiry_warn_days', sa.Integer(), nullable=False, server_default='14'))
        batch_op.add_column(sa.Column('pending_days', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('earn_rules', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('promotions', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('shown_promotion', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('bonus_actions', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('tier_basis', sa.String(length=8), nullable=False, server_default='points'))
        batch_op.add_column(sa.Column('tier_window_months', sa.Integer(), nullable=False, server_default='12'))
        batch_op.add_column(sa.Column('tier_grace_days', sa.Integer(), nullable=False, server_default='30'))
    with op.batch_alter_table('tiers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('multiplier', sa.Numeric(precision=6, scale=2), nullable=False,
                                      server_default='1'))
        batch_op.add_column(sa.Column('perks', sa.Text(), nullable=True))
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tier_override_until', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('earned_tier_id', _ID, nullable=True))
        batch_op.add_column(sa.Column('tier_review_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('tier_since', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('membership_tier_id', _ID, nullable=True))
        batch_op.add_column(sa.Column('membership_ends_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('qualifying_total', sa.Numeric(precision=14, scale=2), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('stamps', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_stamp_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('pending_points', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('next_expiry_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('next_expiry_points', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('expiry_warned_through', _WHEN, nullable=True))
        batch_op.create_foreign_key('fk_members_earned_tier_id_tiers', 'tiers', ['earned_tier_id'], ['id'])
        batch_op.create_foreign_key('fk_members_membership_tier_id_tiers', 'tiers', ['membership_tier_id'], ['id'])
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('stamps', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('lot_remaining', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('expires_at', _WHEN, nullable=True))
        batch_op.add_column(sa.Column('pending_until', _WHEN, nullable=True))
        batch_op.create_index('ix_ledger_lots_expiry', ['expires_at'], unique=False)
        batch_op.create_index('ix_ledger_lots_pending', ['pending_until'], unique=False)
    op.create_table(
        'lot_consumptions',
        sa.Column('id', _ID, nullable=False),
        sa.Column('entry_id', _ID, nullable=False),
        sa.Column('lot_id', _ID, nullable=False),
        sa.Column('points', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['entry_id'], ['ledger_entries.id']),
        sa.ForeignKeyConstraint(['lot_id'], ['ledger_entries.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_lot_consumptions_entry_id', 'lot_consumptions', ['entry_id'], unique=False)
    op.create_index('ix_lot_consumptions_lot_id', 'lot_consumptions', ['lot_id'], unique=False)
    op.create_table(
        'vouchers',
        sa.Column('id', _ID, nullable=False),
        sa.Column('member_id', _ID, nullable=False),
        sa.Column('merchant_id', _ID, nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('issued_by_id', _ID, nullable=False),
        sa.Column('redeemed_by_id', _ID, nullable=True),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.Column('redeemed_at', _WHEN, nullable=True),
        sa.ForeignKeyConstraint(['member_id'], ['members.id']),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id']),
        sa.ForeignKeyConstraint(['issued_by_id'], ['ledger_entries.id']),
        sa.ForeignKeyConstraint(['redeemed_by_id'], ['ledger_entries.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_vouchers_member_id', 'vouchers', ['member_id'], unique=False)
    op.create_table(
        'membership_periods',
        sa.Column('id', _ID, nullable=False),
        sa.Column('member_id', _ID, nullable=False),
        sa.Column('merchant_id', _ID, nullable=False),
        sa.Column('tier_id', _ID, nullable=True),
        sa.Column('starts_at', _WHEN, nullable=False),
        sa.Column('ends_at', _WHEN, nullable=False),
        sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('remind_at', _WHEN, nullable=False),
        sa.Column('reminded_at', _WHEN, nullable=True),
        sa.Column('applied_at', _WHEN, nullable=True),
        sa.Column('created_at', _WHEN, nullable=False),
        sa.ForeignKeyConstraint(['member_id'], ['members.id']),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id']),
        sa.ForeignKeyConstraint(['tier_id'], ['tiers.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_membership_periods_member_id', 'membership_periods', ['member_id'], unique=False)
    op.create_index('ix_membership_periods_ends_at', 'membership_periods', ['ends_at'], unique=False)
    op.create_index('ix_membership_periods_remind_at', 'membership_periods', ['remind_at'], unique=False)
    _opening_lots()


def _opening_lots() -> None:
    """One lot per member holding the whole balance, on an entry of 0 points (the points are already in the
    ledger): it never expires, so nobody loses what they earned before expiry existed. Members start at their
    earned tier as it stands."""
    op.execute(
        "INSERT INTO ledger_entries (member_id, merchant_id, kind, points, balance_after, reason, rule, shortfall, "
        "lot_remaining, created_at) "
        "SELECT id, merchant_id, 'adjust', 0, points_balance, 'Opening lot: the balance before lots', "
        "'migration 0017', 0, points_balance, CURRENT_TIMESTAMP FROM members WHERE points_balance > 0")
    op.execute("UPDATE members SET earned_tier_id = tier_id, qualifying_total = lifetime_points")


def downgrade() -> None:
    for index in ('ix_membership_periods_remind_at', 'ix_membership_periods_ends_at',
                  'ix_membership_periods_member_id'):
        op.drop_index(index, table_name='membership_periods')
    op.drop_table('membership_periods')
    op.drop_index('ix_vouchers_member_id', table_name='vouchers')
    op.drop_table('vouchers')
    op.drop_index('ix_lot_consumptions_lot_id', table_name='lot_consumptions')
    op.drop_index('ix_lot_consumptions_entry_id', table_name='lot_consumptions')
    op.drop_table('lot_consumptions')
    op.execute("DELETE FROM ledger_entries WHERE rule = 'migration 0017'")
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_lots_pending')
        batch_op.drop_index('ix_ledger_lots_expiry')
        batch_op.drop_column('pending_until')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('lot_remaining')
        batch_op.drop_column('stamps')
        batch_op.drop_column('rule')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_constraint('fk_members_membership_tier_id_tiers', type_='foreignkey')
        batch_op.drop_constraint('fk_members_earned_tier_id_tiers', type_='foreignkey')
        for column in ('expiry_warned_through', 'next_expiry_points', 'next_expiry_at', 'pending_points',
                       'last_stamp_at', 'stamps',
                       'qualifying_total', 'membership_ends_at', 'membership_tier_id', 'tier_since', 'tier_review_at',
                       'earned_tier_id', 'tier_override_until'):
            batch_op.drop_column(column)
    with op.batch_alter_table('tiers', schema=None) as batch_op:
        batch_op.drop_column('perks')
        batch_op.drop_column('multiplier')
    with op.batch_alter_table('programs', schema=None) as batch_op:
        for column in ('tier_grace_days', 'tier_window_months', 'tier_basis', 'bonus_actions', 'shown_promotion',
                       'promotions', 'earn_rules', 'pending_days', 'expiry_warn_days', 'expiry_days', 'expiry_policy',
                       'stamps_expire_days', 'stamp_milestones', 'stamp_reward', 'stamps_required', 'type'):
            batch_op.drop_column(column)
