"""outbox_events.leased_at and leased_by (who holds a delivery, since when: `punchpass outbox status`) and an
index on idempotency_records.created_at (the retention sweep deletes by age)

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leased_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('leased_by', sa.String(length=200), nullable=True))
    op.create_index('ix_idempotency_records_created_at', 'idempotency_records', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_idempotency_records_created_at', table_name='idempotency_records')
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_column('leased_by')
        batch_op.drop_column('leased_at')
