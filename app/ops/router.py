"""Operations: liveness, readiness (database reachable and migrated), Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.auth.dependencies import get_database
from app.auth.ratelimit import RateLimiter
from app.core.http import json_response
from app.db.migrations import head_revision
from app.db.session import Database

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "not_ready"] = Field(
        description="degraded: serving, but a shared part is down (see the other fields)"
    )
    database: Literal["ok", "unreachable", "not_migrated"]
    revision: str | None
    rate_limits: Literal["shared", "per_process", "degraded"] = Field(
        description="shared: counted in Redis across processes; per_process: no Redis "
        "configured; degraded: Redis configured but unreachable, counted per process meanwhile"
    )
    replica: Literal["none", "ok", "down"] = Field(
        default="none",
        description="none: no read replica configured; ok: the overview, exports, summary and "
        "lists read from it; down: configured but not answering, those reads go to the primary "
        "meanwhile",
    )


@router.get("/healthz", response_model=Health, operation_id="get_health")
def get_health() -> Response:
    return json_response(Health(status="ok"))


@router.get(
    "/readyz",
    response_model=Readiness,
    operation_id="get_readiness",
    responses={503: {"description": "Not ready", "model": Readiness}},
)
def get_readiness(request: Request, db: Annotated[Database, Depends(get_database)]) -> Response:
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    limits = limiter.mode if limiter is not None else "per_process"
    replica = db.replica_state()
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except SQLAlchemyError:
                revision = None  # reachable, never migrated
    except SQLAlchemyError:
        return json_response(
            Readiness(
                status="not_ready",
                database="unreachable",
                revision=None,
                rate_limits=limits,
                replica=replica,
            ),
            status_code=503,
        )
    if revision != head_revision():
        return json_response(
            Readiness(
                status="not_ready",
                database="not_migrated",
                revision=revision,
                rate_limits=limits,
                replica=replica,
            ),
            status_code=503,
        )
    degraded = limits == "degraded" or replica == "down"
    status: Literal["ready", "degraded"] = "degraded" if degraded else "ready"
    return json_response(
        Readiness(
            status=status, database="ok", revision=revision, rate_limits=limits, replica=replica
        )
    )


@router.get(
    "/metrics",
    operation_id="get_metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def get_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
