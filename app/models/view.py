import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, ForeignKeyConstraint, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class SavedView(Base):
    """A saved view of the CRM overview: its filters, sort and columns, private to its owner
    or shared with the whole company."""

    __tablename__ = "saved_views"
    __table_args__ = (
        ForeignKeyConstraint(
            ["company_id", "owner_id"], ["users.company_id", "users.id"], ondelete="CASCADE"
        ),
        Index("ix_saved_views_company_id_owner_id", "company_id", "owner_id"),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    name: Mapped[str] = mapped_column(String(200))
    filters: Mapped[str] = mapped_column(Text, default="{}")  # JSON object of query parameters
    sort: Mapped[str | None] = mapped_column(String(64))
    columns: Mapped[str | None] = mapped_column(Text)  # JSON list of overview fields; null: all
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
