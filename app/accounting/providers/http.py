"""How every provider talks HTTP: one client per run through the outbound policy
(``app.core.outbound``: no private destinations, no redirects, bounded bodies), explicit
timeouts, a whole answer within the request timeout and the run's deadline, retries of 5xx,
transport errors and timeouts with capped exponential backoff and jitter (tenacity), 429
honouring ``Retry-After`` (seconds or an HTTP date), and one mapping of answers to the stable
error codes of a run. httpx stays inside the providers: callers see ``DebtorBalance`` records
and ``ProviderError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self

import httpx
import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from app.accounting.providers.base import ProviderError, RetryPolicy
from app.core.outbound import (
    DestinationNotAllowed,
    OutboundPolicy,
    ResponseEncoded,
    ResponseTooLarge,
    ResponseTooSlow,
    read_body,
)
from app.core.types import MONEY_LIMIT

log = structlog.get_logger("crm.accounting.http")


class Retryable(Exception):
    """A failure worth another attempt (``code`` if the attempts run out)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Unauthorized(ProviderError):
    """A 401: the credentials (or an access token) were refused. A provider with refreshable
    tokens catches it once per run; otherwise it ends the run as ``invalid_credentials``."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_credentials", message)


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


def money(value: Any) -> Decimal:
    """An amount sent as a JSON number (read with ``parse_float=Decimal``), to the cent;
    strings, booleans, non-finite and unstorable values raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError("not a number")
    try:
        amount = Decimal(value)
        if not amount.is_finite():
            raise ValueError("not finite")
        amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise ValueError("not an amount") from None
    if abs(amount) >= MONEY_LIMIT:
        raise ValueError("an amount too large to store")
    return amount


def error_field(response: httpx.Response, *names: str) -> str | None:
    """The first of ``names`` (dotted for nested keys) in a JSON error body, for the logs:
    ids and codes, never secrets."""
    try:
        body = response.json()
    except ValueError:
        return None
    for name in names:
        value: Any = body
        for key in name.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return str(value)[:100]
    return None


# A provider's own reading of an answer before the common mapping: raise to decide it.
Classify = Callable[[httpx.Response], None]


