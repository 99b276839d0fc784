"""What every accounting provider offers, and what the service gives it.

A provider is opened for one run (``ProviderSpec.open``) as a context manager that closes its
connections on the way out; inside, ``balances(deadline=...)`` yields every customer's balance
and ``check_credentials(deadline=...)`` proves the credentials (``crm accounting check``). A
provider whose credentials rotate (OAuth2 refresh tokens) hands every new set to
``ProviderContext.store_credentials`` the moment it gets it, before it asks for anything else.

Adding a provider is one module with a ``SPEC`` and one entry in ``REGISTRY``
(``app.accounting.providers``): the service, the schemas and the contract follow from it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Protocol

import httpx

from app.core.outbound import OutboundPolicy


@dataclass(frozen=True)
class DebtorBalance:
    """One customer's outstanding amount, as the accounting system reports it."""

    customer_ref: str  # matched to a partner's accounting_ref
    balance: Decimal
    name: str | None = None
    currency: str | None = None  # the amount's currency, when the provider says


class ProviderError(Exception):
    """A refresh cannot complete. ``code`` is stable; ``message`` never holds a secret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    max_wait: float = 20.0  # longest pause between attempts, also the cap on Retry-After
    initial_wait: float = 0.5
    connect_timeout: float = 5.0
    read_timeout: float = 30.0  # between two bytes
    request_timeout: float = 120.0  # for a whole answer, however slowly it drips


@dataclass(frozen=True)
class Connection:
    """A stored connection, detached from the database, its credentials decrypted."""

    provider: str
    base_url: str
    token_url: str | None
    credentials: Mapping[str, str] = field(repr=False)


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class ProviderContext:
    """What the service lends a provider for a run."""

    # Called at once with the credentials that changed (e.g. a rotated refresh_token) and
    # the values they replace (a compare-and-set: ``changed``, ``replaced``).
    store_credentials: Callable[[dict[str, str], dict[str, str]], None]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)
    heartbeat: Callable[[], None] = _nothing  # after every answer: the run is alive
    transport: httpx.BaseTransport | None = None  # in-process fakes in tests only
    sleep: Callable[[float], None] = time.sleep


class AccountingProvider(Protocol):
    """One provider, opened for one run."""

    def __enter__(self) -> AccountingProvider: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close every connection."""

    def check_credentials(self, *, deadline: float | None = None) -> None:
        """Raise ProviderError when the credentials are refused."""

    def balances(self, *, deadline: float | None = None) -> Iterator[DebtorBalance]:
        """Every customer's balance, page by page, all before the monotonic ``deadline``;
        raise ProviderError on failure."""


@dataclass(frozen=True)
class ProviderSpec:
    """A registry entry: the provider's name in the API, its defaults and what it needs."""

    name: str  # as in PUT /accounting/connection
    label: str  # in messages
    base_url: str  # the default API root
    token_url: str | None  # the default token endpoint; None: the provider has none
    credentials: tuple[str, ...]  # every field a connection must carry (write-only)
    open: Callable[[Connection, ProviderContext], AccountingProvider]
