import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow
from app.models.enums import CreditCheck, CreditEnforcement, check_in


class Company(Base):
    """A tenant: one food producer. Everything else belongs to exactly one company."""

    __tablename__ = "companies"
    __table_args__ = (
        CheckConstraint(check_in("credit_check", CreditCheck), name="credit_check"),
        CheckConstraint(
            check_in("credit_enforcement", CreditEnforcement), name="credit_enforcement"
        ),
        CheckConstraint(
            "dormancy_days IS NULL OR dormancy_days BETWEEN 1 AND 3650", name="dormancy_days"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    base_currency: Mapped[str] = mapped_column(String(3))
    credit_check: Mapped[str] = mapped_column(String(32), default=CreditCheck.balance.value)
    credit_enforcement: Mapped[str] = mapped_column(
        String(16), default=CreditEnforcement.warn.value
    )
    # An active customer with no (non-cancelled) order for this many days becomes inactive.
    dormancy_days: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __mapper_args__ = {"version_id_col": version}


class NumberSequence(Base):
    """Per-company counters for numbers that only ever grow and are never reused."""

    __tablename__ = "number_sequences"

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)
