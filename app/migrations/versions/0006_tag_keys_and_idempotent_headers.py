"""tag keys as long as lowercasing makes them; stored answers keep their headers

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # "İ".lower() is two characters: a 50-character name can have a 100-character key.
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.alter_column(
            "name_key", existing_type=sa.String(length=50), type_=sa.String(length=100)
        )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headers", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("headers")
    with op.batch_alter_table("tags", schema=None) as batch_op:
        batch_op.alter_column(
            "name_key", existing_type=sa.String(length=100), type_=sa.String(length=50)
        )
