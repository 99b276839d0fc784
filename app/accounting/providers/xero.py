"""Xero (Accounting API 2.0): ``Balances.AccountsReceivable.Outstanding`` per contact, with the
organisation in the ``xero-tenant-id`` header of every call. A contact matches the partner whose
``accounting_ref`` is its ``ContactNumber`` when it has one, else its ``ContactID``. Xero does
not convert ``Balances`` to the organisation's currency: each record carries the contact's
``DefaultCurrency``, and a run warns about balances in another currency than the company's.
A 429 for the daily limit fails at once (the wait is hours); calls never overlap.

Sources and what is unconfirmed: ``design/accounting-providers.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from app.accounting.providers.base import (
    Connection,
    DebtorBalance,
    ProviderContext,
    ProviderError,
    ProviderSpec,
)
from app.accounting.providers.oauth import (
    NumberedPage,
    OAuthProvider,
    count_field,
    list_field,
    numbered_pages,
)

NAME = "xero"
LABEL = "Xero"
PAGE_SIZE = 1000


class XeroProvider(OAuthProvider):
    label = LABEL
    log_ids = ("Instance", "ErrorNumber")

    def __init__(self, connection: Connection, context: ProviderContext) -> None:
        super().__init__(connection, context)
        self._tenant = {"xero-tenant-id": connection.credentials["tenant_id"]}

    def check_credentials(self, *, deadline: float | None = None) -> None:
        self.start(deadline)
        connections = self.oauth.get_json("connections", classify=_limits)
        tenants = (
            {c.get("tenantId") for c in connections if isinstance(c, dict)}
            if isinstance(connections, list)
            else set()
        )
        if self._tenant["xero-tenant-id"] not in tenants:
            raise ProviderError(
                "invalid_credentials",
                "Xero: the connection's tenant_id is not an organisation this grant covers.",
            )

    def balances(self, *, deadline: float | None = None) -> Iterator[DebtorBalance]:
        self.start(deadline)
        for item in numbered_pages(LABEL, self._fetch):
            if not isinstance(item, dict):
                raise ProviderError("malformed_response", "Xero sent a contact that is no object.")
            number = item.get("ContactNumber")
            ref = (
                number.strip()
                if isinstance(number, str) and number.strip()
                else item.get("ContactID")
            )
            yield self.record(
                ref,
                _outstanding(item.get("Balances")),
                name=item.get("Name"),
                currency=item.get("DefaultCurrency"),
                what="a contact",
            )

    def _fetch(self, page: int) -> NumberedPage:
        body = self.get_page(
            f"api.xro/2.0/Contacts?page={page}&pageSize={PAGE_SIZE}&order=ContactID",
            headers=self._tenant,
            classify=_limits,
        )
        paging = body.get("pagination")
        if not isinstance(paging, dict):
            raise ProviderError("malformed_response", "Xero sent a page without its pagination.")
        return NumberedPage(
            items=list_field(LABEL, body, "Contacts"),
            page_count=count_field(LABEL, paging, "pageCount"),
            total=count_field(LABEL, paging, "itemCount"),
            size=_served_size(paging.get("pageSize")),
        )


def _served_size(value: Any) -> int | None:
    """The page size Xero says it served (it may serve fewer than asked)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _outstanding(balances: Any) -> Any:
    """``Balances.AccountsReceivable.Outstanding``; a contact without them owes nothing."""
    if balances is None:
        return 0
    if not isinstance(balances, dict):
        raise ProviderError("malformed_response", "Xero sent Balances that are no object.")
    receivable = balances.get("AccountsReceivable")
    if receivable is None:
        return 0
    if not isinstance(receivable, dict):
        raise ProviderError("malformed_response", "Xero sent AccountsReceivable that is no object.")
    outstanding = receivable.get("Outstanding")
    return 0 if outstanding is None else outstanding


def _limits(response: httpx.Response) -> None:
    """The daily limit: waiting it out takes hours, so the run fails now and says so."""
    if response.status_code == 429 and (
        response.headers.get("X-Rate-Limit-Problem", "").strip().lower() == "day"
    ):
        raise ProviderError(
            "rate_limited",
            "Xero's daily call limit for this organisation is used up; the refresh can run "
            "again tomorrow.",
        )


SPEC = ProviderSpec(
    name=NAME,
    label=LABEL,
    base_url="https://api.xero.com",
    token_url="https://identity.xero.com/connect/token",  # noqa: S106 (a URL)
    credentials=("client_id", "client_secret", "refresh_token", "tenant_id"),
    open=XeroProvider,
)
