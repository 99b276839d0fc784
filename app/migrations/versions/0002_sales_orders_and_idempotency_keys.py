"""sales orders and idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:52:44.297730
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_idempotency_keys_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "key", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            "ix_idempotency_keys_company_id_created_at", ["company_id", "created_at"], unique=False
        )

    op.create_table(
        "sales_orders",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("order_date", sa.Date(), nullable=False),
        sa.Column("delivery_date", sa.Date(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("exchange_rate", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("total", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("total_base", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invoiced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'delivered', 'invoiced', 'cancelled')",
            name=op.f("ck_sales_orders_status"),
        ),
        sa.CheckConstraint(
            "exchange_rate > 0", name=op.f("ck_sales_orders_exchange_rate_positive")
        ),
        sa.CheckConstraint("number > 0", name=op.f("ck_sales_orders_number_positive")),
        sa.ForeignKeyConstraint(
            ["company_id", "owner_id"],
            ["users.company_id", "users.id"],
            name=op.f("fk_sales_orders_company_id_owner_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "partner_id"],
            ["partners.company_id", "partners.id"],
            name=op.f("fk_sales_orders_company_id_partner_id_partners"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_sales_orders_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_sales_orders")),
        sa.UniqueConstraint("company_id", "number", name=op.f("uq_sales_orders_company_id_number")),
    )
    with op.batch_alter_table("sales_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sales_orders_company_id_delivery_date",
            ["company_id", "delivery_date"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sales_orders_company_id_partner_id_status",
            ["company_id", "partner_id", "status"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sales_orders_company_id_status", ["company_id", "status"], unique=False
        )
        batch_op.create_index(
            "ix_sales_orders_company_id_updated_at", ["company_id", "updated_at"], unique=False
        )

    op.create_table(
        "sales_order_lines",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("discount_percent", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("total", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.CheckConstraint(
            "discount_percent >= 0 AND discount_percent <= 100",
            name=op.f("ck_sales_order_lines_discount_percent_range"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_sales_order_lines_quantity_positive")),
        sa.CheckConstraint(
            "unit_price >= 0", name=op.f("ck_sales_order_lines_unit_price_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "order_id"],
            ["sales_orders.company_id", "sales_orders.id"],
            name=op.f("fk_sales_order_lines_company_id_order_id_sales_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_sales_order_lines_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_sales_order_lines")),
    )
    with op.batch_alter_table("sales_order_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sales_order_lines_company_id_order_id", ["company_id", "order_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sales_order_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_order_lines_company_id_order_id")

    op.drop_table("sales_order_lines")
    with op.batch_alter_table("sales_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_sales_orders_company_id_updated_at")
        batch_op.drop_index("ix_sales_orders_company_id_status")
        batch_op.drop_index("ix_sales_orders_company_id_partner_id_status")
        batch_op.drop_index("ix_sales_orders_company_id_delivery_date")

    op.drop_table("sales_orders")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_idempotency_keys_company_id_created_at")

    op.drop_table("idempotency_keys")
