"""The ``Idempotency-Key`` header of a route, and the one way a keyed route answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.auth.dependencies import Principal, SessionDep, authenticate
from app.core.answer import Answer
from app.core.http import respond
from app.idempotency import service
from app.idempotency.service import Idempotency

T = TypeVar("T")

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


@dataclass(frozen=True)
class KeyedRequest:
    method: str
    path: str
    key: str | None
    session: Session
    principal: Principal

    def answer(
        self,
        body: BaseModel | bytes,
        *,
        render: Callable[[T], Answer],
        execute: Callable[[Idempotency[T] | None], T],
        params: Mapping[str, str] | None = None,
    ) -> Response:
        """Execute the use-case (or replay the first answer to this key) and answer with what
        ``render`` made of its result: the same bytes whether fresh or replayed. ``body`` is
        the parsed body, or the raw bytes of an uploaded file with the ``params`` (query
        parameters, media type) that say what to do with it."""
        return respond(
            service.run(
                session=self.session,
                company_id=self.principal.company_id,
                key=self.key,
                fingerprint=service.fingerprint(self.method, self.path, body, params),
                render=render,
                execute=execute,
            )
        )


def keyed_request(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(authenticate)],
    idempotency_key: IdempotencyKeyHeader = None,
) -> KeyedRequest:
    return KeyedRequest(
        method=request.method,
        path=request.url.path,
        key=idempotency_key,
        session=session,
        principal=principal,
    )


Keyed = Annotated[KeyedRequest, Depends(keyed_request)]
