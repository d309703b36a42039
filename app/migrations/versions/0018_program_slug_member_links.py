"""programs.slug (the public /join/<slug> page) and member_links (lost-card magic links)

Existing programs get `program-<id>` as their slug; owners can change it with PATCH /api/v1/programs/{id}.

Revision ID: 0018
Revises: 0019
"""
from alembic import op
import sqlalchemy as sa

revision = '0018'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slug', sa.String(length=60), nullable=True))
    op.execute("UPDATE programs SET slug = 'program-' || CAST(id AS VARCHAR)")
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.alter_column('slug', existing_type=sa.String(length=60), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_programs_slug'), ['slug'])
    op.create_table('member_links',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    with op.batch_alter_table('member_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_links_member_id'), ['member_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('member_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_links_member_id'))
    op.drop_table('member_links')
    with op.batch_alter_table('programs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_programs_slug'), type_='unique')
        batch_op.drop_column('slug')
