import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow
from app.models.enums import SyncRunStatus, check_in


class AccountingConnection(Base):
    """A company's accounting system; its credentials are stored encrypted."""

    __tablename__ = "accounting_connections"

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(500))
    token_url: Mapped[str | None] = mapped_column(String(500))  # OAuth2 providers only
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    credentials: Mapped[str] = mapped_column(Text)  # Fernet token of a JSON object
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncRun(Base):
    """One refresh of every debtor balance from the accounting system."""

    __tablename__ = "accounting_sync_runs"
    __table_args__ = (
        CheckConstraint(check_in("status", SyncRunStatus), name="status"),
        # At most one running refresh per company, whichever process started it.
        Index(
            "uq_accounting_sync_runs_one_running",
            "company_id",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        Index("ix_accounting_sync_runs_company_id_started_at", "company_id", "started_at"),
    )

    company_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(16), default=SyncRunStatus.running.value)
    trigger: Mapped[str] = mapped_column(String(16))
    runner: Mapped[str] = mapped_column(String(200))  # host:pid of the process running it
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    unmatched: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(1000))
    warnings: Mapped[str | None] = mapped_column(Text)  # a JSON list of SyncWarning
