import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    Uuid,
    and_,
)
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from app.db.base import Base, Money, ScaledDecimal, UTCDateTime, utcnow
from app.models.enums import SalesOrderStatus, check_in
from app.models.partner import Partner
from app.models.user import User

QUANTITY = ScaledDecimal(18, 6)
RATE = ScaledDecimal(18, 6)
# Five digits are exact as a float too, and the CHECK (<= 100) must see the plain value.
PERCENT = Numeric(5, 2)
# Every order list sort but `number` has an index of its own: (company, column, number), read
# as row-value ranges (the nulls of delivery_date as its `IS NULL` range). They serve the
# delivery date and `updated_since` filters too.
LIST_SORT_COLUMNS = ("order_date", "delivery_date", "total_base", "created_at", "updated_at")


class SalesOrder(Base):
    """A sales order of a partner; its base total feeds the partner's uninvoiced total."""

    __tablename__ = "sales_orders"
    __table_args__ = (
        UniqueConstraint("company_id", "number"),
        # No ON DELETE: a partner with sales orders cannot be deleted.
        ForeignKeyConstraint(["company_id", "partner_id"], ["partners.company_id", "partners.id"]),
        ForeignKeyConstraint(["company_id", "owner_id"], ["users.company_id", "users.id"]),
        CheckConstraint(check_in("status", SalesOrderStatus), name="status"),
        CheckConstraint("exchange_rate > 0", name="exchange_rate_positive"),
        CheckConstraint("number > 0", name="number_positive"),
        Index("ix_sales_orders_company_id_partner_id_status", "company_id", "partner_id", "status"),
        Index("ix_sales_orders_company_id_status", "company_id", "status"),
        *(
            Index(f"ix_sales_orders_list_{column}", "company_id", column, "number")
            for column in LIST_SORT_COLUMNS
        ),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    number: Mapped[int] = mapped_column(Integer)
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16), default=SalesOrderStatus.open.value)
    order_date: Mapped[date] = mapped_column(Date)
    delivery_date: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    exchange_rate: Mapped[Decimal] = mapped_column(RATE)
    reference: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    total: Mapped[Decimal] = mapped_column(Money)
    total_base: Mapped[Decimal] = mapped_column(Money)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invoiced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __mapper_args__ = {"version_id_col": version}

    lines: Mapped[list["SalesOrderLine"]] = relationship(
        back_populates="order",
        cascade="all, delete-orphan",
        order_by="SalesOrderLine.position",
        passive_deletes=True,
    )
    partner: Mapped[Partner] = relationship(
        primaryjoin=lambda: and_(
            foreign(SalesOrder.company_id) == Partner.company_id,
            foreign(SalesOrder.partner_id) == Partner.id,
        ),
        viewonly=True,
    )
    owner: Mapped[User | None] = relationship(
        primaryjoin=lambda: and_(
            foreign(SalesOrder.company_id) == User.company_id,
            foreign(SalesOrder.owner_id) == User.id,
        ),
        viewonly=True,
    )


class SalesOrderLine(Base):
    __tablename__ = "sales_order_lines"
    __table_args__ = (
        ForeignKeyConstraint(
            ["company_id", "order_id"],
            ["sales_orders.company_id", "sales_orders.id"],
            ondelete="CASCADE",
        ),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        CheckConstraint(
            "discount_percent >= 0 AND discount_percent <= 100", name="discount_percent_range"
        ),
        Index("ix_sales_order_lines_company_id_order_id", "company_id", "order_id"),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    order_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(500))
    sku: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    discount_percent: Mapped[Decimal] = mapped_column(PERCENT, default=Decimal("0"))
    total: Mapped[Decimal] = mapped_column(Money)

    order: Mapped[SalesOrder] = relationship(back_populates="lines")
