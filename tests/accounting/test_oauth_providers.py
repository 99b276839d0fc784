"""Fortnox, Xero and Visma eAccounting through the HTTP API only, each against its live fake
(``fake_oauth``): balances to the cent, one refresh per run with the rotated refresh token stored
at once, the fault matrix of ``design/accounting-providers.md`` (and that a failed run stores
nothing), the connection's PUT/GET, the credit-limit warning, Xero's foreign currencies, and no
secret in any answer or log line.

Nothing here reads a clock: what the fakes saw (requests, token calls, faults used) tells how a
run behaved."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from app.core.logging import configure_logging
from tests.accounting.conftest import ACCOUNTING_SETTINGS
from tests.accounting.fake_economic import (
    AGREEMENT_GRANT_TOKEN,
    APP_SECRET_TOKEN,
    FakeEconomic,
    customer,
)
from tests.accounting.fake_oauth import (
    FIRST_REFRESH_TOKENS,
    HANG,
    OTHER_XERO_TENANT_ID,
    XERO_TENANT_ID,
    Call,
    FakeFortnox,
    FakeVisma,
    FakeXero,
    OAuthFake,
    OAuthFault,
    TokenCall,
    fortnox_customer,
    fortnox_invoice,
    visma_customer,
    xero_contact,
)
from tests.accounting.helpers import (
    COMPANY,
    CONNECTION,
    RUN_FIELDS,
    RUNS,
    SYNC,
    balances,
    connect,
    create_order,
    create_partner,
    events,
    get_order,
    get_partner,
    ok,
    overview,
    sync_failed,
    sync_ok,
)
from tests.conftest import Api, assert_problem

ATTEMPTS: int = ACCOUNTING_SETTINGS["accounting_retry_attempts"]  # 2
PAGE = 2  # the later page where faults strike

CREDENTIALS = {
    "fortnox": ("client_id", "client_secret", "refresh_token"),
    "xero": ("client_id", "client_secret", "refresh_token", "tenant_id"),
    "visma-eaccounting": ("client_id", "client_secret", "refresh_token"),
}
DEFAULT_URLS = {
    "fortnox": ("https://api.fortnox.se", "https://apps.fortnox.se/oauth-v1/token"),
    "xero": ("https://api.xero.com", "https://identity.xero.com/connect/token"),
    "visma-eaccounting": (
        "https://eaccountingapi.vismaonline.com",
        "https://identity.vismaonline.com/connect/token",
    ),
}


# -- helpers ----------------------------------------------------------------------------------


class Since:
    """What a fake saw from now on (a connection PUT may have talked to it before)."""

    def __init__(self, fake: OAuthFake) -> None:
        self.fake = fake
        self._requests = len(fake.requests)
        self._tokens = len(fake.token_calls)

    def token_calls(self) -> list[TokenCall]:
        return self.fake.token_calls[self._tokens :]

    def requests(self, path: str | None = None) -> list[Call]:
        return [
            r
            for r in self.fake.requests[self._requests :]
            if r.path != self.fake.token_path and (path is None or r.path == path)
        ]

    def pages(self, path: str | None = None) -> list[int]:
        return [
            int(r.query.get(self.fake.page_param, "1"))
            for r in self.requests(path or self.fake.list_path)
        ]

    def pages_needed(self, path: str) -> int:
        """How many pages ``path`` has at the page size the run asked for (and was served)."""
        first = self.requests(path)[0]
        size = int(first.query.get(self.fake.size_param, self.fake.default_page_size))
        size = min(size, self.fake.page_size_cap)
        return max(1, math.ceil(self.fake.list_total(path) / size))


def paths(fake: OAuthFake) -> list[str]:
    """The lists a run reads completely."""
    return (
        [fake.list_path]
        if fake.list_path == fake.amount_path
        else [
            fake.list_path,
            fake.amount_path,
        ]
    )


def connect_oauth(api: Api, fake: OAuthFake, **overrides: Any) -> dict[str, Any]:
    return ok(api.put(CONNECTION, json=fake.connection_body(**overrides)))


def read_fields(provider: str) -> set[str]:
    return {
        "provider",
        "base_url",
        "token_url",
        "enabled",
        "updated_at",
        *(f"{name}_set" for name in CREDENTIALS[provider]),
    }


def assert_no_oauth_secret(fake: OAuthFake, *texts: str) -> None:
    secrets = fake.secrets()
    assert len(secrets) >= 2  # the client secret and at least the first refresh token
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into: {text[:300]}"


@pytest.fixture
def base_currency(api: Api) -> str:
    currency: str = ok(api.get(COMPANY))["base_currency"]
    return currency


@pytest.fixture
def remote(api: Api, oauth_fake: OAuthFake, base_currency: str) -> OAuthFake:
    """Each provider's fake, in the company's currency, connected to ``api``'s company."""
    oauth_fake.currency = base_currency
    connect_oauth(api, oauth_fake)
    return oauth_fake


def fill(fake: OAuthFake) -> int:
    """Filler customers enough for at least two pages at any page size the provider allows."""
    return fake.max_page_size + 10


# -- a successful refresh ---------------------------------------------------------------------


