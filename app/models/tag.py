import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class Tag(Base):
    """A company's own label; names are unique per company, case-insensitively."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("company_id", "name_key"),)

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(50))
    name_key: Mapped[str] = mapped_column(String(100))  # lowercasing can double a name
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
