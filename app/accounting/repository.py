"""Accounting SQL: the connection, sync runs, and applying balances to partners."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, select, text, update
from sqlalchemy.orm import Session

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.db.base import utcnow
from app.models import AccountingConnection, Partner, SyncRun
from app.models.enums import SyncRunStatus

_STARTED = SortField.of(SyncRun.started_at)
_ID = SortField.of(SyncRun.id)
RUN_SORTING = Sorting(fields={"started_at": _STARTED}, tiebreak=_ID, default="-started_at")


@dataclass
class AccountingRepository:
    session: Session
    company_id: uuid.UUID

    def connection(self, *, for_update: bool = False) -> AccountingConnection | None:
        stmt = select(AccountingConnection).where(
            AccountingConnection.company_id == self.company_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalar(stmt)

    def run(self, run_id: uuid.UUID) -> SyncRun | None:
        return self.session.scalar(
            select(SyncRun).where(SyncRun.company_id == self.company_id, SyncRun.id == run_id)
        )

    def runs(self, page: PageRequest) -> RawPage[SyncRun]:
        stmt = select(SyncRun).where(SyncRun.company_id == self.company_id)
        return paginate(self.session, stmt, sorting=RUN_SORTING, request=page)

    def running(self) -> list[SyncRun]:
        return list(
            self.session.scalars(
                select(SyncRun).where(
                    SyncRun.company_id == self.company_id,
                    SyncRun.status == SyncRunStatus.running.value,
                )
            )
        )

    def partners_with_refs(self, refs: list[str] | None = None) -> list[Any]:
        """Partners with an accounting_ref (only these refs, when given), locked in number order:
        every writer that locks several partners takes them in that order, so none deadlock."""
        conditions = [Partner.company_id == self.company_id, Partner.accounting_ref.is_not(None)]
        if refs is not None:
            conditions.append(Partner.accounting_ref.in_(refs))
        return list(
            self.session.execute(
                select(
                    Partner.id,
                    Partner.number,
                    Partner.version,
                    Partner.accounting_ref,
                    Partner.debtor_balance,
                    Partner.credit_limit,
                    Partner.uninvoiced_total,
                    Partner.credit_limit_exceeded,
                    Partner.debtor_balance_synced_at,
                )
                .where(*conditions)
                .order_by(Partner.number)
                .with_for_update()
            ).all()
        )

    def write_balances(self, rows: list[dict[str, Any]], synced_at: datetime) -> None:
        """Balance, sync time and credit state per partner: on PostgreSQL one UPDATE ... FROM
        unnest(arrays) per chunk of 10k (100k partners: 11 s instead of 35 s as an
        executemany), elsewhere one executemany UPDATE."""
        if not rows:
            return
        now = utcnow()
        if self.session.get_bind().dialect.name == "postgresql":
            for start in range(0, len(rows), _SET_CHUNK):
                chunk = rows[start : start + _SET_CHUNK]
                self.session.execute(
                    text(_WRITE_BALANCES),
                    {
                        "company_id": self.company_id,
                        "ids": [r["pid"] for r in chunk],
                        "balances": [r["balance"] for r in chunk],
                        "exceeded": [r["exceeded"] for r in chunk],
                        "changed": [r["changed"] for r in chunk],
                        "synced_at": synced_at,
                        "now": now,
                    },
                )
            return
        table: Any = Partner.__table__
        stmt = (
            update(table)
            .where(table.c.company_id == self.company_id, table.c.id == bindparam("pid"))
            .values(
                debtor_balance=bindparam("balance", type_=table.c.debtor_balance.type),
                debtor_balance_synced_at=bindparam(
                    "synced_at", type_=table.c.debtor_balance_synced_at.type
                ),
                credit_limit_exceeded=bindparam("exceeded"),
                version=table.c.version + 1,
                updated_at=case(
                    (bindparam("changed"), bindparam("now", type_=table.c.updated_at.type)),
                    else_=table.c.updated_at,
                ),
            )
        )
        for start in range(0, len(rows), 5000):
            self.session.execute(
                stmt,
                [{**r, "synced_at": synced_at, "now": now} for r in rows[start : start + 5000]],
            )


_SET_CHUNK = 10_000
_WRITE_BALANCES = """
UPDATE partners AS p
SET debtor_balance = v.balance,
    debtor_balance_synced_at = :synced_at,
    credit_limit_exceeded = v.exceeded,
    version = p.version + 1,
    updated_at = CASE WHEN v.changed THEN :now ELSE p.updated_at END
FROM unnest(CAST(:ids AS uuid[]), CAST(:balances AS numeric[]), CAST(:exceeded AS boolean[]),
            CAST(:changed AS boolean[])) AS v(id, balance, exceeded, changed)
WHERE p.company_id = :company_id AND p.id = v.id
"""
