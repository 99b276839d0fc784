"""EconomicProvider against the live fake e-conomic: paging, headers, amounts, and the fault
matrix (each failure is retried to success within a bounded number of attempts, or raises a
stable code).

No test reads a clock: a bound is checked by what the fake saw (requests, faults hit, hangs
given up rather than waited out) and the pauses the provider asked for (recorded, never slept)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import pytest

from app.accounting.providers.base import DebtorBalance, ProviderError, RetryPolicy
from app.accounting.providers.economic import EconomicProvider
from app.accounting.providers.http import parse_retry_after
from app.core.outbound import OutboundPolicy
from tests.accounting.conftest import PATIENT, SHORT_READ_TIMEOUT
from tests.accounting.fake_economic import (
    AGREEMENT_GRANT_TOKEN,
    APP_SECRET_TOKEN,
    HANG,
    FakeEconomic,
    customer,
)
from tests.accounting.helpers import assert_no_secret

LOCAL = OutboundPolicy(allow_http=True, allow_private=True)  # the fake listens on loopback
# Short pauses (recorded, not slept) and generous timeouts: however slow the machine, no answer
# is cut short, so a request is asked for again only when the test makes the fake fail.
FAST = RetryPolicy(
    attempts=3, max_wait=0.3, initial_wait=0.05, connect_timeout=PATIENT, read_timeout=PATIENT
)
# Only for the tests that make the fake hang on purpose (a HANG of a minute): the short read
# timeout is what ends each hung attempt.
IMPATIENT = RetryPolicy(
    attempts=2,
    max_wait=0.2,
    initial_wait=0.05,
    connect_timeout=PATIENT,
    read_timeout=SHORT_READ_TIMEOUT,
)


@pytest.fixture
def waits() -> list[float]:
    """The pauses between retries the providers asked for, in order; none is slept."""
    return []


@pytest.fixture
def make_provider(economic: FakeEconomic, waits: list[float]) -> Iterator[object]:
    made: list[EconomicProvider] = []

    def make(policy: RetryPolicy = FAST, base_url: str | None = None) -> EconomicProvider:
        provider = EconomicProvider(
            base_url=base_url or economic.base_url,
            app_secret_token=APP_SECRET_TOKEN,
            agreement_grant_token=AGREEMENT_GRANT_TOKEN,
            policy=policy,
            outbound=LOCAL,
            sleep=waits.append,
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.__exit__(None, None, None)


def fetch(provider: EconomicProvider) -> list[DebtorBalance]:
    return list(provider.balances())


def fails(provider: EconomicProvider, code: str) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        fetch(provider)
    assert info.value.code == code, (info.value.code, info.value.message)
    assert info.value.message
    assert_no_secret(info.value.message, str(info.value))
    return info.value


def many(count: int, first: int = 1) -> list[dict[str, object]]:
    """``count`` customers with distinct balances: number n owes n + n/100."""
    return [customer(n, Decimal(n) + Decimal(n % 100) / 100) for n in range(first, first + count)]


# -- the happy path ---------------------------------------------------------------------------


def test_pages_through_every_customer_with_exact_decimal_balances(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    special = [
        customer(101, "6259.20"),
        customer(102, "0.10"),
        customer(103, "-1500.05"),
        customer(104, 0),
        customer(105, "99999999999.99"),
        customer(106, "7.005"),  # a float would read 7.00499999... and round down
        customer(107, "0.1"),
    ]
    crowd = many(2400, first=1000)
    economic.set_customers(special + crowd)

    records = fetch(make_provider())

    assert len(records) == len(special) + len(crowd)
    assert len({r.customer_ref for r in records}) == len(records)
    got = {r.customer_ref: r.balance for r in records}
    assert all(isinstance(b, Decimal) for b in got.values())
    assert got["101"] == Decimal("6259.20")
    assert got["102"] == Decimal("0.10")
    assert got["103"] == Decimal("-1500.05")
    assert got["104"] == Decimal("0")
    assert got["105"] == Decimal("99999999999.99")
    assert got["106"] == Decimal("7.01")
    assert got["107"] == Decimal("0.10")
    for c in crowd:
        assert got[str(c["customerNumber"])] == c["balance"]
    first = next(r for r in records if r.customer_ref == "101")
    assert (first.name, first.currency) == ("Customer 101", "DKK")

    pages = economic.customer_requests()
    assert len(pages) == 3  # 2407 customers, 1000 a page
    assert [p.query for p in pages] == [{"skippages": str(n), "pagesize": "1000"} for n in range(3)]
    assert waits == []  # not one retry


def test_sends_both_tokens_and_json_content_type_on_every_request(
    economic: FakeEconomic, make_provider
) -> None:
    economic.set_customers(many(1500))
    provider = make_provider()
    provider.check_credentials()
    assert len(fetch(provider)) == 1500

    seen = economic.requests
    assert [r.path for r in seen] == ["/self", "/customers", "/customers"]
    for r in seen:
        assert r.method == "GET"
        assert r.headers["x-appsecrettoken"] == APP_SECRET_TOKEN
        assert r.headers["x-agreementgranttoken"] == AGREEMENT_GRANT_TOKEN
        assert r.headers["content-type"] == "application/json"


def test_asks_for_the_largest_page_size(economic: FakeEconomic, make_provider) -> None:
    economic.set_customers(many(5))
    assert len(fetch(make_provider())) == 5
    (only,) = economic.customer_requests()
    assert only.query == {"skippages": "0", "pagesize": "1000"}


def test_thousands_of_customers_in_a_bounded_number_of_requests(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    """5000 customers cost five requests, one a page of 1000, and no retry (what bounds the
    refresh's duration; a wall-clock limit would only measure how busy the machine is)."""
    economic.set_customers(many(5000))
    records = fetch(make_provider())
    assert len(records) == 5000
    assert len({r.customer_ref for r in records}) == 5000
    assert [r.query for r in economic.customer_requests()] == [
        {"skippages": str(n), "pagesize": "1000"} for n in range(5)
    ]
    assert waits == []


def test_no_customers_at_all(economic: FakeEconomic, make_provider) -> None:
    assert fetch(make_provider()) == []
    assert len(economic.customer_requests()) == 1


def test_an_empty_page_without_collection_is_an_empty_list(
    economic: FakeEconomic, make_provider
) -> None:
    economic.add_fault("no_collection")
    assert fetch(make_provider()) == []


def test_an_empty_last_page_without_collection_ends_the_list(
    economic: FakeEconomic, make_provider
) -> None:
    economic.set_customers(many(1000))
    # The first (full) page points at a second one, which is empty and leaves collection out.
    economic.add_fault(
        "next_page", page=0, url=f"{economic.base_url}/customers?skippages=1&pagesize=1000"
    )
    economic.add_fault("no_collection", page=1)
    assert len(fetch(make_provider())) == 1000
    assert [r.query["skippages"] for r in economic.customer_requests()] == ["0", "1"]


def test_a_relative_next_page_on_the_same_host_is_followed(
    economic: FakeEconomic, make_provider
) -> None:
    economic.set_customers(many(1200))
    economic.add_fault("next_page", page=0, url="/customers?skippages=1&pagesize=1000")
    assert len(fetch(make_provider())) == 1200


def test_a_slow_answer_within_the_read_timeout_is_waited_for(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.set_customers(many(3))
    # A second of silence, far within FAST's read timeout (30 s): however slow the machine,
    # the answer comes long before the timeout.
    slow = economic.add_fault("delay", seconds=1.0)
    assert len(fetch(make_provider())) == 3
    assert len(economic.customer_requests()) == 1
    assert slow.completed == 1  # the fake did keep the provider waiting the whole second
    assert waits == []


def test_check_credentials_accepts_good_tokens(economic: FakeEconomic, make_provider) -> None:
    make_provider().check_credentials()
    assert [r.path for r in economic.requests] == ["/self"]


# -- failures that end in success -------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_burst_shorter_than_the_attempts_is_retried_to_success(
    economic: FakeEconomic, make_provider, waits: list[float], status: int
) -> None:
    economic.set_customers(many(10))
    economic.add_fault("status", status=status, times=2)
    assert len(fetch(make_provider())) == 10
    assert len(economic.customer_requests()) == 3
    assert len(waits) == 2
    assert all(0 < w <= FAST.max_wait for w in waits), waits


def test_a_5xx_burst_on_a_later_page_retries_only_that_page(
    economic: FakeEconomic, make_provider
) -> None:
    economic.set_customers(many(2500))
    economic.add_fault("status", status=503, page=2, times=2)
    assert len(fetch(make_provider())) == 2500
    assert [r.query["skippages"] for r in economic.customer_requests()] == [
        "0",
        "1",
        "2",
        "2",
        "2",
    ]


def test_a_hang_once_is_retried_to_success(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.set_customers(many(10))
    hang = economic.add_fault("delay", seconds=HANG, times=1)
    policy = replace(IMPATIENT, attempts=3)
    assert len(fetch(make_provider(policy))) == 10
    # The first request hung and the read timeout ended it: the fake is still sitting on that
    # answer (it would send it only after a minute), yet the provider is done.
    assert hang.used == 1
    assert hang.completed == 0
    asked = economic.customer_requests()
    assert asked[0].query == {"skippages": "0", "pagesize": "1000"}
    # Then the same page again, after a pause asked for (not slept) before each retry. Normally
    # that is one retry; the short read timeout also applies to the retries, so on a very
    # slow machine one more may be needed, within the attempts.
    assert [r.query for r in asked] == [asked[0].query] * len(asked)
    assert 2 <= len(asked) <= policy.attempts
    assert len(waits) == len(asked) - 1
    assert all(0 < w <= policy.max_wait for w in waits), waits


def test_429_with_retry_after_seconds_is_honoured(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.set_customers(many(10))
    economic.add_fault("status", status=429, headers={"Retry-After": "1"}, times=1)
    policy = replace(FAST, max_wait=5.0)
    assert len(fetch(make_provider(policy))) == 10
    assert waits == [1.0]
    assert len(economic.customer_requests()) == 2


def test_429_retry_after_is_capped_by_max_wait(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.set_customers(many(10))
    economic.add_fault("status", status=429, headers={"Retry-After": "3600"}, times=1)
    assert len(fetch(make_provider())) == 10
    assert waits == [FAST.max_wait]  # 0.3 s, not an hour
    assert len(economic.customer_requests()) == 2


def test_429_with_retry_after_as_an_http_date_is_honoured(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.set_customers(many(10))
    before = datetime.now(UTC)
    # An HTTP date has whole seconds: half a minute from now, rounded down.
    when = (before + timedelta(seconds=30)).replace(microsecond=0)
    header = format_datetime(when, usegmt=True)
    economic.add_fault("status", status=429, headers={"Retry-After": header}, times=1)
    policy = replace(FAST, max_wait=60.0)  # above the wait asked for: nothing is capped
    assert len(fetch(make_provider(policy))) == 10
    after = datetime.now(UTC)
    # The provider read the date at some moment between before and after (however long that
    # took on a slow machine), and waits exactly until it.
    assert len(waits) == 1
    assert (when - after).total_seconds() <= waits[0] <= (when - before).total_seconds(), waits
    assert len(economic.customer_requests()) == 2


def test_429_with_an_http_date_is_capped_by_max_wait(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.set_customers(many(10))
    when = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    economic.add_fault("status", status=429, headers={"Retry-After": when}, times=1)
    assert len(fetch(make_provider())) == 10
    assert waits == [FAST.max_wait]  # 0.3 s, not an hour


# -- failures that end the refresh ------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["app", "grant"])
def test_401_is_invalid_credentials_without_retry(
    economic: FakeEconomic, make_provider, wrong: str
) -> None:
    economic.set_customers(many(10))
    if wrong == "app":
        economic.app_secret_token = "another-app-secret"
    else:
        economic.agreement_grant_token = "another-grant"
    error = fails(make_provider(), "invalid_credentials")
    assert len(economic.requests) == 1
    # The fake echoes the tokens in its error body: none of it may reach the message.
    assert "Offered" not in error.message


def test_check_credentials_refused(economic: FakeEconomic, make_provider) -> None:
    economic.agreement_grant_token = "another-grant"
    with pytest.raises(ProviderError) as info:
        make_provider().check_credentials()
    assert info.value.code == "invalid_credentials"
    assert_no_secret(info.value.message)
    assert len(economic.requests) == 1


def test_401_on_a_later_page_is_not_retried(economic: FakeEconomic, make_provider) -> None:
    economic.set_customers(many(2500))
    economic.add_fault("status", status=401, page=1)
    fails(make_provider(), "invalid_credentials")
    assert [r.query["skippages"] for r in economic.customer_requests()] == ["0", "1"]


def test_403_is_invalid_credentials_without_retry(economic: FakeEconomic, make_provider) -> None:
    economic.add_fault("status", status=403)
    fails(make_provider(), "invalid_credentials")
    assert len(economic.requests) == 1


@pytest.mark.parametrize("status", [400, 404, 422])
def test_4xx_is_upstream_rejected_request_without_retry(
    economic: FakeEconomic, make_provider, status: int
) -> None:
    economic.add_fault("status", status=status)
    fails(make_provider(), "upstream_rejected_request")
    assert len(economic.requests) == 1


def test_5xx_forever_fails_after_exactly_the_attempts(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.add_fault("status", status=503)
    fails(make_provider(), "upstream_error")
    assert len(economic.requests) == FAST.attempts
    assert len(waits) == FAST.attempts - 1
    assert all(0 < w <= FAST.max_wait for w in waits), waits


def test_429_forever_fails_as_rate_limited_after_the_attempts(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.add_fault("status", status=429, headers={"Retry-After": "1"})
    fails(make_provider(), "rate_limited")
    assert len(economic.requests) == FAST.attempts
    # Each wait is capped at max_wait (0.3 s).
    assert waits == [FAST.max_wait] * (FAST.attempts - 1)


def test_a_hang_forever_is_upstream_timeout_in_a_bounded_time(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    hang = economic.add_fault("delay", seconds=HANG)
    fails(make_provider(IMPATIENT), "upstream_timeout")
    # Bounded by construction, not by a clock: exactly the attempts, each given up on by the
    # read timeout while the fake still hung (none waited out), and between them only the
    # pauses the provider asked for, each capped.
    assert len(economic.requests) == IMPATIENT.attempts
    assert hang.used == IMPATIENT.attempts
    assert hang.completed == 0
    assert len(waits) == IMPATIENT.attempts - 1
    assert all(0 < w <= IMPATIENT.max_wait for w in waits), waits


def test_a_body_that_stalls_midway_is_upstream_timeout(
    economic: FakeEconomic, make_provider, waits: list[float]
) -> None:
    economic.set_customers(many(50))
    stall = economic.add_fault("stall_body", seconds=HANG)
    fails(make_provider(IMPATIENT), "upstream_timeout")
    # As for a hang: exactly the attempts, each stalled answer given up on (not waited out).
    assert len(economic.requests) == IMPATIENT.attempts
    assert stall.used == IMPATIENT.attempts
    assert stall.completed == 0
    assert len(waits) == IMPATIENT.attempts - 1
    assert all(0 < w <= IMPATIENT.max_wait for w in waits), waits


def test_malformed_json_is_malformed_response_without_retry(
    economic: FakeEconomic, make_provider
) -> None:
    economic.add_fault("malformed")
    fails(make_provider(), "malformed_response")
    assert len(economic.requests) == 1


def test_json_that_is_not_an_object_is_malformed_response(
    economic: FakeEconomic, make_provider
) -> None:
    economic.add_fault("not_object")
    fails(make_provider(), "malformed_response")


@pytest.mark.parametrize(
    "item",
    [
        {"customerNumber": 7, "name": "no balance"},
        {"customerNumber": 7, "balance": "12.50"},
        {"customerNumber": 7, "balance": True},
        {"customerNumber": 7, "balance": None},
        {"customerNumber": "7", "balance": 1},
        {"customerNumber": True, "balance": 1},
        {"balance": 1},
        "a string",
    ],
    ids=[
        "no-balance",
        "balance-string",
        "balance-bool",
        "balance-null",
        "number-string",
        "number-bool",
        "no-number",
        "not-object",
    ],
)
def test_a_customer_that_cannot_be_read_is_malformed_response(
    economic: FakeEconomic, make_provider, item: object
) -> None:
    economic.add_fault("customers", items=[customer(1, "1.00"), item])
    fails(make_provider(), "malformed_response")


def test_a_collection_that_is_not_a_list_is_malformed_response(
    economic: FakeEconomic, make_provider
) -> None:
    economic.set_customers(many(2))
    fault = economic.add_fault("customers")
    fault.items = {"customerNumber": 1, "balance": 1}  # type: ignore[assignment]
    fails(make_provider(), "malformed_response")


def test_a_next_page_pointing_back_is_refused(economic: FakeEconomic, make_provider) -> None:
    economic.set_customers(many(1500))
    economic.add_fault(
        "next_page", page=1, url=f"{economic.base_url}/customers?skippages=0&pagesize=1000"
    )
    fails(make_provider(), "malformed_response")
    # The loop is caught at the latest when an absolute URL repeats (the first page was asked
    # for by a relative one): never more than one page again.
    assert len(economic.customer_requests()) <= 3


@pytest.mark.parametrize("where", ["other-host", "other-port", "other-scheme"])
def test_a_next_page_leaving_the_host_is_refused(
    economic: FakeEconomic, foreign: FakeEconomic, make_provider, where: str
) -> None:
    economic.set_customers(many(1500))
    port = foreign.base_url.rsplit(":", 1)[1]
    target = {
        "other-host": f"http://localhost:{port}/customers?skippages=1&pagesize=1000",
        "other-port": f"{foreign.base_url}/customers?skippages=1&pagesize=1000",
        "other-scheme": economic.base_url.replace("http://", "https://")
        + "/customers?skippages=1&pagesize=1000",
    }[where]
    economic.add_fault("next_page", page=0, url=target)
    error = fails(make_provider(), "foreign_next_page")
    assert len(economic.customer_requests()) == 1
    assert foreign.requests == []
    assert_no_secret(error.message)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_refused_and_not_followed(
    economic: FakeEconomic, foreign: FakeEconomic, make_provider, status: int
) -> None:
    economic.add_fault(
        "redirect", status=status, url=f"{foreign.base_url}/customers?skippages=0&pagesize=1000"
    )
    fails(make_provider(), "unexpected_redirect")
    assert len(economic.requests) == 1
    assert foreign.requests == []


def test_a_same_host_redirect_is_not_followed_either(economic: FakeEconomic, make_provider) -> None:
    economic.add_fault("redirect", status=302, url="/customers?skippages=0&pagesize=1000", times=1)
    fails(make_provider(), "unexpected_redirect")
    assert len(economic.requests) == 1


def test_an_unreachable_server_is_retried_then_upstream_unreachable(
    make_provider, waits: list[float]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fails(make_provider(base_url=f"http://127.0.0.1:{port}"), "upstream_unreachable")
    # Retried as often as allowed, with capped pauses (recorded, never slept): the refused
    # connections end at once, so nothing else can make this take long.
    assert len(waits) == FAST.attempts - 1
    assert all(0 < w <= FAST.max_wait for w in waits), waits


# -- Retry-After parsing ----------------------------------------------------------------------


def test_parse_retry_after_seconds() -> None:
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 120 ") == 120.0


def test_parse_retry_after_http_date() -> None:
    now = datetime(2024, 3, 1, 9, 15, 0, tzinfo=UTC)
    assert parse_retry_after("Fri, 01 Mar 2024 09:15:30 GMT", now=now) == 30.0
    assert (
        parse_retry_after(format_datetime(now + timedelta(minutes=2), usegmt=True), now=now)
        == 120.0
    )
    # A date in the past means: now.
    assert parse_retry_after("Fri, 01 Mar 2024 09:14:00 GMT", now=now) == 0.0


def test_parse_retry_after_http_date_against_the_clock() -> None:
    before = datetime.now(UTC)
    when = (before + timedelta(seconds=10)).replace(microsecond=0)  # 9 to 10 s ahead
    wait = parse_retry_after(format_datetime(when, usegmt=True))
    after = datetime.now(UTC)
    assert wait is not None
    # Measured from the clock at the moment of parsing, somewhere between before and after
    # (however long that took): never from the date's rounding or a fixed guess.
    assert (when - after).total_seconds() <= wait <= (when - before).total_seconds()


@pytest.mark.parametrize("value", [None, "", "soon", "-1", "1.5", "Fri, 99 Xyz 2024"])
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None
