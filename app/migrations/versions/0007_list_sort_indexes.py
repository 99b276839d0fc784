"""an index per sort of the partner and order lists

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 00:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (company_id, column, number) per sort column: a page is one range of it. Each replaces the
# (company_id, column) index of the same column, where there was one.
PARTNER_COLUMNS = (
    "name",
    "country",
    "stage_rank",
    "credit_limit",
    "debtor_balance",
    "uninvoiced_total",
    "latest_sales_delivery_date",
    "created_at",
    "updated_at",
)
ORDER_COLUMNS = ("order_date", "delivery_date", "total_base", "created_at", "updated_at")
REPLACED = {
    "partners": ("name", "updated_at"),
    "sales_orders": ("delivery_date", "updated_at"),
}


def upgrade() -> None:
    for table, columns in (("partners", PARTNER_COLUMNS), ("sales_orders", ORDER_COLUMNS)):
        for column in columns:
            op.create_index(
                f"ix_{table}_list_{column}", table, ["company_id", column, "number"], unique=False
            )
        for column in REPLACED[table]:
            op.drop_index(f"ix_{table}_company_id_{column}", table_name=table)


def downgrade() -> None:
    for table, columns in (("sales_orders", ORDER_COLUMNS), ("partners", PARTNER_COLUMNS)):
        for column in REPLACED[table]:
            op.create_index(
                f"ix_{table}_company_id_{column}", table, ["company_id", column], unique=False
            )
        for column in reversed(columns):
            op.drop_index(f"ix_{table}_list_{column}", table_name=table)