def test_a_sync_stores_every_balance_to_the_cent(api: Api, remote: OAuthFake) -> None:
    fake = remote
    first = {"101": "6259.20", "102": "0.10", "103": "-50.00", "104": "1234.567", "105": "0"}
    last = {"999999": "98765432.19"}
    expected = {
        "101": "6259.20",
        "102": "0.10",
        "103": "-50.00",
        "104": "1234.57",
        "105": "0.00",  # Fortnox: a customer without unpaid invoices
        "999999": "98765432.19",
    }
    numbers = {
        ref: create_partner(api, name=f"P{ref}", accounting_ref=ref)["number"] for ref in expected
    }
    not_remote = create_partner(api, name="Elsewhere", accounting_ref="555")["number"]
    no_ref = create_partner(api, name="No ref")["number"]
    fake.set_balances(first, filler=fill(fake), last=last)
    since = Since(fake)

    run = sync_ok(api)
    assert set(run) == RUN_FIELDS
    assert run["warnings"] == []
    remote_count = fake.remote_count
    assert remote_count == len(expected) + fill(fake)
    assert (run["fetched"], run["updated"], run["unchanged"], run["unmatched"]) == (
        remote_count,
        len(expected),
        0,
        remote_count - len(expected),
    )
    for ref, balance in expected.items():
        got = get_partner(api, numbers[ref])
        assert got["debtor_balance"] == balance, (ref, got)
        assert got["debtor_balance_synced_at"] is not None
    for number in (not_remote, no_ref):
        got = get_partner(api, number)
        assert (got["debtor_balance"], got["debtor_balance_synced_at"]) == (None, None)
    rows = {row["number"]: row for row in overview(api)}
    for ref, balance in expected.items():
        assert rows[numbers[ref]]["debtor_balance"] == balance

    # One refresh with the stored token; every list read completely, each page once, in order.
    (call,) = since.token_calls()
    assert (call.refresh_token, call.status) == (FIRST_REFRESH_TOKENS[fake.provider], 200)
    for path in paths(fake):
        needed = since.pages_needed(path)
        assert needed >= 2
        assert since.pages(path) == list(range(1, needed + 1)), path
    for request in since.requests():
        assert request.bearer == call.issued_access_token, request.path
        assert "application/json" in request.headers.get("accept", ""), request.path
        if fake.provider == "xero" and request.path.startswith("/api.xro/"):
            assert request.headers.get("xero-tenant-id") == XERO_TENANT_ID
        if request.path == "/3/invoices":
            assert request.query.get("filter") == "unpaid"


def test_a_repeated_sync_changes_nothing(api: Api, remote: OAuthFake) -> None:
    refs = ["101", "102"]
    numbers = [create_partner(api, accounting_ref=ref)["number"] for ref in refs]
    remote.set_balances({"101": "10.00", "102": "0"})
    sync_ok(api)
    before = balances(api, numbers)
    run = sync_ok(api)
    assert (run["fetched"], run["updated"], run["unchanged"], run["unmatched"]) == (2, 0, 2, 0)
    after = balances(api, numbers)
    # The same balances and limit state; the sync time may only move on.
    assert {n: (v[0], v[2]) for n, v in after.items()} == {
        n: (v[0], v[2]) for n, v in before.items()
    }
    for n in numbers:
        earlier, later = before[n][1], after[n][1]
        assert earlier is not None
        assert later is not None
        assert later >= earlier  # ISO 8601 in UTC: text order is time order


def test_an_empty_remote_is_a_successful_empty_run(api: Api, remote: OAuthFake) -> None:
    p = create_partner(api, accounting_ref="101")["number"]
    run = sync_ok(api)
    assert (run["fetched"], run["updated"], run["unmatched"]) == (0, 0, 0)
    assert get_partner(api, p)["debtor_balance"] is None


# -- faults: a failing run stores nothing -----------------------------------------------------


@dataclass(frozen=True)
class Case:
    code: str
    inject: Callable[[OAuthFake], OAuthFault]
    used: int | None  # requests the fault hit (None: see ``check``)
    refreshes: int | None = 1  # token calls during the run (None: not fixed by the contract)
    hang: bool = False  # on ``impatient_api`` (read timeout 1 s)
    api_calls: bool = True  # False: the run never got past the token endpoint
    check: Callable[[OAuthFake, OAuthFault, Since], None] | None = None


def _on_page(kind: str, **options: Any) -> Callable[[OAuthFake], OAuthFault]:
    return lambda fake: fake.add_fault(kind, path=fake.amount_path, page=PAGE, **options)


def _on_token(kind: str, **options: Any) -> Callable[[OAuthFake], OAuthFault]:
    return lambda fake: fake.add_token_fault(kind, **options)


def _runaway(kind: str) -> Callable[[OAuthFake], OAuthFault]:
    # ``times``: a client without a guard still ends (and its run then succeeds: a failure).
    return lambda fake: fake.add_fault(kind, path=fake.amount_path, times=50)


def _bounded(fake: OAuthFake, fault: OAuthFault, since: Since) -> None:
    # At most the pages the first answer's total allows, plus one: no runaway.
    needed = since.pages_needed(fake.amount_path)
    assert 1 <= fault.used <= needed + 2, (fault.used, needed)


def _at_most_one_more(fake: OAuthFake, fault: OAuthFault, since: Since) -> None:
    # A 403 is not retried (at most repeated once after one more refresh).
    assert 1 <= fault.used <= 2
    assert 1 <= len(since.token_calls()) <= 2


CASES: dict[str, Case] = {
    "401-after-the-refresh": Case("invalid_credentials", _on_page("status", status=401), 2, 2),
    "token-expires-again-after-the-refresh": Case(
        "invalid_credentials", _on_page("expire_token"), 2, 2
    ),
    "403": Case(
        "invalid_credentials", _on_page("status", status=403), None, None, check=_at_most_one_more
    ),
    "token-invalid-grant": Case(
        "invalid_credentials", _on_token("token_error"), 1, 1, api_calls=False
    ),
    "token-invalid-client": Case(
        "invalid_credentials",
        _on_token("token_error", error="invalid_client"),
        1,
        1,
        api_calls=False,
    ),
    "token-5xx-forever": Case(
        "upstream_error", _on_token("status", status=500), ATTEMPTS, ATTEMPTS, api_calls=False
    ),
    "token-hang": Case(
        "upstream_timeout",
        _on_token("delay", seconds=HANG),
        ATTEMPTS,
        ATTEMPTS,
        hang=True,
        api_calls=False,
    ),
    "token-not-json": Case("malformed_response", _on_token("malformed"), 1, 1, api_calls=False),
    "429-retry-after-past-the-cap": Case(
        "rate_limited",
        _on_page(
            "status",
            status=429,
            headers={"Retry-After": "3600", "X-Rate-Limit-Problem": "minute"},
        ),
        1,
    ),
    "429-forever": Case(
        "rate_limited",
        _on_page("status", status=429, headers={"Retry-After": "0"}),
        ATTEMPTS,
    ),
    "5xx-forever": Case("upstream_error", _on_page("status", status=503), ATTEMPTS),
    "400": Case("upstream_rejected_request", _on_page("status", status=400), 1),
    "hang": Case("upstream_timeout", _on_page("delay", seconds=HANG), ATTEMPTS, hang=True),
    "not-json": Case("malformed_response", _on_page("malformed"), 1),
    "not-an-object": Case("malformed_response", _on_page("not_object"), 1),
    "no-list": Case("malformed_response", _on_page("no_list"), 1),
    "no-page-count": Case("malformed_response", _on_page("no_page_count"), 1),
    "page-count-as-text": Case("malformed_response", _on_page("page_count", value="2"), 1),
    "page-count-a-fraction": Case("malformed_response", _on_page("page_count", value=2.5), 1),
    "amount-as-text": Case("malformed_response", _on_page("amount_string"), 1),
    "page-count-keeps-growing": Case(
        "malformed_response", _runaway("growing_pages"), None, check=_bounded
    ),
    "pages-past-the-count-keep-coming": Case(
        "malformed_response", _runaway("endless_pages"), None, check=_bounded
    ),
}


