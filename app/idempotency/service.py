"""``Idempotency-Key``: a repeat with the same key and body replays the first answer.

The route renders its result into an :class:`~app.core.answer.Answer` once; the service calls
``Idempotency.record(session, result)`` right before its commit, which renders and stores that
very answer in the same transaction as the change it reports (both are committed or neither
is), and the route then returns it. Two requests racing with one key: the second one's insert
of the key waits for the first transaction and then fails, its own change is rolled back, and
it replays the first answer. A key is kept at least 24 hours, per company. A dry run records
its answer too (and commits nothing else).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.answer import Answer, serialize
from app.core.errors import AppError, FieldError, ValidationFailed
from app.db.base import utcnow
from app.models import IdempotencyKey

RETENTION = timedelta(hours=48)
REPLAYED_HEADER = "Idempotent-Replayed"

T = TypeVar("T")


class IdempotencyRace(AppError):
    """Another request with the same key committed first."""

    status, title, default_code = 409, "Conflict", "idempotency_race"


@dataclass
class Idempotency(Generic[T]):
    """A keyed request that has no stored answer yet: the service records its result here."""

    company_id: uuid.UUID
    key: str
    fingerprint: str
    render: Callable[[T], Answer]
    answer: Answer | None = field(default=None, init=False)

    def record(self, session: Session, result: T) -> None:
        """Render the answer and store it; call right before the use-case commits."""
        answer = self.render(result)
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
                status_code=answer.status,
                location=answer.headers.get("Location"),
                headers=json.dumps(answer.headers, separators=(",", ":")),
                body=answer.body.decode(),
            )
        )
        try:
            session.flush()
        except IntegrityError as exc:
            session.rollback()
            raise IdempotencyRace("A request with this Idempotency-Key is being answered.") from exc
        self.answer = answer


def fingerprint(
    method: str, path: str, body: BaseModel | bytes, params: Mapping[str, str] | None = None
) -> str:
    """What makes two requests with one key the same request: the method, the path, the body
    (a parsed model, or the raw bytes of a file upload) and, when given, the query parameters
    and the media type that decide what the body means."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    if params:
        digest.update(json.dumps(dict(sorted(params.items())), separators=(",", ":")).encode())
        digest.update(b"\n")
    digest.update(body if isinstance(body, bytes) else serialize(body))
    return digest.hexdigest()


def _replay(stored: IdempotencyKey) -> Answer:
    if stored.headers is not None:
        headers: dict[str, str] = json.loads(stored.headers)
    else:  # stored before headers were kept
        headers = {"Location": stored.location} if stored.location else {}
    return Answer(stored.status_code, stored.body.encode(), {**headers, REPLAYED_HEADER: "true"})


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
    session: Session,
    company_id: uuid.UUID,
    key: str | None,
    fingerprint: str,
    render: Callable[[T], Answer],
    execute: Callable[[Idempotency[T] | None], T],
) -> Answer:
    """Answer a request: without a key, execute and render; with one, replay a stored answer
    or execute, and return the very answer the service recorded."""
    if key is None:
        return render(execute(None))
    stored = _stored(session, company_id, key)
    if stored is None:
        idem = Idempotency(company_id, key, fingerprint, render)
        try:
            execute(idem)
        except IdempotencyRace:
            stored = _stored(session, company_id, key)
            if stored is None:
                raise
        else:
            if idem.answer is None:
                raise RuntimeError("the use-case did not record its answer for Idempotency-Key")
            return idem.answer
    if stored.fingerprint != fingerprint:
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
