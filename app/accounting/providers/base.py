"""What every accounting provider offers: a credential check and every debtor balance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class DebtorBalance:
    """One customer's outstanding amount, as the accounting system reports it."""

    customer_ref: str  # matched to a partner's accounting_ref
    balance: Decimal
    name: str | None = None
    currency: str | None = None


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


class AccountingProvider(Protocol):
    def check_credentials(self) -> None:
        """Raise ProviderError when the credentials are refused."""

    def iter_balances(self) -> Iterator[DebtorBalance]:
        """Every customer's balance, page by page; raise ProviderError on failure."""