@pytest.fixture
def synced_once(api: Api, remote: OAuthFake) -> dict[str, Any]:
    """Partners on the first and the last page with balances from a first, successful sync;
    the fake then holds new balances (over their credit limits) for both."""
    a = create_partner(api, name="First page", accounting_ref="101", credit_limit="1000.00")
    b = create_partner(api, name="Last page", accounting_ref="999999", credit_limit="1000.00")
    remote.set_balances({"101": "10.00"}, filler=fill(remote), last={"999999": "20.00"})
    sync_ok(api)
    numbers = [a["number"], b["number"]]
    before = balances(api, numbers)
    assert [before[n][0] for n in numbers] == ["10.00", "20.00"]
    assert all(before[n][1] is not None and before[n][2] is False for n in numbers)
    remote.set_balances({"101": "5010.00"}, filler=fill(remote), last={"999999": "5020.00"})
    return {"numbers": numbers, "before": before}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_a_failing_run_stores_nothing(
    request: pytest.FixtureRequest,
    api: Api,
    remote: OAuthFake,
    synced_once: dict[str, Any],
    case: str,
) -> None:
    fake, spec = remote, CASES[case]
    runner: Api = request.getfixturevalue("impatient_api") if spec.hang else api
    since = Since(fake)
    fault = spec.inject(fake)
    run = sync_failed(runner, spec.code)
    assert run["updated"] == 0
    if spec.used is not None:
        assert fault.used == spec.used, (fault.used, spec.used)
    if spec.refreshes is not None:
        assert len(since.token_calls()) == spec.refreshes, since.token_calls()
    if spec.hang:
        assert fault.completed == 0  # every attempt was given up on, none waited out
    if not spec.api_calls:
        assert since.requests() == []
    if spec.check is not None:
        spec.check(fake, fault, since)
    assert balances(api, synced_once["numbers"]) == synced_once["before"]
    if spec.api_calls and spec.used is not None and not spec.hang:
        # Promptly: each page before the faulty one once, nothing after it.
        pages = since.pages(fake.amount_path)
        assert pages == [*range(1, PAGE), *[PAGE] * spec.used], pages

    # The next run (fault gone) refreshes with whatever token the failed run left stored (the
    # fake accepts only the newest) and stores the new balances.
    fake.clear_faults()
    again = Since(fake)
    run = sync_ok(api)
    assert run["updated"] == 2
    (call,) = again.token_calls()
    assert call.status == 200
    after = balances(api, synced_once["numbers"])
    assert [after[n][0] for n in synced_once["numbers"]] == ["5010.00", "5020.00"]
    assert all(after[n][2] is True for n in synced_once["numbers"])


def test_xero_429_for_the_day_fails_at_once(api: Api, xero: FakeXero, base_currency: str) -> None:
    xero.currency = base_currency
    connect_oauth(api, xero)
    p = create_partner(api, accounting_ref="101")["number"]
    xero.set_balances({"101": "10.00"}, filler=fill(xero))
    sync_ok(api)
    before = balances(api, [p])
    xero.set_balances({"101": "99.00"}, filler=fill(xero))
    # A Retry-After under the cap: only X-Rate-Limit-Problem tells that the wait is hours.
    fault = xero.add_fault(
        "status",
        status=429,
        path=xero.list_path,
        page=PAGE,
        headers={"Retry-After": "0", "X-Rate-Limit-Problem": "day"},
    )
    run = sync_failed(api, "rate_limited")
    assert fault.used == 1
    message = run["error"]["message"].lower()
    assert any(word in message for word in ("day", "daily", "tomorrow")), message
    assert balances(api, [p]) == before


# -- faults a run survives --------------------------------------------------------------------


@pytest.fixture
def two_pages(api: Api, remote: OAuthFake) -> dict[str, int]:
    """Partners on the first and the last page; the remote holds their balances."""
    numbers = {
        ref: create_partner(api, name=f"P{ref}", accounting_ref=ref)["number"]
        for ref in ("101", "999999")
    }
    remote.set_balances({"101": "11.11"}, filler=fill(remote), last={"999999": "22.22"})
    return numbers


def _stored_both(api: Api, numbers: dict[str, int]) -> None:
    assert get_partner(api, numbers["101"])["debtor_balance"] == "11.11"
    assert get_partner(api, numbers["999999"])["debtor_balance"] == "22.22"


def test_a_401_mid_run_refreshes_once_and_repeats_once(
    api: Api, remote: OAuthFake, two_pages: dict[str, int]
) -> None:
    fake = remote
    since = Since(fake)
    fault = fake.add_fault("expire_token", path=fake.amount_path, page=PAGE, times=1)
    sync_ok(api)
    _stored_both(api, two_pages)
    assert fault.used == 1
    start, after_401 = since.token_calls()
    assert (start.status, after_401.status) == (200, 200)
    assert after_401.refresh_token == start.issued_refresh_token  # the rotated one
    asked = [r for r in since.requests(fake.amount_path) if r.query.get(fake.page_param) == "2"]
    assert [r.bearer for r in asked] == [start.issued_access_token, after_401.issued_access_token]
    assert [r.status for r in asked] == [401, 200]
    pages = since.pages(fake.amount_path)
    assert pages == sorted(pages)
    assert len(pages) == len(set(pages)) + 1  # page 2 twice, every other page once

    # The refresh after the 401 was stored too: the next run refreshes with its token.
    nxt = Since(fake)
    sync_ok(api)
    (call,) = nxt.token_calls()
    assert call.refresh_token == after_401.issued_refresh_token
    assert call.status == 200


def test_a_token_endpoint_5xx_is_retried(
    api: Api, remote: OAuthFake, two_pages: dict[str, int]
) -> None:
    since = Since(remote)
    fault = remote.add_token_fault("status", status=503, times=1)
    sync_ok(api)
    _stored_both(api, two_pages)
    calls = since.token_calls()
    assert [c.status for c in calls] == [503, 200]
    assert calls[0].refresh_token == calls[1].refresh_token  # a 5xx spends no token
    assert fault.used == 1


