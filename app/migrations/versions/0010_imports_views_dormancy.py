"""saved views of the overview, the dormancy rule (companies.dormancy_days) and the stage
history reasons of imports and dormancy

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 09:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASONS_BEFORE = "reason IN ('manual', 'bulk', 'sales_order_created')"
REASONS_AFTER = "reason IN ('manual', 'bulk', 'sales_order_created', 'import', 'dormant')"


def upgrade() -> None:
    with op.batch_alter_table("companies") as batch:
        batch.add_column(sa.Column("dormancy_days", sa.Integer(), nullable=True))
        batch.create_check_constraint(
            "dormancy_days", "dormancy_days IS NULL OR dormancy_days BETWEEN 1 AND 3650"
        )
    with op.batch_alter_table("stage_changes") as batch:
        batch.drop_constraint(op.f("ck_stage_changes_reason"), type_="check")
        batch.create_check_constraint("reason", REASONS_AFTER)
    op.create_table(
        "saved_views",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("sort", sa.String(length=64), nullable=True),
        sa.Column("columns", sa.Text(), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_saved_views_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "owner_id"],
            ["users.company_id", "users.id"],
            name=op.f("fk_saved_views_company_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_saved_views")),
    )
    op.create_index("ix_saved_views_company_id_owner_id", "saved_views", ["company_id", "owner_id"])


def downgrade() -> None:
    op.drop_index("ix_saved_views_company_id_owner_id", table_name="saved_views")
    op.drop_table("saved_views")
    op.execute("DELETE FROM stage_changes WHERE reason IN ('import', 'dormant')")
    with op.batch_alter_table("stage_changes") as batch:
        batch.drop_constraint(op.f("ck_stage_changes_reason"), type_="check")
        batch.create_check_constraint("reason", REASONS_BEFORE)
    with op.batch_alter_table("companies") as batch:
        batch.drop_constraint(op.f("ck_companies_dormancy_days"), type_="check")
        batch.drop_column("dormancy_days")
