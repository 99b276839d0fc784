"""accounting providers with OAuth2 tokens (token_url) and a sync run's warnings

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounting_connections") as batch:
        batch.add_column(sa.Column("token_url", sa.String(length=500), nullable=True))
    with op.batch_alter_table("accounting_sync_runs") as batch:
        batch.add_column(sa.Column("warnings", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounting_sync_runs") as batch:
        batch.drop_column("warnings")
    with op.batch_alter_table("accounting_connections") as batch:
        batch.drop_column("token_url")
