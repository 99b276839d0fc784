"""The feed: every committed event of the company exactly once, in commit order.

A position is an event number. One read takes the company's event counter first (every
number up to it belongs to a committed transaction: the counter commits with its events, see
``app.events.outbox``), then the events after the cursor up to that number. So a page never
skips an event that commits later: an event numbered above the counter read is not handed
out yet, and one at or below it is already visible. ``next_cursor`` is after the last item,
or the counter read when the page is not full (there is nothing committed in between).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.errors import FieldError, Gone, ValidationFailed
from app.db.base import utcnow
from app.events import repository
from app.events.repository import EventRepository
from app.events.schemas import EventPage, EventRead
from app.models import Event

_CURSOR_VERSION = 1
_MAC_BYTES = 12


def _key(secret_key: str) -> bytes:
    return hashlib.sha256(b"crm-overview feed cursor\x00" + secret_key.encode()).digest()


def _mac(secret_key: str, company_id: bytes, payload: bytes) -> bytes:
    return hmac.new(_key(secret_key), company_id + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(secret_key: str, principal: Principal, position: int) -> str:
    payload = json.dumps({"v": _CURSOR_VERSION, "p": position}, separators=(",", ":")).encode()
    mac = _mac(secret_key, principal.company_id.bytes, payload)
    return f"{_b64(payload)}.{_b64(mac)}"


def _invalid(detail: str) -> ValidationFailed:
    return ValidationFailed(
        detail,
        code="invalid_cursor",
        errors=[FieldError(("query", "cursor"), detail, "invalid_cursor")],
    )


def decode_cursor(secret_key: str, principal: Principal, cursor: str) -> int:
    """The position in a cursor this company's feed handed out; 422 for anything else (a
    changed character, another company's cursor)."""
    try:
        payload_text, mac_text = cursor.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
        if not hmac.compare_digest(mac, _mac(secret_key, principal.company_id.bytes, payload)):
            raise ValueError("signature")
        data = json.loads(payload)
        position = data["p"]
        if data.get("v") != _CURSOR_VERSION or type(position) is not int or position < 0:
            raise ValueError("content")
    except (ValueError, TypeError, KeyError, UnicodeError):
        raise _invalid("The cursor is not one this company's event feed handed out.") from None
    return position


@dataclass(frozen=True)
class FeedPage:
    events: list[Event]
    position: int  # where the next page starts


def read(
    *,
    session: Session,
    principal: Principal,
    position: int | None,
    limit: int,
    types: Sequence[str] | None,
    retention_days: int,
) -> FeedPage:
    repo = EventRepository(session, principal.company_id)
    last = repo.last_seq()  # first: everything up to it is committed
    oldest = repo.oldest_seq()
    if position is None:
        position = oldest - 1 if oldest is not None else last
    elif position > last:
        raise _invalid("The cursor points past the end of this company's event feed.")
    elif position < (oldest - 1 if oldest is not None else last):
        raise Gone(
            f"The cursor points to events older than the {retention_days} days kept; start "
            "again without a cursor (from the oldest event kept) and re-read the current "
            "state.",
            code="cursor_expired",
        )
    events = repo.after(position, upto=last, limit=limit, types=types)
    return FeedPage(events, events[-1].seq if len(events) == limit else last)


def envelope(event: Event, company_slug: str) -> EventRead:
    return EventRead.model_construct(
        id=event.id,
        type=event.type,
        occurred_at=event.occurred_at,
        company=company_slug,
        data=json.loads(event.data),
    )


def page(principal: Principal, secret_key: str, result: FeedPage) -> EventPage:
    return EventPage.model_construct(
        items=[envelope(e, principal.company.slug) for e in result.events],
        next_cursor=encode_cursor(secret_key, principal, result.position),
    )


def prune(session: Session, retention_days: int) -> int:
    """Drop the events older than the retention, every company's (commits)."""
    deleted = repository.prune(session, utcnow() - timedelta(days=retention_days))
    session.commit()
    return deleted
