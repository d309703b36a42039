"""lock-free update tags: members.pass_update_seen, programs.design_update_seen, counters.update_tag_base

On PostgreSQL a change's tag becomes update_tag_base + its transaction id instead of the next value of the
`pass_updates` counter row, which every card change locked until commit. The base starts at the counter's last
value, so every new tag is above every tag a device already holds. `seen` (every tag up to it had finished
when the change was made) starts at the tag itself: under the counter lock that was true.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pass_update_seen', sa.BigInteger(), nullable=False, server_default='0'))
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('design_update_seen', sa.BigInteger(), nullable=False, server_default='0'))
    op.execute("UPDATE members SET pass_update_seen = pass_update_tag")
    op.execute("UPDATE programs SET design_update_seen = design_update_tag")
    op.execute("INSERT INTO counters (name, value) "
               "SELECT 'update_tag_base', value FROM counters WHERE name = 'pass_updates'")


def downgrade() -> None:
    # Back to the counter: it must start above every tag handed out since (base + transaction id).
    op.execute("UPDATE counters SET value = (SELECT max(tag) FROM (SELECT max(pass_update_tag) AS tag FROM members "
               "UNION ALL SELECT max(design_update_tag) FROM programs UNION ALL SELECT value FROM counters "
               "WHERE name = 'pass_updates') AS tags) WHERE name = 'pass_updates'")
    op.execute("DELETE FROM counters WHERE name = 'update_tag_base'")
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_column('design_update_seen')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('pass_update_seen')
