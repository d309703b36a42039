"""Fewer index writes per earn: members.pass_update_tag unindexed (every earn changes it, which ruled out HOT
updates) and 15 % of each members page kept free for them; ledger_entries' indexes on mostly-empty columns only
hold the rows that set them; ledger_entries.merchant_id alone is covered by (merchant_id, created_at).

PostgreSQL builds the new indexes CONCURRENTLY (outside the migration's transaction), so a large ledger keeps
taking earns while they build.

Revision ID: 0027
Revises: 0026
"""
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

PARTIAL = (("ix_ledger_lots_expiry", "expires_at"), ("ix_ledger_lots_pending", "pending_until"),
           ("ix_ledger_entries_reverses_id", "reverses_id"), ("ix_ledger_entries_hold_id", "hold_id"))


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _rebuild(name: str, column: str, where: str) -> None:
    """Replace index `name` on ledger_entries(column); on PostgreSQL without blocking writes."""
    if _postgresql():
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON ledger_entries ({column}){where}")
    else:
        op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute(f"CREATE INDEX {name} ON ledger_entries ({column}){where}")


def upgrade() -> None:
    op.drop_index("ix_members_pass_update_tag", table_name="members")
    op.drop_index("ix_ledger_entries_merchant_id", table_name="ledger_entries")
    if _postgresql():
        op.execute("ALTER TABLE members SET (fillfactor = 85)")
    for name, column in PARTIAL:
        _rebuild(name, column, f" WHERE {column} IS NOT NULL")


def downgrade() -> None:
    for name, column in PARTIAL:
        _rebuild(name, column, "")
    if _postgresql():
        op.execute("ALTER TABLE members RESET (fillfactor)")
    op.create_index("ix_ledger_entries_merchant_id", "ledger_entries", ["merchant_id"])
    op.create_index("ix_members_pass_update_tag", "members", ["pass_update_tag"])