@pytest.mark.parametrize("retry_after", ["0", None], ids=["retry-after-0", "no-retry-after"])
def test_a_429_then_success_is_retried(
    api: Api, remote: OAuthFake, two_pages: dict[str, int], retry_after: str | None
) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    if remote.provider == "xero":
        headers["X-Rate-Limit-Problem"] = "minute"
    since = Since(remote)
    fault = remote.add_fault(
        "status", status=429, path=remote.amount_path, page=PAGE, times=1, headers=headers
    )
    sync_ok(api)
    _stored_both(api, two_pages)
    assert fault.used == 1
    assert since.pages(remote.amount_path).count(PAGE) == 2
    assert len(since.token_calls()) == 1  # a 429 is no reason to refresh


# -- the refresh token rotates and is stored at once ------------------------------------------


def test_every_run_refreshes_with_the_token_the_previous_one_got(
    api: Api, remote: OAuthFake
) -> None:
    p = create_partner(api, accounting_ref="101")["number"]
    remote.set_balances({"101": "1.00"})
    since = Since(remote)
    for _ in range(3):
        sync_ok(api)
    calls = since.token_calls()
    assert len(calls) == 3
    assert calls[0].refresh_token == FIRST_REFRESH_TOKENS[remote.provider]
    for earlier, later in pairwise(calls):
        assert later.refresh_token == earlier.issued_refresh_token
    assert all(c.status == 200 for c in calls)
    assert get_partner(api, p)["debtor_balance"] == "1.00"
    body = ok(api.get(CONNECTION))
    assert body["refresh_token_set"] is True
    assert_no_oauth_secret(remote, json.dumps(body))


@pytest.mark.parametrize("failure", ["5xx-on-page-2", "401-twice-on-page-2"])
def test_a_run_that_fails_after_its_first_page_still_stores_the_rotated_token(
    api: Api, remote: OAuthFake, two_pages: dict[str, int], failure: str
) -> None:
    since = Since(remote)
    if failure == "5xx-on-page-2":
        remote.add_fault("status", status=503, path=remote.amount_path, page=PAGE)
        sync_failed(api, "upstream_error")
    else:
        remote.add_fault("status", status=401, path=remote.amount_path, page=PAGE)
        sync_failed(api, "invalid_credentials")
    for number in two_pages.values():  # the failed run stored no balance
        assert get_partner(api, number)["debtor_balance_synced_at"] is None
    newest = since.token_calls()[-1]
    assert newest.status == 200
    assert newest.issued_refresh_token == remote.refresh_token
    remote.clear_faults()
    nxt = Since(remote)
    sync_ok(api)
    (call,) = nxt.token_calls()
    assert (call.refresh_token, call.status) == (newest.issued_refresh_token, 200)
    _stored_both(api, two_pages)


def test_a_dead_refresh_token_is_invalid_credentials_tried_once(
    api: Api, remote: OAuthFake, two_pages: dict[str, int]
) -> None:
    sync_ok(api)
    before = balances(api, list(two_pages.values()))
    fresh = remote.authorize()  # someone reconnected elsewhere: the stored token died
    since = Since(remote)
    run = sync_failed(api, "invalid_credentials")
    assert [c.status for c in since.token_calls()] == [400]
    assert since.requests() == []
    assert_no_oauth_secret(remote, json.dumps(run))
    assert balances(api, list(two_pages.values())) == before

    # Only the new refresh token: the other credentials and the URLs are kept.
    body = ok(api.put(CONNECTION, json={"provider": remote.provider, "refresh_token": fresh}))
    assert (body["base_url"], body["token_url"]) == (remote.base_url, remote.token_url)
    nxt = Since(remote)
    sync_ok(api)
    assert [c.refresh_token for c in nxt.token_calls()] == [fresh]


def test_a_wrong_client_secret_is_invalid_credentials_tried_once(
    api: Api, oauth_fake: OAuthFake
) -> None:
    connect_oauth(api, oauth_fake, client_secret="not-the-client-secret-123")
    since = Since(oauth_fake)
    sync_failed(api, "invalid_credentials")
    assert [c.status for c in since.token_calls()] == [401]
    assert since.requests() == []


# -- the connection ---------------------------------------------------------------------------


def test_put_then_get_shows_only_which_credentials_are_set(api: Api, oauth_fake: OAuthFake) -> None:
    fake = oauth_fake
    r = api.put(CONNECTION, json=fake.connection_body())
    body = ok(r)
    assert set(body) == read_fields(fake.provider)
    assert body["provider"] == fake.provider
    assert (body["base_url"], body["token_url"]) == (fake.base_url, fake.token_url)
    assert body["enabled"] is True
    assert all(body[f"{name}_set"] is True for name in CREDENTIALS[fake.provider])
    assert body["updated_at"].endswith("Z")
    assert fake.client_id not in r.text
    assert_no_oauth_secret(fake, r.text, str(r.headers))
    got = api.get(CONNECTION)
    assert ok(got) == body
    assert_no_oauth_secret(fake, got.text, str(got.headers))


def test_the_defaults_are_the_providers_own_hosts(api: Api, oauth_fake: OAuthFake) -> None:
    body = oauth_fake.connection_body()
    del body["base_url"], body["token_url"]
    stored = ok(api.put(CONNECTION, json=body))
    assert (stored["base_url"], stored["token_url"]) == DEFAULT_URLS[oauth_fake.provider]


@pytest.mark.parametrize(
    ("provider", "field"),
    [
        ("fortnox", "app_secret_token"),
        ("fortnox", "tenant_id"),
        ("visma-eaccounting", "tenant_id"),
        ("visma-eaccounting", "agreement_grant_token"),
        ("xero", "app_secret_token"),
    ],
)
def test_a_field_of_another_provider_is_422(
    request: pytest.FixtureRequest, api: Api, provider: str, field: str
) -> None:
    fake: OAuthFake = request.getfixturevalue(
        {"fortnox": "fortnox", "xero": "xero", "visma-eaccounting": "visma"}[provider]
    )
    r = api.put(CONNECTION, json=fake.connection_body(**{field: "some-value-0123456789"}))
    problem = assert_problem(r, 422)
    # The field is named where the client put it: no union tag in between.
    assert [e["loc"] for e in problem["errors"]] == [["body", field]], problem
    assert f"body.{field}:" in problem["detail"], problem
    assert_no_oauth_secret(fake, r.text)
    assert_problem(api.get(CONNECTION), 404, "accounting_not_connected")


