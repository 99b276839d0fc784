"""companies users tokens tags partners

Revision ID: 0001
Revises:
Create Date: 2026-11-27 03:46:19.670507
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "companies",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("base_currency", sa.String(length=3), nullable=False),
        sa.Column("credit_check", sa.String(length=32), nullable=False),
        sa.Column("credit_enforcement", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "credit_check IN ('balance', 'balance_plus_uninvoiced')",
            name=op.f("ck_companies_credit_check"),
        ),
        sa.CheckConstraint(
            "credit_enforcement IN ('warn', 'block')", name=op.f("ck_companies_credit_enforcement")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("slug", name=op.f("uq_companies_slug")),
    )
    op.create_table(
        "number_sequences",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_number_sequences_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "kind", name=op.f("pk_number_sequences")),
    )
    op.create_table(
        "tags",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("name_key", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_tags_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_tags")),
        sa.UniqueConstraint("company_id", "name_key", name=op.f("uq_tags_company_id_name_key")),
    )
    op.create_table(
        "users",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("email_key", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_users_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_users")),
        sa.UniqueConstraint("company_id", "email_key", name=op.f("uq_users_company_id_email_key")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("scope IN ('read', 'write', 'admin')", name=op.f("ck_api_tokens_scope")),
        sa.ForeignKeyConstraint(
            ["company_id", "user_id"],
            ["users.company_id", "users.id"],
            name=op.f("fk_api_tokens_company_id_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_api_tokens_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(
            "ix_api_tokens_company_id_user_id", ["company_id", "user_id"], unique=False
        )

    op.create_table(
        "partners",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("vat_id", sa.String(length=50), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("website", sa.String(length=500), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("customer_stage", sa.String(length=16), nullable=True),
        sa.Column("credit_limit", sa.Numeric(precision=16, scale=2), nullable=True),
        sa.Column("accounting_ref", sa.String(length=50), nullable=True),
        sa.Column("debtor_balance", sa.Numeric(precision=16, scale=2), nullable=True),
        sa.Column("debtor_balance_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("credit_limit_exceeded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "uninvoiced_total",
            sa.Numeric(precision=16, scale=2),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("latest_sales_delivery_date", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "customer_stage IN ('lead', 'potential', 'active', 'inactive', 'lost')",
            name=op.f("ck_partners_customer_stage"),
        ),
        sa.CheckConstraint("credit_limit >= 0", name=op.f("ck_partners_credit_limit_not_negative")),
        sa.CheckConstraint("number > 0", name=op.f("ck_partners_number_positive")),
        sa.ForeignKeyConstraint(
            ["company_id", "owner_id"],
            ["users.company_id", "users.id"],
            name=op.f("fk_partners_company_id_owner_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_partners_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_partners")),
        sa.UniqueConstraint("company_id", "number", name=op.f("uq_partners_company_id_number")),
    )
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.create_index(
            "ix_partners_company_id_customer_stage", ["company_id", "customer_stage"], unique=False
        )
        batch_op.create_index("ix_partners_company_id_name", ["company_id", "name"], unique=False)
        batch_op.create_index(
            "ix_partners_company_id_owner_id", ["company_id", "owner_id"], unique=False
        )
        batch_op.create_index(
            "ix_partners_company_id_updated_at", ["company_id", "updated_at"], unique=False
        )
        batch_op.create_index(
            "uq_partners_company_id_accounting_ref", ["company_id", "accounting_ref"], unique=True
        )

    op.create_table(
        "partner_locations",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id", "partner_id"],
            ["partners.company_id", "partners.id"],
            name=op.f("fk_partner_locations_company_id_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_partner_locations_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_partner_locations")),
    )
    with op.batch_alter_table("partner_locations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_partner_locations_company_id_partner_id", ["company_id", "partner_id"], unique=False
        )
        batch_op.create_index(
            "uq_partner_locations_one_primary",
            ["company_id", "partner_id"],
            unique=True,
            sqlite_where=sa.text("is_primary"),
            postgresql_where=sa.text("is_primary"),
        )

    op.create_table(
        "partner_tags",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("tag_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id", "partner_id"],
            ["partners.company_id", "partners.id"],
            name=op.f("fk_partner_tags_company_id_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "tag_id"],
            ["tags.company_id", "tags.id"],
            name=op.f("fk_partner_tags_company_id_tag_id_tags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "partner_id", "tag_id", name=op.f("pk_partner_tags")),
    )
    with op.batch_alter_table("partner_tags", schema=None) as batch_op:
        batch_op.create_index(
            "ix_partner_tags_company_id_tag_id", ["company_id", "tag_id"], unique=False
        )

    op.create_table(
        "stage_changes",
        sa.Column("company_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Uuid(), nullable=False),
        sa.Column("previous_stage", sa.String(length=16), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "reason IN ('manual', 'bulk', 'sales_order_created')",
            name=op.f("ck_stage_changes_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "changed_by_id"],
            ["users.company_id", "users.id"],
            name=op.f("fk_stage_changes_company_id_changed_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id", "partner_id"],
            ["partners.company_id", "partners.id"],
            name=op.f("fk_stage_changes_company_id_partner_id_partners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_stage_changes_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("company_id", "id", name=op.f("pk_stage_changes")),
    )
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stage_changes_company_id_partner_id_seq",
            ["company_id", "partner_id", "seq"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_stage_changes_company_id_partner_id_seq")

    op.drop_table("stage_changes")
    with op.batch_alter_table("partner_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_partner_tags_company_id_tag_id")

    op.drop_table("partner_tags")
    with op.batch_alter_table("partner_locations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_partner_locations_one_primary",
            sqlite_where=sa.text("is_primary"),
            postgresql_where=sa.text("is_primary"),
        )
        batch_op.drop_index("ix_partner_locations_company_id_partner_id")

    op.drop_table("partner_locations")
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_index("uq_partners_company_id_accounting_ref")
        batch_op.drop_index("ix_partners_company_id_updated_at")
        batch_op.drop_index("ix_partners_company_id_owner_id")
        batch_op.drop_index("ix_partners_company_id_name")
        batch_op.drop_index("ix_partners_company_id_customer_stage")

    op.drop_table("partners")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_api_tokens_company_id_user_id")

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("tags")
    op.drop_table("number_sequences")
    op.drop_table("companies")
