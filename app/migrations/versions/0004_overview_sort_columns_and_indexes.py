"""overview sort columns and indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 04:05:22.899705
"""

from collections.abc import Sequence
from typing import Literal

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _recreate() -> Literal["always", "auto"]:
    # SQLite cannot add a stored generated column in place: it copies the table instead.
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table("partners", schema=None, recreate=_recreate()) as batch_op:
        batch_op.add_column(sa.Column("owner_name", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column(
                "stage_rank",
                sa.SmallInteger(),
                sa.Computed(
                    "CASE customer_stage WHEN 'lead' THEN 0 WHEN 'potential' THEN 1 WHEN 'active' THEN 2 WHEN 'inactive' THEN 3 WHEN 'lost' THEN 4 END",
                    persisted=True,
                ),
                nullable=True,
            )
        )
    op.execute(
        "UPDATE partners SET owner_name = (SELECT users.name FROM users "
        "WHERE users.company_id = partners.company_id AND users.id = partners.owner_id) "
        "WHERE owner_id IS NOT NULL"
    )
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.create_index(
            "ix_partners_overview_country",
            ["company_id", "country", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_partners_overview_credit_limit",
            ["company_id", "credit_limit", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_partners_overview_credit_limit_exceeded",
            ["company_id", "credit_limit_exceeded", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_partners_overview_debtor_balance",
            ["company_id", "debtor_balance", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_partners_overview_latest_sales_delivery_date",
            ["company_id", "latest_sales_delivery_date", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_partners_overview_name",
            ["company_id", "name", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_partners_overview_owner_name",
            ["company_id", "owner_name", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_partners_overview_stage_rank",
            ["company_id", "stage_rank", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_partners_overview_uninvoiced_total",
            ["company_id", "uninvoiced_total", "number"],
            unique=False,
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("partners", schema=None, recreate=_recreate()) as batch_op:
        batch_op.drop_index(
            "ix_partners_overview_uninvoiced_total",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_partners_overview_stage_rank",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_partners_overview_owner_name",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_partners_overview_name",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_partners_overview_latest_sales_delivery_date",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_partners_overview_debtor_balance",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_partners_overview_credit_limit_exceeded",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_partners_overview_credit_limit",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_partners_overview_country",
            postgresql_where=sa.text("customer_stage IS NOT NULL"),
            sqlite_where=sa.text("customer_stage IS NOT NULL"),
        )
        batch_op.drop_column("stage_rank")
        batch_op.drop_column("owner_name")