def test_a_field_of_fortnox_on_e_conomic_is_422(api: Api, economic: FakeEconomic) -> None:
    body = {
        "provider": "e-conomic",
        "base_url": economic.base_url,
        "app_secret_token": APP_SECRET_TOKEN,
        "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
        "client_id": "a-client-id",
    }
    problem = assert_problem(api.put(CONNECTION, json=body), 422)
    assert [e["loc"] for e in problem["errors"]] == [["body", "client_id"]], problem


def _missing_credentials() -> list[tuple[str, str]]:
    return [(provider, name) for provider, names in CREDENTIALS.items() for name in names]


@pytest.mark.parametrize(("provider", "missing"), _missing_credentials())
def test_a_new_connection_needs_every_credential(
    request: pytest.FixtureRequest, api: Api, provider: str, missing: str
) -> None:
    fake: OAuthFake = request.getfixturevalue(
        {"fortnox": "fortnox", "xero": "xero", "visma-eaccounting": "visma"}[provider]
    )
    body = fake.connection_body()
    del body[missing]
    r = api.put(CONNECTION, json=body)
    problem = assert_problem(r, 422, "credentials_required")
    assert [tuple(e["loc"]) for e in problem["errors"]] == [("body", missing)], problem
    assert_no_oauth_secret(fake, r.text)
    assert_problem(api.get(CONNECTION), 404, "accounting_not_connected")
    # Nothing at all: every credential is named.
    bare = {"provider": provider, "base_url": fake.base_url, "token_url": fake.token_url}
    problem = assert_problem(api.put(CONNECTION, json=bare), 422, "credentials_required")
    named = sorted(e["loc"][-1] for e in problem["errors"])
    assert named == sorted(CREDENTIALS[provider])


@pytest.mark.parametrize("change", ["base_url", "token_url"])
def test_a_changed_url_needs_every_credential_again(
    api: Api, remote: OAuthFake, change: str
) -> None:
    fake = remote
    before = ok(api.get(CONNECTION))
    elsewhere = "http://127.0.0.1:9" if change == "base_url" else "http://127.0.0.1:9/token"
    urls = {"base_url": fake.base_url, "token_url": fake.token_url, change: elsewhere}

    r = api.put(CONNECTION, json={"provider": fake.provider, **urls})
    problem = assert_problem(r, 422, "credentials_required")
    assert sorted(e["loc"][-1] for e in problem["errors"]) == sorted(CREDENTIALS[fake.provider])
    some = fake.connection_body(**urls)
    del some["client_secret"]
    r = api.put(CONNECTION, json=some)
    problem = assert_problem(r, 422, "credentials_required")
    assert [tuple(e["loc"]) for e in problem["errors"]] == [("body", "client_secret")]
    assert_no_oauth_secret(fake, r.text)
    assert ok(api.get(CONNECTION)) == before

    # The stored connection still works; with every credential the change is taken.
    create_partner(api, accounting_ref="101")
    fake.set_balances({"101": "3.00"})
    sync_ok(api)
    changed = ok(api.put(CONNECTION, json=fake.connection_body(**urls)))
    assert changed[change] == elsewhere


def test_leaving_out_the_urls_keeps_the_stored_ones(api: Api, remote: OAuthFake) -> None:
    fake = remote
    p = create_partner(api, accounting_ref="101")["number"]
    fake.set_balances({"101": "4.00"})
    body = ok(api.put(CONNECTION, json={"provider": fake.provider, "enabled": False}))
    assert (body["base_url"], body["token_url"]) == (fake.base_url, fake.token_url)
    assert body["enabled"] is False
    assert all(body[f"{name}_set"] is True for name in CREDENTIALS[fake.provider])
    since = Since(fake)
    assert_problem(api.post(SYNC), 409, "accounting_not_connected")
    assert since.requests() == []
    assert since.token_calls() == []

    body = ok(api.put(CONNECTION, json={"provider": fake.provider}))
    assert (body["base_url"], body["token_url"], body["enabled"]) == (
        fake.base_url,
        fake.token_url,
        True,
    )
    sync_ok(api)  # with the stored credentials, against the fake
    assert get_partner(api, p)["debtor_balance"] == "4.00"


def test_switching_from_e_conomic_to_fortnox_and_back_needs_every_credential(
    api: Api, economic: FakeEconomic, fortnox: FakeFortnox, base_currency: str
) -> None:
    fortnox.currency = base_currency
    p = create_partner(api, accounting_ref="101")["number"]
    economic.set_customers([customer(101, "1.00")])
    fortnox.set_balances({"101": "2.00"})
    connect(api, economic)

    r = api.put(
        CONNECTION,
        json={"provider": "fortnox", "base_url": fortnox.base_url, "token_url": fortnox.token_url},
    )
    problem = assert_problem(r, 422, "credentials_required")
    assert sorted(e["loc"][-1] for e in problem["errors"]) == sorted(CREDENTIALS["fortnox"])
    assert_problem(api.put(CONNECTION, json={"provider": "fortnox"}), 422, "credentials_required")
    assert ok(api.get(CONNECTION))["provider"] == "e-conomic"

    body = ok(api.put(CONNECTION, json=fortnox.connection_body()))
    assert set(body) == read_fields("fortnox")  # e-conomic's tokens are gone
    sync_ok(api)
    assert get_partner(api, p)["debtor_balance"] == "2.00"
    assert economic.requests == []

    r = api.put(CONNECTION, json={"provider": "e-conomic", "base_url": economic.base_url})
    problem = assert_problem(r, 422, "credentials_required")
    assert sorted(e["loc"][-1] for e in problem["errors"]) == [
        "agreement_grant_token",
        "app_secret_token",
    ]
    r = api.put(
        CONNECTION,
        json={
            "provider": "e-conomic",
            "base_url": economic.base_url,
            "app_secret_token": APP_SECRET_TOKEN,
        },
    )
    problem = assert_problem(r, 422, "credentials_required")
    assert [tuple(e["loc"]) for e in problem["errors"]] == [("body", "agreement_grant_token")]
    assert ok(api.get(CONNECTION))["provider"] == "fortnox"

    back = connect(api, economic)
    assert back["provider"] == "e-conomic"
    assert back["app_secret_token_set"] is True
    assert not any(key.startswith(("client_", "refresh_token")) for key in back)
    fortnox_seen = len(fortnox.requests)
    sync_ok(api)
    assert get_partner(api, p)["debtor_balance"] == "1.00"
    assert len(fortnox.requests) == fortnox_seen
    assert [r.path for r in economic.requests] == ["/customers"]


