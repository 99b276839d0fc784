"""Sales order numbers from a sequence per company on PostgreSQL (``numbers_sales_order_<company
id hex>``, see app.numbers.repository): each company's sequence continues from its counter,
whose row goes. SQLite keeps the counter.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 04:30:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = "numbers_sales_order_"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    counters = bind.execute(
        sa.text("SELECT company_id, last_value FROM number_sequences WHERE kind = 'sales_order'")
    ).all()
    for company_id, last in counters:
        name = PREFIX + uuid.UUID(str(company_id)).hex
        op.execute(f'CREATE SEQUENCE "{name}" AS bigint MINVALUE 1')
        if last:
            bind.execute(
                sa.text("SELECT setval(CAST(:name AS regclass), :last)"),
                {"name": name, "last": last},
            )
    op.execute("DELETE FROM number_sequences WHERE kind = 'sales_order'")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    names = bind.scalars(
        sa.text("SELECT relname FROM pg_class WHERE relkind = 'S' AND relname LIKE :prefix"),
        {"prefix": PREFIX + "%"},
    ).all()
    for name in names:
        company_id = uuid.UUID(name.removeprefix(PREFIX))
        last = bind.scalar(
            sa.text("SELECT pg_sequence_last_value(CAST(:name AS regclass))"), {"name": name}
        )
        exists = bind.scalar(sa.text("SELECT 1 FROM companies WHERE id = :id"), {"id": company_id})
        if exists:
            bind.execute(
                sa.text(
                    "INSERT INTO number_sequences (company_id, kind, last_value) "
                    "VALUES (:id, 'sales_order', :last)"
                ),
                {"id": company_id, "last": last or 0},
            )
        op.execute(f'DROP SEQUENCE "{name}"')
