"""API tokens unique per company: the token names its company, and every key of company data
leads with company_id (ready to be distributed by company)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 10:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("uq_api_tokens_token_hash"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_api_tokens_company_id_token_hash"), ["company_id", "token_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("uq_api_tokens_company_id_token_hash"), type_="unique")
        batch.create_unique_constraint(op.f("uq_api_tokens_token_hash"), ["token_hash"])