@pytest.mark.parametrize("scope", ["read", "write"])
def test_only_an_admin_touches_the_connection(api: Api, remote: OAuthFake, scope: str) -> None:
    before = ok(api.get(CONNECTION))
    scoped = api.as_(scope)
    assert_problem(scoped.get(CONNECTION), 403, "insufficient_scope")
    r = scoped.put(CONNECTION, json=remote.connection_body(enabled=False))
    assert_problem(r, 403, "insufficient_scope")
    assert_no_oauth_secret(remote, r.text)
    assert ok(api.get(CONNECTION)) == before


def test_another_company_sees_no_connection(api: Api, other_api: Api, remote: OAuthFake) -> None:
    since = Since(remote)
    assert_problem(other_api.get(CONNECTION), 404, "accounting_not_connected")
    assert_problem(other_api.post(SYNC), 409, "accounting_not_connected")
    assert since.requests() == []
    assert since.token_calls() == []
    assert ok(api.get(CONNECTION))["provider"] == remote.provider


# -- what a balance means ---------------------------------------------------------------------


def test_a_balance_over_the_credit_limit_warns(api: Api, remote: OAuthFake) -> None:
    number = create_partner(api, accounting_ref="101", credit_limit="100.00")["number"]
    within = create_partner(api, name="Within", accounting_ref="102", credit_limit="100.00")
    remote.set_balances({"101": "150.00", "102": "99.99"})
    sync_ok(api)
    p = get_partner(api, number)
    assert (p["debtor_balance"], p["credit_limit_exceeded"]) == ("150.00", True)
    assert get_partner(api, within["number"])["credit_limit_exceeded"] is False
    order = create_order(api, number)
    assert order["credit_warning"] is True, order
    (warning,) = order["warnings"]
    assert warning["code"] == "credit_limit_exceeded"
    assert "150.00" in warning["message"]
    assert "100.00" in warning["message"]
    assert get_order(api, order["number"])["credit_warning"] is True
    assert create_order(api, within["number"])["credit_warning"] is False
    assert [r["number"] for r in overview(api, credit_limit_exceeded="true")] == [number]


def test_xero_a_foreign_currency_is_stored_as_reported_and_warned(
    api: Api, xero: FakeXero, base_currency: str
) -> None:
    foreign = "EUR" if base_currency != "EUR" else "USD"
    xero.currency = base_currency
    connect_oauth(api, xero)
    home = create_partner(api, name="Home", accounting_ref="101")["number"]
    away = create_partner(api, name="Away", accounting_ref="102")["number"]
    xero.set_contacts(
        [
            xero_contact(1, "10.00", contact_number="101"),
            xero_contact(2, "250.00", contact_number="102", currency=foreign),
            xero_contact(3, "5.00", contact_number="103", currency=base_currency),
        ]
    )
    run = sync_ok(api)
    assert get_partner(api, home)["debtor_balance"] == "10.00"
    assert get_partner(api, away)["debtor_balance"] == "250.00"  # not converted
    (warning,) = run["warnings"]
    assert warning["code"] == "foreign_currency"
    assert warning["customer_refs"] == ["102"]
    assert isinstance(warning["message"], str)
    assert warning["message"]
    assert ok(api.get(f"{RUNS}/{run['id']}"))["warnings"] == run["warnings"]
    # Back in the home currency: nothing to say.
    xero.set_contacts([xero_contact(2, "250.00", contact_number="102")])
    assert sync_ok(api)["warnings"] == []


def test_xero_matches_the_contact_number_else_the_contact_id(
    api: Api, xero: FakeXero, base_currency: str
) -> None:
    xero.currency = base_currency
    connect_oauth(api, xero)
    contacts = [
        xero_contact(1, "11.00", contact_number="C-1"),
        xero_contact(2, "22.00"),  # no ContactNumber: its ContactID
        xero_contact(3, "33.00", contact_number=""),  # empty: its ContactID
        xero_contact(4, "44.00", contact_number="C-4"),  # a number: never its ContactID
        xero_contact(5, None, contact_number="C-5"),  # no Balances: owes nothing
        xero_contact(6, "66.00", contact_number="C-6", status="ARCHIVED"),  # left out
    ]
    ids = [c["ContactID"] for c in contacts]
    refs = {
        "C-1": "11.00",
        ids[1]: "22.00",
        ids[2]: "33.00",
        ids[3]: None,
        "C-5": "0.00",
        "C-6": None,
    }
    numbers = {ref: create_partner(api, name=ref, accounting_ref=ref)["number"] for ref in refs}
    xero.set_contacts(contacts)
    run = sync_ok(api)
    assert (run["fetched"], run["updated"], run["unmatched"]) == (5, 4, 1)
    for ref, balance in refs.items():
        assert get_partner(api, numbers[ref])["debtor_balance"] == balance, ref


def test_xero_another_tenant_is_invalid_credentials(
    api: Api, xero: FakeXero, base_currency: str
) -> None:
    xero.currency = base_currency
    p = create_partner(api, accounting_ref="101")["number"]
    xero.set_balances({"101": "1.00"})
    connect_oauth(api, xero, tenant_id=OTHER_XERO_TENANT_ID)
    since = Since(xero)
    sync_failed(api, "invalid_credentials")
    # Refused by the contacts (403 for another tenant) or found missing from /connections.
    asked = since.requests(xero.list_path)
    assert asked or since.requests("/connections"), since.requests()
    assert all(r.headers.get("xero-tenant-id") == OTHER_XERO_TENANT_ID for r in asked)
    assert all(r.status == 403 for r in asked)
    assert len(asked) <= 2
    assert get_partner(api, p)["debtor_balance"] is None


