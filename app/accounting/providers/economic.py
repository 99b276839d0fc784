"""Visma e-conomic: customers' balances over its REST API.

Both token headers on every request; customers paged by following ``pagination.nextPage`` (page
size 1000) and never off the configured host; every connection through the outbound policy
(``app.core.outbound``: no private destinations, no redirects, bounded bodies); explicit
timeouts; 5xx,
transport errors and timeouts retried with capped exponential backoff and jitter; 429 honours
``Retry-After`` (seconds or an HTTP date) up to the cap; 400 and 401 are not retried. httpx
stays inside this module: callers see ``DebtorBalance`` records and ``ProviderError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.accounting.providers.base import DebtorBalance, ProviderError, RetryPolicy
from app.core.outbound import (
    DestinationNotAllowed,
    OutboundPolicy,
    ResponseEncoded,
    ResponseTooLarge,
    ResponseTooSlow,
    read_body,
)
from app.core.types import MONEY_LIMIT

NAME = "e-conomic"
DEFAULT_BASE_URL = "https://restapi.e-conomic.com"
PAGE_SIZE = 1000
DESTINATION_NOT_ALLOWED = (
    "The connection's base_url leads to a destination that is not allowed; no request was sent."
)
FIRST_PAGE = f"/customers?skippages=0&pagesize={PAGE_SIZE}"

log = structlog.get_logger("crm.accounting.economic")


class _Retryable(Exception):
    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _money(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("not a number")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError("not finite")
    amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if abs(amount) >= MONEY_LIMIT:
        raise ValueError("an amount too large to store")
    return amount


class EconomicProvider:
    name = NAME

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
        self.policy = policy or RetryPolicy()
        self.outbound = outbound or OutboundPolicy()
        self._deadline: float | None = None
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._sleep = sleep
        try:
            self._client = self.outbound.client(
                base_url=str(self._base),
                headers={
                    "X-AppSecretToken": app_secret_token,
                    "X-AgreementGrantToken": agreement_grant_token,
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
                timeout=httpx.Timeout(
                    connect=self.policy.connect_timeout,
                    read=self.policy.read_timeout,
                    write=self.policy.read_timeout,
                    pool=self.policy.connect_timeout,
                ),
                transport=transport,
            )
        except DestinationNotAllowed:
            raise ProviderError("destination_not_allowed", DESTINATION_NOT_ALLOWED) from None

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> EconomicProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_deadline(self, deadline: float) -> None:
        """A monotonic time by which the whole refresh must be done."""
        self._deadline = deadline

    # -- the protocol ------------------------------------------------------------------

    def check_credentials(self) -> None:
        self._get("self")

    def iter_balances(self) -> Iterator[DebtorBalance]:
        url: str | None = FIRST_PAGE.lstrip("/")
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise ProviderError("malformed_response", "e-conomic's nextPage points back.")
            seen.add(url)
            page = self._get(url)
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
                balance=_money(item["balance"]),
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
        try:
            target = self._base.join(next_page)
        except httpx.InvalidURL:
            raise ProviderError(
                "malformed_response", "e-conomic sent an invalid nextPage."
            ) from None
        if (target.scheme, target.host, target.port) != (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ):
            raise ProviderError(
                "foreign_next_page", "e-conomic's nextPage leads to another host; not followed."
            )
        return str(target)

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(
            multiplier=self.policy.initial_wait, max=self.policy.max_wait
        )(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return min(error.retry_after, self.policy.max_wait)
        return float(backoff)

    def _get(self, url: str) -> dict[str, Any]:
        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "economic_retry",
                attempt=state.attempt_number,
                code=getattr(error, "code", None),
                wait_s=round(state.next_action.sleep, 2) if state.next_action else None,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            result: dict[str, Any] = retrying(self._get_once, url)
            return result
        except _Retryable as exc:
            raise ProviderError(exc.code, exc.message) from None

    def _fetch(self, url: str) -> httpx.Response:
        """One GET whose whole answer must arrive within the request timeout (and the run's
        deadline): a server dripping bytes slower than that cannot hold the refresh."""
        now = time.monotonic()
        limit = now + self.policy.request_timeout
        run_over = self._deadline is not None and self._deadline <= limit
        if run_over:
            limit = self._deadline  # type: ignore[assignment]
        if now >= limit:
            raise ProviderError("run_timeout", "The refresh took longer than allowed.")
        try:
            with self._client.stream("GET", url) as response:
                body = read_body(response, max_bytes=self.outbound.max_bytes, deadline=limit)
                headers = [
                    (k, v)
                    for k, v in response.headers.multi_items()
                    if k.lower() not in ("content-length", "transfer-encoding")
                ]
                return httpx.Response(response.status_code, headers=headers, content=body)
        except ResponseTooSlow:
            if run_over:
                raise ProviderError(
                    "run_timeout", "The refresh took longer than allowed."
                ) from None
            raise _Retryable("upstream_timeout", "e-conomic answered too slowly.") from None
        except ResponseTooLarge:
            raise ProviderError(
                "response_too_large",
                f"e-conomic sent an answer larger than {self.outbound.max_bytes} bytes.",
            ) from None
        except ResponseEncoded:
            raise ProviderError(
                "malformed_response", "e-conomic sent a compressed answer; none was asked for."
            ) from None
        except DestinationNotAllowed:
            raise ProviderError("destination_not_allowed", DESTINATION_NOT_ALLOWED) from None
        except httpx.TimeoutException:
            raise _Retryable("upstream_timeout", "e-conomic did not answer in time.") from None
        except httpx.TransportError:
            raise _Retryable("upstream_unreachable", "e-conomic could not be reached.") from None

    def _get_once(self, url: str) -> dict[str, Any]:
        response = self._fetch(url)
        status = response.status_code
        if status in (401, 403):
            raise ProviderError(
                "invalid_credentials",
                "e-conomic refused the tokens; update the connection's credentials.",
            )
        if status == 429:
            raise _Retryable(
                "rate_limited",
                "e-conomic kept answering 429 (rate limited).",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if status >= 500:
            raise _Retryable("upstream_error", f"e-conomic answered {status}.")
        if 300 <= status < 400:
            raise ProviderError("unexpected_redirect", f"e-conomic answered a redirect ({status}).")
        if status >= 400:
            log_id = _error_field(response, "logId")
            log.error("economic_request_rejected", status=status, log_id=log_id)
            raise ProviderError("upstream_rejected_request", f"e-conomic answered {status}.")
        try:
            body = response.json(parse_float=Decimal)
        except ValueError:
            raise ProviderError(
                "malformed_response", "e-conomic sent a body that is not JSON."
            ) from None
        if not isinstance(body, dict):
            raise ProviderError("malformed_response", "e-conomic sent JSON that is not an object.")
        return body


def _error_field(response: httpx.Response, name: str) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get(name) if isinstance(body, dict) else None
    return str(value)[:100] if value is not None else None
