"""Visma e-conomic: customers' balances over its REST API.

Both token headers on every request; customers paged by following ``pagination.nextPage`` (page
size 1000) and never off the configured host. Transport, timeouts, retries and the mapping of
answers to error codes are the providers' common ones (``app.accounting.providers.http``); 429
honours ``Retry-After`` up to the longest wait, then tries again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import InvalidOperation
from typing import Any

import httpx

from app.accounting.providers.base import (
    Connection,
    DebtorBalance,
    ProviderContext,
    ProviderError,
    ProviderSpec,
    RetryPolicy,
)
from app.accounting.providers.http import HttpProvider, ProviderHttp, money
from app.core.outbound import OutboundPolicy

NAME = "e-conomic"
LABEL = "e-conomic"
DEFAULT_BASE_URL = "https://restapi.e-conomic.com"
PAGE_SIZE = 1000
FIRST_PAGE = f"customers?skippages=0&pagesize={PAGE_SIZE}"


class EconomicProvider(HttpProvider):
    def __init__(
        self,
        *,
        base_url: str,
        app_secret_token: str,
        agreement_grant_token: str,
        policy: RetryPolicy | None = None,
        outbound: OutboundPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = ProviderHttp(
            label=LABEL,
            base_url=base_url,
            headers={
                "X-AppSecretToken": app_secret_token,
                "X-AgreementGrantToken": agreement_grant_token,
                "Content-Type": "application/json",
            },
            policy=policy or RetryPolicy(),
            outbound=outbound or OutboundPolicy(),
            transport=transport,
            sleep=sleep,
            log_ids=("logId",),
        )

    @classmethod
    def open(cls, connection: Connection, context: ProviderContext) -> EconomicProvider:
        return cls(
            base_url=connection.base_url,
            app_secret_token=connection.credentials["app_secret_token"],
            agreement_grant_token=connection.credentials["agreement_grant_token"],
            policy=context.policy,
            outbound=context.outbound,
            transport=context.transport,
            sleep=context.sleep,
        )

    # -- the protocol ------------------------------------------------------------------

    def check_credentials(self, *, deadline: float | None = None) -> None:
        self.http.deadline = deadline
        self.http.object_of(self.http.get_json("self"))

    def balances(self, *, deadline: float | None = None) -> Iterator[DebtorBalance]:
        self.http.deadline = deadline
        url: str | None = FIRST_PAGE
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise ProviderError("malformed_response", "e-conomic's nextPage points back.")
            seen.add(url)
            page = self.http.object_of(self.http.get_json(url))
            collection = page.get("collection", [])
            if collection is None:
                collection = []
            if not isinstance(collection, list):
                raise ProviderError("malformed_response", "e-conomic sent a page without a list.")
            for item in collection:
                yield self._record(item)
            pagination = page.get("pagination")
            next_page = pagination.get("nextPage") if isinstance(pagination, dict) else None
            url = self._pinned(next_page) if next_page else None

    # -- internals -----------------------------------------------------------------------

    @staticmethod
    def _record(item: Any) -> DebtorBalance:
        try:
            if not isinstance(item, dict):
                raise ValueError("not an object")
            number = item["customerNumber"]
            if isinstance(number, bool) or not isinstance(number, int):
                raise ValueError("customerNumber is not an integer")
            name = item.get("name")
            currency = item.get("currency")
            return DebtorBalance(
                customer_ref=str(number),
                balance=money(item["balance"]),
                name=name if isinstance(name, str) else None,
                currency=currency if isinstance(currency, str) else None,
            )
        except (KeyError, ValueError, InvalidOperation) as exc:
            raise ProviderError(
                "malformed_response", f"e-conomic sent a customer that cannot be read ({exc})."
            ) from None

    def _pinned(self, next_page: Any) -> str:
        """Follow nextPage only on the configured scheme, host and port."""
        if not isinstance(next_page, str):
            raise ProviderError("malformed_response", "e-conomic sent a nextPage that is no URL.")
        base = self.http.base
        try:
            target = base.join(next_page)
        except httpx.InvalidURL:
            raise ProviderError(
                "malformed_response", "e-conomic sent an invalid nextPage."
            ) from None
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise ProviderError(
                "foreign_next_page", "e-conomic's nextPage leads to another host; not followed."
            )
        return str(target)


SPEC = ProviderSpec(
    name=NAME,
    label=LABEL,
    base_url=DEFAULT_BASE_URL,
    token_url=None,
    credentials=("app_secret_token", "agreement_grant_token"),
    open=EconomicProvider.open,
)