def test_fortnox_sums_the_unpaid_invoices_of_each_customer(
    api: Api, fortnox: FakeFortnox, base_currency: str
) -> None:
    fortnox.currency = base_currency
    connect_oauth(api, fortnox)
    refs = {"1": "70.00", "2": "0.00", "3": "0.00", "4": "0.30"}
    numbers = {ref: create_partner(api, accounting_ref=ref)["number"] for ref in refs}
    fortnox.set_customers([fortnox_customer(ref) for ref in refs])
    fortnox.set_invoices([])
    # What the unpaid filter returns, a cancelled invoice among it (the adapter must skip it).
    fortnox.add_fault(
        "items",
        path="/3/invoices",
        items=[
            fortnox_invoice(1, "1", "100.00", Currency=base_currency),
            fortnox_invoice(2, "1", "-30.00", Currency=base_currency),  # a credit invoice
            fortnox_invoice(3, "2", "500.00", cancelled=True, Currency=base_currency),
            fortnox_invoice(4, "4", "0.10", Currency=base_currency, CurrencyRate="1"),
            fortnox_invoice(5, "4", "0.20", Currency=base_currency),
        ],
    )
    run = sync_ok(api)
    assert (run["fetched"], run["unmatched"]) == (4, 0)
    for ref, balance in refs.items():
        assert get_partner(api, numbers[ref])["debtor_balance"] == balance, ref
    assert all(r.query.get("filter") == "unpaid" for r in fortnox.api_requests("/3/invoices"))


def test_visma_trusts_the_page_size_it_is_served(
    api: Api, visma: FakeVisma, base_currency: str
) -> None:
    visma.currency = base_currency
    visma.page_size_cap = 100  # whatever the adapter asks for, 100 a page come
    connect_oauth(api, visma)
    first = create_partner(api, accounting_ref="101")["number"]
    inactive = create_partner(api, accounting_ref="102")["number"]
    visma.set_customers(
        [
            visma_customer(1, "101", "12.34"),
            visma_customer(2, "102", "56.78", active=False),  # listed too: kept
            *(visma_customer(i, f"5{i:05d}", 1) for i in range(3, 251)),
        ]
    )
    since = Since(visma)
    run = sync_ok(api)
    assert (run["fetched"], run["updated"], run["unmatched"]) == (250, 2, 248)
    assert since.pages() == [1, 2, 3]
    assert get_partner(api, first)["debtor_balance"] == "12.34"
    assert get_partner(api, inactive)["debtor_balance"] == "56.78"


# -- no secret anywhere -----------------------------------------------------------------------


def test_no_secret_in_responses_or_logs(
    capfd: pytest.CaptureFixture[str], api: Api, oauth_fake: OAuthFake, base_currency: str
) -> None:
    configure_logging("INFO", json=True)  # onto capfd's stderr, live only in this phase
    fake = oauth_fake
    fake.currency = base_currency
    texts: list[str] = []

    def keep(response: Any) -> Any:
        texts.append(response.text)
        texts.append(str(response.headers))
        return response

    assert keep(api.put(CONNECTION, json=fake.connection_body())).status_code == 200
    # Rejected bodies that carry every secret too.
    assert keep(api.put(CONNECTION, json=fake.connection_body(provider="nope"))).status_code == 422
    wrong = fake.connection_body(client_secret=fake.client_secret + " with a space")
    assert keep(api.put(CONNECTION, json=wrong)).status_code == 422
    keep(api.get(CONNECTION))
    create_partner(api, accounting_ref="101")
    fake.set_balances({"101": "10.00"}, filler=fill(fake))

    # A success with a mid-run 401 (two refreshes, two rotated tokens).
    fake.add_fault("expire_token", path=fake.amount_path, page=PAGE, times=1)
    texts.append(json.dumps(sync_ok(api)))
    # A 401 after the refresh too: the fake echoes the access token in its error body.
    fake.add_fault("expire_token", path=fake.amount_path, page=PAGE)
    texts.append(json.dumps(sync_failed(api, "invalid_credentials")))
    fake.clear_faults()
    # A dead refresh token: the fake echoes it in its invalid_grant answer.
    fresh = fake.authorize()
    texts.append(json.dumps(sync_failed(api, "invalid_credentials")))
    keep(api.put(CONNECTION, json={"provider": fake.provider, "refresh_token": fresh}))
    # A token endpoint 5xx retried, then a page that is not JSON.
    fake.add_token_fault("status", status=500, times=1)
    fake.add_fault("malformed", path=fake.amount_path, page=PAGE, times=1)
    texts.append(json.dumps(sync_failed(api, "malformed_response")))
    texts.append(keep(api.get(RUNS, params={"limit": 500})).text)
    keep(api.get(CONNECTION))

    captured = capfd.readouterr()
    logs = captured.out + captured.err
    seen = events(logs)
    # The capture really holds the app's logs (else this test would prove nothing).
    for event in ("request", "sync_succeeded", "sync_failed"):
        assert event in seen, (event, seen)
    # Both refresh tokens rotated in the first run, the access tokens, the client secret...
    assert len(fake.secrets()) >= 8
    assert_no_oauth_secret(fake, logs, *texts)


def test_decimal_amounts_survive_the_wire(api: Api, remote: OAuthFake) -> None:
    """Amounts whose float would round differently (a JSON number read as a float): stored
    exactly as the provider wrote them."""
    amounts = {"101": "0.29", "102": "1.005", "103": "99999999999999.99", "104": "-0.01"}
    expected = {"101": "0.29", "102": "1.01", "103": "99999999999999.99", "104": "-0.01"}
    numbers = {ref: create_partner(api, accounting_ref=ref)["number"] for ref in amounts}
    remote.set_balances({ref: Decimal(v) for ref, v in amounts.items()})
    sync_ok(api)
    for ref, balance in expected.items():
        assert get_partner(api, numbers[ref])["debtor_balance"] == balance, ref


# -- what a review found ------------------------------------------------------------------------


def test_a_token_answer_without_an_access_token_still_keeps_the_rotated_refresh_token(
    api: Api, remote: OAuthFake, two_pages: dict[str, int]
) -> None:
    """The refresh token rotated (the old one is dead) but the answer is unusable: the run
    fails, and the next one refreshes with the new token instead of a dead one."""
    fault = remote.add_token_fault("no_access_token", times=1)
    since = Since(remote)
    sync_failed(api, "malformed_response")
    assert fault.used == 1
    (call,) = since.token_calls()
    assert call.issued_refresh_token == remote.refresh_token
    assert since.requests() == []
    nxt = Since(remote)
    sync_ok(api)
    (again,) = nxt.token_calls()
    assert (again.refresh_token, again.status) == (call.issued_refresh_token, 200)
    _stored_both(api, two_pages)


