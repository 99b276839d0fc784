"""What Fortnox, Xero and Visma eAccounting share: OAuth2 refresh tokens that rotate, and
numbered pages.

Tokens: a run refreshes once at its start (``POST {token_url}``, form
``grant_type=refresh_token``, the client's id and secret as HTTP Basic) and hands the new
refresh token to ``store`` at once, before the first page: the old one is dead from then on,
whatever the run's outcome. The access token lives in memory for the run only. A 401 from the
API refreshes once more and repeats that request once; another 401 ends the run as
``invalid_credentials``. The token endpoint's ``invalid_grant`` / ``invalid_client`` (400 or
401) end it too, without a retry: someone must connect the company again. Its 5xx, timeouts
and transport errors are retried like any call.

Pages: none of the three links its pages, so every URL is built here from the configured
``base_url`` and a page number, never taken from a body. Paging stops at the page count the
answer reports, or on an empty page; a missing or non-integer count, or more pages than the
first answer's total allows, is ``malformed_response``.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.accounting.providers.base import (
    Connection,
    DebtorBalance,
    ProviderContext,
    ProviderError,
)
from app.accounting.providers.http import (
    Classify,
    HttpProvider,
    ProviderHttp,
    Unauthorized,
    money,
)
from app.core.outbound import DestinationNotAllowed

_REFUSED_GRANTS = ("invalid_grant", "invalid_client")


class OAuthSession:
    """One run's access to an OAuth2 API with a rotating refresh token."""

    def __init__(
        self,
        http: ProviderHttp,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        store: Callable[[dict[str, str], dict[str, str]], None],
    ) -> None:
        self.http = http
        self._token_url = token_url
        pair = f"{client_id}:{client_secret}".encode()
        self._basic = "Basic " + base64.b64encode(pair).decode("ascii")
        self._refresh_token = refresh_token
        self._store = store
        self._access: str | None = None
        self._refreshed_after_401 = False

    def refresh(self) -> None:
        """A new access token (and refresh token, stored at once)."""
        body = self.http.object_of(
            self.http.send(
                "POST",
                self._token_url,
                headers={"Authorization": self._basic},
                data={"grant_type": "refresh_token", "refresh_token": self._refresh_token},
                classify=self._token_answer,
                setting="token_url",
            )
        )
        rotated = body.get("refresh_token")
        if rotated is not None and (not isinstance(rotated, str) or not rotated):
            raise ProviderError(
                "malformed_response",
                f"{self.http.label}'s token endpoint sent a refresh_token that is no text.",
            )
        if rotated and rotated != self._refresh_token:
            # The old one is dead from now on: keep the new one before anything can fail.
            self._store({"refresh_token": rotated}, {"refresh_token": self._refresh_token})
            self._refresh_token = rotated
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise ProviderError(
                "malformed_response", f"{self.http.label}'s token endpoint sent no access_token."
            )
        self._access = access

    def get_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        classify: Classify | None = None,
    ) -> Any:
        """GET with the access token; one more refresh and one repeat after a 401."""
        if self._access is None:
            self.refresh()
        try:
            return self.http.get_json(url, headers=self._headers(headers), classify=classify)
        except Unauthorized:
            if self._refreshed_after_401:
                raise
            self._refreshed_after_401 = True
            self.refresh()
            return self.http.get_json(url, headers=self._headers(headers), classify=classify)

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access}", **(extra or {})}

    def _token_answer(self, response: httpx.Response) -> None:
        if response.status_code not in (400, 401):
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if error in _REFUSED_GRANTS or response.status_code == 401:
            raise ProviderError(
                "invalid_credentials",
                f"{self.http.label} refused the connection's refresh token or client "
                f"({error or response.status_code}); connect the company again.",
            )


@dataclass(frozen=True)
class NumberedPage:
    """One page as a provider's envelope states it."""

    items: list[Any]
    page_count: int
    total: int  # items in all pages
    size: int | None  # items a full page holds, when the answer says; else the first page's


def count_field(label: str, envelope: Mapping[str, Any], name: str) -> int:
    """An integer of a paging envelope; a missing one or a non-integer is
    ``malformed_response``."""
    value = envelope.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProviderError(
            "malformed_response", f"{label} sent a page whose {name} is not a count."
        )
    return value


def list_field(label: str, envelope: Mapping[str, Any], name: str) -> list[Any]:
    value = envelope.get(name)
    if not isinstance(value, list):
        raise ProviderError("malformed_response", f"{label} sent a page without its {name} list.")
    return value


def numbered_pages(label: str, fetch: Callable[[int], NumberedPage]) -> Iterator[Any]:
    """Every item of pages 1, 2, ... as ``fetch(n)`` reads them."""
    number = 1
    most: int | None = None
    while True:
        page = fetch(number)
        if most is None:  # fixed by the first answer: later ones cannot move it
            size = page.size or len(page.items) or 1
            most = math.ceil(page.total / size) + 1
        yield from page.items
        if not page.items or number >= page.page_count:
            return
        number += 1
        if number > most:
            raise ProviderError(
                "malformed_response",
                f"{label} kept sending pages beyond the count of its first answer.",
            )


class OAuthProvider(HttpProvider):
    """The common frame of a provider with rotating OAuth2 tokens; a subclass says how to read
    its pages (``balances``) and how to prove the credentials (``check_credentials``)."""

    label = ""
    log_ids: tuple[str, ...] = ()  # ids in its error bodies worth logging

    def __init__(self, connection: Connection, context: ProviderContext) -> None:
        # Stored with the connection (PUT /accounting/connection requires each one).
        token_url = connection.token_url
        assert token_url, "an OAuth2 connection has a token_url"
        credentials = connection.credentials
        client_id, client_secret = credentials["client_id"], credentials["client_secret"]
        refresh_token = credentials["refresh_token"]
        self.http = ProviderHttp(
            label=self.label,
            base_url=connection.base_url,
            policy=context.policy,
            outbound=context.outbound,
            transport=context.transport,
            sleep=context.sleep,
            fail_past_cap=True,
            log_ids=self.log_ids,
            heartbeat=context.heartbeat,
        )
        try:
            context.outbound.check_url(token_url)
        except DestinationNotAllowed:
            self.http.close()
            raise ProviderHttp.not_allowed("token_url") from None
        self.oauth = OAuthSession(
            self.http,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            store=context.store_credentials,
        )

    def start(self, deadline: float | None) -> None:
        """Every run starts with one refresh (and its rotated token stored)."""
        self.http.deadline = deadline
        self.oauth.refresh()

    def get_page(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        classify: Classify | None = None,
    ) -> dict[str, Any]:
        return self.http.object_of(self.oauth.get_json(url, headers=headers, classify=classify))

    def record(
        self, ref: Any, amount: Any, *, name: Any = None, currency: Any = None, what: str
    ) -> DebtorBalance:
        """A balance record from a provider's fields; anything unreadable is
        ``malformed_response`` naming ``what``."""
        try:
            if isinstance(ref, bool) or not isinstance(ref, str | int) or str(ref) == "":
                raise ValueError("no customer key")
            return DebtorBalance(
                customer_ref=str(ref),
                balance=money(amount),
                name=name if isinstance(name, str) else None,
                currency=currency if isinstance(currency, str) and currency else None,
            )
        except ValueError as exc:
            raise ProviderError(
                "malformed_response", f"{self.label} sent {what} that cannot be read ({exc})."
            ) from None
