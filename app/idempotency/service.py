"""``Idempotency-Key``: a repeat with the same key and body replays the first answer.

The first answer is stored in the same transaction as the change it reports, so either both
are committed or neither is. Two requests racing with one key: the second one's insert of the
key waits for the first transaction and then fails, its own change is rolled back, and it
replays the first answer. A key is kept at least 24 hours, per company.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Header, Request, Response
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import AppError, FieldError, ValidationFailed
from app.core.http import etag_of, serialize
from app.db.base import utcnow
from app.models import IdempotencyKey

RETENTION = timedelta(hours=48)

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Repeat the request with the same key to get the first answer again",
    ),
]


class IdempotencyRace(AppError):
    """Another request with the same key committed first."""

    status, title, default_code = 409, "Conflict", "idempotency_race"


@dataclass(frozen=True)
class Idempotency:
    """A keyed request that has no stored answer yet."""

    company_id: uuid.UUID
    key: str
    fingerprint: str

    def record(
        self, session: Session, model: BaseModel, *, status_code: int, location: str | None = None
    ) -> None:
        """Store the answer; call right before the use-case commits."""
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.company_id == self.company_id,
                IdempotencyKey.created_at < utcnow() - RETENTION,
            )
        )
        session.add(
            IdempotencyKey(
                company_id=self.company_id,
                key=self.key,
                fingerprint=self.fingerprint,
                status_code=status_code,
                location=location,
                body=serialize(model).decode(),
            )
        )
        try:
            session.flush()
        except IntegrityError as exc:
            session.rollback()
            raise IdempotencyRace("A request with this Idempotency-Key is being answered.") from exc


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    canonical = f"{method} {path}\n".encode() + serialize(body)
    return hashlib.sha256(canonical).hexdigest()


def _replay(stored: IdempotencyKey) -> Response:
    body = stored.body.encode()
    headers = {"Idempotent-Replayed": "true", "ETag": etag_of(body)}
    if stored.location:
        headers["Location"] = stored.location
    return Response(
        body, status_code=stored.status_code, media_type="application/json", headers=headers
    )


def _stored(session: Session, company_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.company_id == company_id,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at >= utcnow() - RETENTION,
        )
    )


def run(
    *,
    request: Request,
    session: Session,
    company_id: uuid.UUID,
    key: str | None,
    body: BaseModel,
    execute: Callable[[Idempotency | None], Response],
) -> Response:
    """Answer a keyed request: replay a stored answer, or execute and store this one."""
    if key is None:
        return execute(None)
    print_ = fingerprint(request.method, request.url.path, body)
    stored = _stored(session, company_id, key)
    if stored is None:
        try:
            return execute(Idempotency(company_id, key, print_))
        except IdempotencyRace:
            stored = _stored(session, company_id, key)
            if stored is None:
                raise
    if stored.fingerprint != print_:
        raise ValidationFailed(
            "This Idempotency-Key was used with another request body; use a new key.",
            code="idempotency_key_reused",
            errors=[
                FieldError(
                    ("header", "Idempotency-Key"),
                    "used for another request",
                    "idempotency_key_reused",
                )
            ],
        )
    return _replay(stored)