class ProviderHttp:
    """One provider's HTTP client for one run. ``label`` names the provider in messages."""

    def __init__(
        self,
        *,
        label: str,
        base_url: str,
        setting: str = "base_url",
        headers: Mapping[str, str] | None = None,
        policy: RetryPolicy,
        outbound: OutboundPolicy,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        fail_past_cap: bool = False,
        log_ids: tuple[str, ...] = (),
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.label = label
        self.policy = policy
        self.outbound = outbound
        self.deadline: float | None = None  # monotonic: when the whole run must be done
        self.base = httpx.URL(base_url.rstrip("/") + "/")
        self._sleep = sleep
        # A Retry-After beyond the longest wait: wait the cap and try again (False), or fail
        # at once (True: the provider will not answer sooner).
        self._fail_past_cap = fail_past_cap
        self._log_ids = log_ids
        self._setting = setting
        self._heartbeat = heartbeat
        try:
            self.client = outbound.client(
                base_url=str(self.base),
                headers={"Accept": "application/json", **(headers or {})},
                timeout=httpx.Timeout(
                    connect=policy.connect_timeout,
                    read=policy.read_timeout,
                    write=policy.read_timeout,
                    pool=policy.connect_timeout,
                ),
                transport=transport,
            )
        except DestinationNotAllowed:
            raise self.not_allowed(setting) from None

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def not_allowed(setting: str) -> ProviderError:
        return ProviderError(
            "destination_not_allowed",
            f"The connection's {setting} leads to a destination that is not allowed; "
            "no request was sent.",
        )

    # -- requests ------------------------------------------------------------------------

    def get_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        classify: Classify | None = None,
    ) -> Any:
        """GET ``url`` (relative to ``base_url``, or absolute) and its JSON, with retries."""
        return self.send("GET", url, headers=headers, classify=classify)

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        classify: Classify | None = None,
        setting: str | None = None,
    ) -> Any:
        def log_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "accounting_retry",
                provider=self.label,
                attempt=state.attempt_number,
                code=getattr(error, "code", None),
                wait_s=round(state.next_action.sleep, 2) if state.next_action else None,
            )

        retrying = Retrying(
            stop=stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(Retryable),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return retrying(
                self._once, method, url, headers, data, classify, setting or self._setting
            )
        except Retryable as exc:
            raise ProviderError(exc.code, exc.message) from None

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(
            multiplier=self.policy.initial_wait, max=self.policy.max_wait
        )(state)
        error = state.outcome.exception() if state.outcome else None
        wait = float(backoff)
        if isinstance(error, Retryable) and error.retry_after is not None:
            wait = min(error.retry_after, self.policy.max_wait)
        if self.deadline is not None and time.monotonic() + wait >= self.deadline:
            # No pause may outlast the run: it ends here, for the reason it has.
            raise ProviderError("run_timeout", "The refresh took longer than allowed.")
        return wait

    def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        classify: Classify | None,
        setting: str,
    ) -> Any:
        response = self._fetch(method, url, headers, data, setting)
        if self._heartbeat is not None:
            self._heartbeat()
        if classify is not None:
            classify(response)
        return self.json_of(self._checked(response))

    def _fetch(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        setting: str,
    ) -> httpx.Response:
        """One request whose whole answer must arrive within the request timeout (and the
        run's deadline): a server dripping bytes slower than that cannot hold the refresh."""
        now = time.monotonic()
        limit = now + self.policy.request_timeout
        run_over = self.deadline is not None and self.deadline <= limit
        if run_over:
            limit = self.deadline  # type: ignore[assignment]
        if now >= limit:
            raise ProviderError("run_timeout", "The refresh took longer than allowed.")
        # No wait for a byte may outlast the run either.
        read = min(self.policy.read_timeout, limit - now)
        timeout = httpx.Timeout(
            connect=min(self.policy.connect_timeout, read), read=read, write=read, pool=read
        )
        try:
            with self.client.stream(
                method,
                url,
                headers=dict(headers or {}),
                data=dict(data) if data else None,
                timeout=timeout,
            ) as response:
                body = read_body(response, max_bytes=self.outbound.max_bytes, deadline=limit)
                kept = [
                    (k, v)
                    for k, v in response.headers.multi_items()
                    if k.lower() not in ("content-length", "transfer-encoding")
                ]
                return httpx.Response(response.status_code, headers=kept, content=body)
        except ResponseTooSlow:
            if run_over:
                raise ProviderError(
                    "run_timeout", "The refresh took longer than allowed."
                ) from None
            raise Retryable("upstream_timeout", f"{self.label} answered too slowly.") from None
        except ResponseTooLarge:
            raise ProviderError(
                "response_too_large",
                f"{self.label} sent an answer larger than {self.outbound.max_bytes} bytes.",
            ) from None
        except ResponseEncoded:
            raise ProviderError(
                "malformed_response",
                f"{self.label} sent a compressed answer; none was asked for.",
            ) from None
        except DestinationNotAllowed:
            raise self.not_allowed(setting) from None
        except httpx.TimeoutException:
            if run_over and time.monotonic() >= limit - 0.001:
                raise ProviderError(
                    "run_timeout", "The refresh took longer than allowed."
                ) from None
            raise Retryable("upstream_timeout", f"{self.label} did not answer in time.") from None
        except httpx.TransportError:
            raise Retryable("upstream_unreachable", f"{self.label} could not be reached.") from None

    def _checked(self, response: httpx.Response) -> httpx.Response:
        """The common mapping of an answer's status to a run's error codes."""
        status = response.status_code
        if status == 401:
            raise Unauthorized(
                f"{self.label} refused the credentials; update the connection's credentials."
            )
        if status == 403:
            raise ProviderError(
                "invalid_credentials",
                f"{self.label} refused the credentials; update the connection's credentials.",
            )
        if status == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if self._fail_past_cap and wait is not None and wait > self.policy.max_wait:
                raise ProviderError(
                    "rate_limited",
                    f"{self.label} is rate limiting and asks to wait {wait:.0f} s, longer than "
                    "a refresh waits; try again later.",
                )
            raise Retryable(
                "rate_limited", f"{self.label} kept answering 429 (rate limited).", wait
            )
        if status >= 500:
            raise Retryable("upstream_error", f"{self.label} answered {status}.")
        if 300 <= status < 400:
            raise ProviderError(
                "unexpected_redirect", f"{self.label} answered a redirect ({status})."
            )
        if status >= 400:
            log.error(
                "accounting_request_rejected",
                provider=self.label,
                status=status,
                error_id=error_field(response, *self._log_ids) if self._log_ids else None,
            )
            raise ProviderError("upstream_rejected_request", f"{self.label} answered {status}.")
        return response

    def json_of(self, response: httpx.Response) -> Any:
        try:
            return response.json(parse_float=Decimal)
        except ValueError:
            raise ProviderError(
                "malformed_response", f"{self.label} sent a body that is not JSON."
            ) from None

    def object_of(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ProviderError(
                "malformed_response", f"{self.label} sent JSON that is not an object."
            )
        return body


class HttpProvider:
    """The frame every provider shares: its ``ProviderHttp``, closed when the run's ``with``
    block ends."""

    http: ProviderHttp

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.close()