@pytest.mark.parametrize("fixture", ["xero", "visma"])  # Fortnox answers 400 instead
def test_pages_smaller_than_asked_are_no_runaway(
    api: Api, fixture: str, base_currency: str, request: pytest.FixtureRequest
) -> None:
    """A provider may serve fewer items a page than asked: the bound on pages follows the
    size it served, not the size asked for."""
    remote: OAuthFake = request.getfixturevalue(fixture)
    assert remote.clamp_page_size
    remote.currency = base_currency
    connect_oauth(api, remote)
    numbers = {
        ref: create_partner(api, name=f"P{ref}", accounting_ref=ref)["number"]
        for ref in ("101", "102", "103", "104", "105")
    }
    remote.set_balances({ref: f"{i}.50" for i, ref in enumerate(numbers, start=1)})
    remote.page_size_cap = 2
    since = Since(remote)
    run = sync_ok(api)
    assert run["fetched"] == 5
    assert since.pages() == [1, 2, 3]
    for i, (_, number) in enumerate(sorted(numbers.items()), start=1):
        assert get_partner(api, number)["debtor_balance"] == f"{i}.50"


def test_fortnox_a_customer_listed_twice_keeps_its_balance(
    api: Api, fortnox: FakeFortnox, base_currency: str
) -> None:
    """Pages are offsets: a customer added while the list is read can show one customer on
    two pages. Its balance is the sum of its invoices, not 0.00 from the second sight."""
    fortnox.currency = base_currency
    connect_oauth(api, fortnox)
    number = create_partner(api, name="Twice", accounting_ref="101")["number"]
    fortnox.set_balances({"101": "40.00"}, filler=fill(fortnox))
    fortnox.add_fault("items", path="/3/customers", page=2, items=[fortnox_customer("101")])
    run = sync_ok(api)
    assert get_partner(api, number)["debtor_balance"] == "40.00"
    assert run["updated"] >= 1


@pytest.mark.parametrize("change", ["enabled-only", "same-credentials"])
def test_an_admin_put_that_keeps_the_refresh_token_does_not_lose_the_rotated_one(
    api: Api,
    remote: OAuthFake,
    two_pages: dict[str, int],
    db: Any,
    accounting_settings: Any,
    change: str,
) -> None:
    """An admin's PUT while a run is under way: when it leaves the refresh token alone, the
    token the run rotated to is still stored (compare-and-set on the token, not on the time)."""
    from app.accounting import service

    def put_then_open(connection: Any, context: Any) -> Any:
        body: dict[str, Any] = {"provider": remote.provider, "enabled": True}
        if change == "same-credentials":
            body = remote.connection_body(refresh_token=connection.credentials["refresh_token"])
        ok(api.put(CONNECTION, json=body))
        return service.open_provider(connection, context)

    run_id = _start(api, db, accounting_settings)
    since = Since(remote)
    service.execute_run(
        db=db,
        company_id=api.tenant.company.id,
        run_id=run_id,
        settings=accounting_settings,
        provider_factory=put_then_open,
    )
    assert ok(api.get(f"{RUNS}/{run_id}"))["status"] == "succeeded"
    (call,) = since.token_calls()
    nxt = Since(remote)
    sync_ok(api)
    assert nxt.token_calls()[0].refresh_token == call.issued_refresh_token
    _stored_both(api, two_pages)


def test_an_admin_put_of_a_new_refresh_token_wins_and_the_run_stores_nothing(
    api: Api, remote: OAuthFake, two_pages: dict[str, int], db: Any, accounting_settings: Any
) -> None:
    from app.accounting import service

    real_store: list[Any] = []

    def reconnect_then_open(connection: Any, context: Any) -> Any:
        def store(changed: dict[str, str], replaced: dict[str, str]) -> None:
            # The admin reconnects between the provider's refresh and its store.
            ok(
                api.put(
                    CONNECTION, json={"provider": remote.provider, "refresh_token": "admin-new"}
                )
            )
            context.store_credentials(changed, replaced)
            real_store.append(changed)

        from dataclasses import replace

        return service.open_provider(connection, replace(context, store_credentials=store))

    run_id = _start(api, db, accounting_settings)
    service.execute_run(
        db=db,
        company_id=api.tenant.company.id,
        run_id=run_id,
        settings=accounting_settings,
        provider_factory=reconnect_then_open,
    )
    run = ok(api.get(f"{RUNS}/{run_id}"))
    assert run["status"] == "failed"
    assert run["error"]["code"] == "connection_changed"
    assert real_store  # the run tried to store its rotated token, and was refused
    for number in two_pages.values():
        assert get_partner(api, number)["debtor_balance_synced_at"] is None
    # The admin's token is the stored one: the next run offers it.
    since = Since(remote)
    sync_failed(api, "invalid_credentials")
    assert [c.refresh_token for c in since.token_calls()] == ["admin-new"]


def test_the_run_beats_while_a_provider_reads_pages_before_its_first_record(
    api: Api, fortnox: FakeFortnox, base_currency: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fortnox reads every unpaid invoice before it yields its first customer: the run's
    heartbeat follows each answer, not only each record."""
    from app.accounting import service

    fortnox.currency = base_currency
    connect_oauth(api, fortnox)
    create_partner(api, name="P", accounting_ref="101")
    fortnox.set_balances({"101": "1.00"}, filler=fill(fortnox))
    beats: list[int] = []
    monkeypatch.setattr(service, "HEARTBEAT_EVERY", -1.0)  # every chance is taken
    monkeypatch.setattr(
        service, "_heartbeat", lambda db, company_id, run_id, fetched: beats.append(fetched)
    )
    since = Since(fortnox)
    sync_ok(api)
    invoice_pages = len(since.requests("/3/invoices"))
    assert invoice_pages >= 2
    # A beat for each answer (token and invoice pages among them) before any record.
    assert beats[: invoice_pages + 1] == [0] * (invoice_pages + 1)


def _start(api: Api, db: Any, settings: Any) -> Any:
    from app.accounting import service
    from app.models.enums import SyncTrigger

    with db.session() as session:
        run = service.start_run(
            session=session,
            company_id=api.tenant.company.id,
            trigger=SyncTrigger.cli,
            settings=settings,
        )
        return run.id
