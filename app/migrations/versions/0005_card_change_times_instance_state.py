"""members.pass_previous_updated_at, programs.design_previous_updated_at (If-Modified-Since knows when two
versions share a second) and instance_state (the card settings the cards were built with)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pass_previous_updated_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('design_previous_updated_at', sa.DateTime(timezone=True), nullable=True))
    op.create_table('instance_state',
                    sa.Column('name', sa.String(length=32), nullable=False),
                    sa.Column('value', sa.String(length=200), nullable=False),
                    sa.PrimaryKeyConstraint('name'))


def downgrade() -> None:
    op.drop_table('instance_state')
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_column('design_previous_updated_at')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('pass_previous_updated_at')
