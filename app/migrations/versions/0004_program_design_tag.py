"""programs.design_update_tag / design_updated_at: a design change tags the program, not every member

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('design_update_tag', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('design_updated_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_column('design_updated_at')
        batch_op.drop_column('design_update_tag')
