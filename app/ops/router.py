"""Operations: liveness, readiness (database reachable and migrated), Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.auth.dependencies import get_database
from app.core.http import json_response
from app.db.migrations import head_revision
from app.db.session import Database

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    database: Literal["ok", "unreachable", "not_migrated"]
    revision: str | None


@router.get("/healthz", response_model=Health, operation_id="get_health")
def get_health() -> Response:
    return json_response(Health(status="ok"))


@router.get(
    "/readyz",
    response_model=Readiness,
    operation_id="get_readiness",
    responses={503: {"description": "Not ready", "model": Readiness}},
)
def get_readiness(db: Annotated[Database, Depends(get_database)]) -> Response:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except SQLAlchemyError:
                revision = None  # reachable, never migrated
    except SQLAlchemyError:
        return json_response(
            Readiness(status="not_ready", database="unreachable", revision=None), status_code=503
        )
    if revision != head_revision():
        return json_response(
            Readiness(status="not_ready", database="not_migrated", revision=revision),
            status_code=503,
        )
    return json_response(Readiness(status="ready", database="ok", revision=revision))


@router.get(
    "/metrics",
    operation_id="get_metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def get_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
