"""Visma eAccounting (API v2; Visma eEkonomi, Spiris): ``UnpaidInvoicesAmount`` per customer,
"the total amount of unpaid invoices for the customer", matched by ``CustomerNumber``; inactive
customers are kept. Pages are OData-style (``$page``, ``$pagesize``), sorted by customer number
so that they stay stable while the list is read.

Sources and what is unconfirmed: ``design/accounting-providers.md``.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from app.accounting.providers.base import (
    DebtorBalance,
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

NAME = "visma-eaccounting"
LABEL = "Visma eAccounting"
PAGE_SIZE = 500


class VismaProvider(OAuthProvider):
    label = LABEL
    log_ids = ("ErrorId",)

    def check_credentials(self, *, deadline: float | None = None) -> None:
        self.start(deadline)
        self.get_page("v2/customers?$pagesize=1", classify=_no_api_module)

    def balances(self, *, deadline: float | None = None) -> Iterator[DebtorBalance]:
        self.start(deadline)
        for item in numbered_pages(LABEL, self._fetch):
            if not isinstance(item, dict):
                raise ProviderError(
                    "malformed_response", f"{LABEL} sent a customer that is no object."
                )
            if "UnpaidInvoicesAmount" not in item:
                raise ProviderError(
                    "malformed_response", f"{LABEL} sent a customer without UnpaidInvoicesAmount."
                )
            amount = item["UnpaidInvoicesAmount"]
            yield self.record(
                item.get("CustomerNumber"),
                0 if amount is None else amount,  # null: nothing unpaid
                name=item.get("Name"),
                what="a customer",
            )

    def _fetch(self, page: int) -> NumberedPage:
        body = self.get_page(
            f"v2/customers?$page={page}&$pagesize={PAGE_SIZE}&$orderby=CustomerNumber",
            classify=_no_api_module,
        )
        meta = body.get("Meta")
        if not isinstance(meta, dict):
            raise ProviderError("malformed_response", f"{LABEL} sent a page without its Meta.")
        size = meta.get("PageSize")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            size = PAGE_SIZE
        return NumberedPage(
            items=list_field(LABEL, body, "Data"),
            page_count=count_field(LABEL, meta, "TotalNumberOfPages"),
            total=count_field(LABEL, meta, "TotalNumberOfResults"),
            # The answer's page size, when it is one: the largest it serves is not documented.
            size=size,
        )


def _no_api_module(response: httpx.Response) -> None:
    """403 "No access to module: api_standard": the API is not activated for the company."""
    if response.status_code == 403 and "api_standard" in response.text:
        raise ProviderError(
            "invalid_credentials",
            f"{LABEL} refused: the API (module api_standard) is not activated for this company.",
        )


SPEC = ProviderSpec(
    name=NAME,
    label=LABEL,
    base_url="https://eaccountingapi.vismaonline.com",
    token_url="https://identity.vismaonline.com/connect/token",  # noqa: S106 (a URL)
    credentials=("client_id", "client_secret", "refresh_token"),
    open=VismaProvider,
)
