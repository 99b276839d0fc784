import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
    and_,
    false,
    text,
)
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from app.db.base import Base, Money, UTCDateTime, utcnow
from app.models.enums import STAGE_ORDER, CustomerStage, StageChangeReason, check_in
from app.models.tag import Tag
from app.models.user import User

STAGE_RANK_SQL = (
    "CASE customer_stage "
    + " ".join(f"WHEN '{stage.value}' THEN {rank}" for rank, stage in enumerate(STAGE_ORDER))
    + " END"
)
# Every overview sort but `number` has an index of its own: (company, column, number).
OVERVIEW_SORT_COLUMNS = (
    "name",
    "country",
    "credit_limit",
    "debtor_balance",
    "credit_limit_exceeded",
    "uninvoiced_total",
    "latest_sales_delivery_date",
    "owner_name",
    "stage_rank",
)
# Every partner list sort but `number` has an index of its own: (company, column, number). A
# page is a row-value range of it, `(column, number) > (v, n)`, and the nulls of a nullable
# column are its `column IS NULL` range, in number order: a deep page costs what the first
# one does. They serve lookups on (company, column) too, e.g. `updated_since`.
LIST_SORT_COLUMNS = (
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


class Partner(Base):
    """Any business contact; the ones with a customer stage make up the CRM overview."""

    __tablename__ = "partners"
    __table_args__ = (
        UniqueConstraint("company_id", "number"),
        ForeignKeyConstraint(["company_id", "owner_id"], ["users.company_id", "users.id"]),
        CheckConstraint(check_in("customer_stage", CustomerStage), name="customer_stage"),
        CheckConstraint("credit_limit >= 0", name="credit_limit_not_negative"),
        CheckConstraint("number > 0", name="number_positive"),
        Index(
            "uq_partners_company_id_accounting_ref",
            "company_id",
            "accounting_ref",
            unique=True,
        ),
        Index("ix_partners_company_id_owner_id", "company_id", "owner_id"),
        Index("ix_partners_company_id_customer_stage", "company_id", "customer_stage"),
        *(
            Index(f"ix_partners_list_{column}", "company_id", column, "number")
            for column in LIST_SORT_COLUMNS
        ),
        *(
            Index(
                f"ix_partners_overview_{column}",
                "company_id",
                column,
                "number",
                postgresql_where=text("customer_stage IS NOT NULL"),
                sqlite_where=text("customer_stage IS NOT NULL"),
            )
            for column in OVERVIEW_SORT_COLUMNS
        ),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    vat_id: Mapped[str | None] = mapped_column(String(50))
    currency: Mapped[str] = mapped_column(String(3))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(50))
    website: Mapped[str | None] = mapped_column(String(500))
    owner_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # The owner's name, kept beside owner_id so the overview can sort by it on an index.
    # Written with owner_id; user names cannot change through the API.
    owner_name: Mapped[str | None] = mapped_column(String(200))
    customer_stage: Mapped[str | None] = mapped_column(String(16))
    # The stage's place in the stage order, for sorting; computed by the database.
    stage_rank: Mapped[int | None] = mapped_column(
        SmallInteger, Computed(STAGE_RANK_SQL, persisted=True)
    )
    credit_limit: Mapped[Decimal | None] = mapped_column(Money)
    accounting_ref: Mapped[str | None] = mapped_column(String(50))
    # Filled by the accounting adapter and by sales orders; read-only through the API.
    debtor_balance: Mapped[Decimal | None] = mapped_column(Money)
    debtor_balance_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    credit_limit_exceeded: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    uninvoiced_total: Mapped[Decimal] = mapped_column(
        Money, default=Decimal("0.00"), server_default=text("0")
    )
    latest_sales_delivery_date: Mapped[date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __mapper_args__ = {"version_id_col": version}

    locations: Mapped[list["PartnerLocation"]] = relationship(
        back_populates="partner",
        cascade="all, delete-orphan",
        order_by="PartnerLocation.position",
        passive_deletes=True,
    )
    tags: Mapped[list[Tag]] = relationship(
        secondary="partner_tags",
        primaryjoin="and_(Partner.company_id == PartnerTag.company_id, "
        "Partner.id == PartnerTag.partner_id)",
        secondaryjoin="and_(Tag.company_id == PartnerTag.company_id, Tag.id == PartnerTag.tag_id)",
        order_by=Tag.name_key,
        viewonly=True,
    )
    owner: Mapped[User | None] = relationship(
        primaryjoin=lambda: and_(
            foreign(Partner.company_id) == User.company_id, foreign(Partner.owner_id) == User.id
        ),
        viewonly=True,
    )


class PartnerLocation(Base):
    """An address of a partner; when a partner has locations, exactly one is primary."""

    __tablename__ = "partner_locations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["company_id", "partner_id"],
            ["partners.company_id", "partners.id"],
            ondelete="CASCADE",
        ),
        Index("ix_partner_locations_company_id_partner_id", "company_id", "partner_id"),
        Index(
            "uq_partner_locations_one_primary",
            "company_id",
            "partner_id",
            unique=True,
            sqlite_where=text("is_primary"),
            postgresql_where=text("is_primary"),
        ),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(500))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)

    partner: Mapped[Partner] = relationship(back_populates="locations")


class PartnerTag(Base):
    __tablename__ = "partner_tags"
    __table_args__ = (
        ForeignKeyConstraint(
            ["company_id", "partner_id"],
            ["partners.company_id", "partners.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["company_id", "tag_id"], ["tags.company_id", "tags.id"], ondelete="CASCADE"
        ),
        Index("ix_partner_tags_company_id_tag_id", "company_id", "tag_id"),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    tag_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


class StageChange(Base):
    """One change of a partner's customer stage: the stage history."""

    __tablename__ = "stage_changes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["company_id", "partner_id"],
            ["partners.company_id", "partners.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(["company_id", "changed_by_id"], ["users.company_id", "users.id"]),
        CheckConstraint(check_in("reason", StageChangeReason), name="reason"),
        Index("ix_stage_changes_company_id_partner_id_seq", "company_id", "partner_id", "seq"),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Orders the history: the partner's version right after the change (strictly increasing).
    seq: Mapped[int] = mapped_column(Integer)
    partner_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    previous_stage: Mapped[str | None] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    changed_by_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)

    changed_by: Mapped[User | None] = relationship(
        primaryjoin=lambda: and_(
            foreign(StageChange.company_id) == User.company_id,
            foreign(StageChange.changed_by_id) == User.id,
        ),
        viewonly=True,
    )
