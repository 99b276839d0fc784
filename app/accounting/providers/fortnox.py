"""Fortnox (API v3): a customer's balance is the sum of the remaining ``Balance`` of its unpaid
invoices. Both lists are read whole every run (a payment need not touch a customer's
``lastmodified``): the invoices first, summed per ``CustomerNumber``, then every customer, so
one who paid everything gets 0.00 instead of a stale balance. An invoice in another currency is
converted with its ``CurrencyRate`` / ``CurrencyUnit``; a cancelled one (the ``unpaid`` filter
should drop them) is left out. Items' ``@url`` is never followed.

Sources and what is unconfirmed: ``design/accounting-providers.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from app.accounting.providers.base import (
    DebtorBalance,
    ProviderError,
    ProviderSpec,
)
from app.accounting.providers.http import money
from app.accounting.providers.oauth import (
    NumberedPage,
    OAuthProvider,
    count_field,
    list_field,
    numbered_pages,
)

NAME = "fortnox"
LABEL = "Fortnox"
PAGE_SIZE = 500


class FortnoxProvider(OAuthProvider):
    label = LABEL
    log_ids = ("ErrorInformation.code",)

    def check_credentials(self, *, deadline: float | None = None) -> None:
        self.start(deadline)
        self.get_page("3/customers?limit=1")

    def balances(self, *, deadline: float | None = None) -> Iterator[DebtorBalance]:
        self.start(deadline)
        owed: dict[str, Decimal] = {}
        documents: set[Any] = set()
        for invoice in numbered_pages(LABEL, self._pager("invoices?filter=unpaid&", "Invoices")):
            number, amount = self._owed(invoice)
            document = invoice.get("DocumentNumber")
            if isinstance(document, bool) or not isinstance(document, str | int):
                document = None
            if number is None or (document is not None and document in documents):
                continue  # cancelled, or listed twice (offset pages)
            documents.add(document)
            owed[number] = owed.get(number, Decimal(0)) + amount
        seen: set[str] = set()
        for item in numbered_pages(LABEL, self._pager("customers?", "Customers")):
            if not isinstance(item, dict):
                raise ProviderError(
                    "malformed_response", "Fortnox sent a customer that is no object."
                )
            number = item.get("CustomerNumber")
            record = self.record(
                number, owed.get(str(number), Decimal(0)), name=item.get("Name"), what="a customer"
            )
            # Pages are offsets: a customer added meanwhile can show one twice. Once is enough.
            if record.customer_ref not in seen:
                seen.add(record.customer_ref)
                yield record
        for number, amount in sorted(owed.items()):  # invoices of customers not listed
            if number not in seen:
                yield self.record(number, amount, what="an invoice")

    def _pager(self, path: str, key: str) -> Any:
        def fetch(page: int) -> NumberedPage:
            body = self.get_page(f"3/{path}limit={PAGE_SIZE}&page={page}")
            meta = body.get("MetaInformation")
            if not isinstance(meta, dict):
                raise ProviderError(
                    "malformed_response", "Fortnox sent a page without its MetaInformation."
                )
            return NumberedPage(
                items=list_field(LABEL, body, key),
                page_count=count_field(LABEL, meta, "@TotalPages"),
                total=count_field(LABEL, meta, "@TotalResources"),
                size=None,  # Fortnox may serve fewer than asked; the first page tells
            )

        return fetch

    @staticmethod
    def _owed(invoice: Any) -> tuple[str | None, Decimal]:
        """(CustomerNumber, the remaining balance in the company's currency) of an invoice;
        (None, 0) for a cancelled one."""
        try:
            if not isinstance(invoice, dict):
                raise ValueError("not an object")
            if invoice.get("Cancelled") is True:
                return None, Decimal(0)
            number = invoice.get("CustomerNumber")
            if isinstance(number, bool) or not isinstance(number, str | int) or str(number) == "":
                raise ValueError("no CustomerNumber")
            balance = money(invoice.get("Balance"))
            rate = _factor(invoice.get("CurrencyRate"))
            unit = _factor(invoice.get("CurrencyUnit"))
            return str(number), balance * rate / unit
        except (ValueError, InvalidOperation) as exc:
            raise ProviderError(
                "malformed_response", f"Fortnox sent an invoice that cannot be read ({exc})."
            ) from None


def _factor(value: Any) -> Decimal:
    """A currency rate or unit: a number, or a numeric string in older answers; absent is 1."""
    if value is None:
        return Decimal(1)
    if isinstance(value, bool):
        raise ValueError("a currency rate that is no number")
    factor = Decimal(str(value)) if isinstance(value, str | int | Decimal) else None
    if factor is None or not factor.is_finite() or factor <= 0:
        raise ValueError("a currency rate that is no positive number")
    return factor


SPEC = ProviderSpec(
    name=NAME,
    label=LABEL,
    base_url="https://api.fortnox.se",
    token_url="https://apps.fortnox.se/oauth-v1/token",  # noqa: S106 (a URL)
    credentials=("client_id", "client_secret", "refresh_token"),
    open=FortnoxProvider,
)
