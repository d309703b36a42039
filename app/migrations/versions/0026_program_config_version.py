"""programs.config_version: changes with every edit of a program, its tiers or rewards (the per-process cache of
program configuration is keyed by it: app/domain/program_config.py)

Revision ID: 0026
Revises: 0023
"""
from alembic import op
import sqlalchemy as sa

revision = '0026'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('config_version', sa.BigInteger(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_column('config_version')
