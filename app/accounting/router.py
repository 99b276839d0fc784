"""Accounting routes: the connection (admin), sync runs and balance pushes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Response

from app.accounting import service
from app.accounting.repository import RUN_SORTING
from app.accounting.schemas import (
    READ_MODELS,
    BalancePush,
    BalancePushResult,
    ConnectionPut,
    ConnectionRead,
    SyncRunRead,
)
from app.auth.dependencies import Admin, Reader, SessionDep, SettingsDep, Writer, get_database
from app.core.answer import Answer
from app.core.config import Settings
from app.core.errors import problem_responses
from app.core.http import json_response, location
from app.core.pagination import Page, PageRequest, list_params, page_response
from app.db.session import Database
from app.idempotency.dependencies import Keyed
from app.models import AccountingConnection, SyncRun
from app.models.enums import SyncTrigger

router = APIRouter(prefix="/api/v1/accounting", tags=["accounting"])


def _connection(connection: AccountingConnection, settings: Settings) -> Any:
    return READ_MODELS[connection.provider].model_validate(
        service.connection_read(connection, settings.secret_key)
    )


def run_read(run: SyncRun) -> SyncRunRead:
    return SyncRunRead.of(run)


@router.get(
    "/connection",
    response_model=ConnectionRead,
    operation_id="get_accounting_connection",
    responses=problem_responses(401, 403, 404),
)
def get_accounting_connection(
    principal: Admin, session: SessionDep, settings: SettingsDep
) -> Response:
    connection = service.get_connection(session=session, company_id=principal.company_id)
    return json_response(_connection(connection, settings))


@router.put(
    "/connection",
    response_model=ConnectionRead,
    operation_id="put_accounting_connection",
    responses=problem_responses(401, 403, 409, 413, 422),
)
def put_accounting_connection(
    principal: Admin, session: SessionDep, settings: SettingsDep, body: ConnectionPut
) -> Response:
    """Connect the accounting system. Credentials are stored encrypted and never returned."""
    connection = service.put_connection(
        session=session,
        company_id=principal.company_id,
        data=body,
        secret_key=settings.secret_key,
        outbound=settings.outbound_policy,
    )
    return json_response(_connection(connection, settings))


@router.post(
    "/sync",
    status_code=202,
    response_model=SyncRunRead,
    operation_id="start_accounting_sync",
    responses=problem_responses(401, 403, 409),
)
def start_accounting_sync(
    principal: Writer,
    session: SessionDep,
    settings: SettingsDep,
    db: Annotated[Database, Depends(get_database)],
    background: BackgroundTasks,
) -> Response:
    """Start refreshing every debtor balance; follow it at the run's Location."""
    run = service.start_run(
        session=session, company_id=principal.company_id, trigger=SyncTrigger.api, settings=settings
    )
    background.add_task(
        service.execute_run,
        db=db,
        company_id=principal.company_id,
        run_id=run.id,
        settings=settings,
    )
    return json_response(
        run_read(run), status_code=202, headers=location(f"{router.prefix}/sync-runs/{run.id}")
    )


SyncRunList = Annotated[PageRequest[None], Depends(list_params(RUN_SORTING))]


@router.get(
    "/sync-runs",
    response_model=Page[SyncRunRead],
    operation_id="list_accounting_sync_runs",
    responses=problem_responses(401, 403, 422),
)
def list_accounting_sync_runs(
    principal: Reader, session: SessionDep, page: SyncRunList
) -> Response:
    result = service.list_runs(session=session, company_id=principal.company_id, page=page)
    return page_response(result, [run_read(r) for r in result.rows])


@router.get(
    "/sync-runs/{run_id}",
    response_model=SyncRunRead,
    operation_id="get_accounting_sync_run",
    responses=problem_responses(401, 403, 404, 422),
)
def get_accounting_sync_run(principal: Reader, session: SessionDep, run_id: uuid.UUID) -> Response:
    run = service.get_run(session=session, company_id=principal.company_id, run_id=run_id)
    return json_response(run_read(run))


@router.post(
    "/balances",
    response_model=BalancePushResult,
    operation_id="push_accounting_balances",
    responses=problem_responses(401, 403, 413, 422),
)
def push_accounting_balances(
    principal: Writer, session: SessionDep, body: BalancePush, keyed: Keyed
) -> Response:
    """Store balances pushed by an integration, all or nothing; report refs with no partner.

    A balance older (`as_of`) than the one stored is not applied (counted as unchanged)."""
    return keyed.answer(
        body,
        render=Answer.json,
        execute=lambda idem: service.push_balances(
            session=session, company_id=principal.company_id, data=body, idempotency=idem
        ),
    )
