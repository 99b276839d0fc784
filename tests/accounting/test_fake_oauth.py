"""The OAuth2 providers' fakes on their own, called with httpx (no application involved): the
token endpoint rotates single-use refresh tokens, the API wants the current bearer token (and
Xero its tenant), pages cover every customer once with exact amounts, and each fault does what
it says. The application's tests rely on all of this."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.accounting.fake_oauth import (
    CLIENT_SECRETS,
    FIRST_REFRESH_TOKENS,
    HANG,
    OTHER_XERO_TENANT_ID,
    XERO_TENANT_ID,
    FakeFortnox,
    FakeVisma,
    FakeXero,
    OAuthFake,
    fortnox_customer,
    fortnox_invoice,
    xero_contact,
)

LIST_KEYS = {"fortnox": "Customers", "xero": "Contacts", "visma-eaccounting": "Data"}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


def refresh(
    http: httpx.Client, fake: OAuthFake, token: str | None = None, **kwargs: Any
) -> httpx.Response:
    options: dict[str, Any] = {"auth": (fake.client_id, fake.client_secret), **kwargs}
    form = {"grant_type": "refresh_token", "refresh_token": token or fake.refresh_token}
    return http.post(fake.token_url, data=form, **options)


def access(http: httpx.Client, fake: OAuthFake) -> str:
    r = refresh(http, fake)
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


def headers(fake: OAuthFake, token: str | None, tenant: str | None = None) -> dict[str, str]:
    out = {"Accept": "application/json"}
    if token is not None:
        out["Authorization"] = f"Bearer {token}"
    if fake.provider == "xero":
        out["xero-tenant-id"] = tenant or XERO_TENANT_ID
    return out


def page_of(
    http: httpx.Client,
    fake: OAuthFake,
    token: str | None,
    page: int,
    size: int,
    path: str | None = None,
    tenant: str | None = None,
) -> httpx.Response:
    path = path or fake.list_path
    params: dict[str, Any] = {fake.page_param: page, fake.size_param: size}
    if path == "/3/invoices":
        params["filter"] = "unpaid"
    if fake.provider == "xero":
        params["order"] = "ContactID"
    return http.get(
        fake.base_url + path, params=params, headers=headers(fake, token, tenant=tenant)
    )


def parsed(response: httpx.Response) -> Any:
    return json.loads(response.text, parse_float=Decimal)


def page_count(fake: OAuthFake, body: dict[str, Any]) -> Any:
    meta, key = fake.page_count_at
    return body[meta][key]


def read_all(
    http: httpx.Client, fake: OAuthFake, token: str, size: int, path: str | None = None
) -> list[dict[str, Any]]:
    key = LIST_KEYS[fake.provider] if path != "/3/invoices" else "Invoices"
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        r = page_of(http, fake, token, page, size, path)
        assert r.status_code == 200, r.text
        body = parsed(r)
        items += body[key]
        if not body[key] or page >= page_count(fake, body):
            return items
        page += 1


# -- the token endpoint -----------------------------------------------------------------------


def test_a_refresh_token_is_single_use_and_rotated(
    http: httpx.Client, oauth_fake: OAuthFake
) -> None:
    fake = oauth_fake
    first = fake.refresh_token
    assert first == FIRST_REFRESH_TOKENS[fake.provider]
    r = refresh(http, fake)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"access_token", "refresh_token", "expires_in", "token_type"} <= set(body)
    assert body["token_type"].lower() == "bearer"
    assert body["refresh_token"] != first
    assert fake.refresh_token == body["refresh_token"]

    again = refresh(http, fake, token=first)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    newer = refresh(http, fake, token=body["refresh_token"])
    assert newer.status_code == 200
    assert newer.json()["refresh_token"] not in (first, body["refresh_token"])

    calls = fake.token_calls
    assert [(c.refresh_token, c.status) for c in calls] == [
        (first, 200),
        (first, 400),
        (body["refresh_token"], 200),
    ]
    assert calls[0].issued_refresh_token == body["refresh_token"]
    assert calls[0].issued_access_token == body["access_token"]
    assert calls[1].issued_refresh_token is None
    assert all(c.grant_type == "refresh_token" for c in calls)
    assert all(c.client_id == fake.client_id for c in calls)
    assert set(fake.secrets()) >= {
        CLIENT_SECRETS[fake.provider],
        first,
        body["refresh_token"],
        body["access_token"],
    }


def test_the_token_endpoint_wants_the_client_and_a_form(
    http: httpx.Client, oauth_fake: OAuthFake
) -> None:
    fake = oauth_fake
    wrong = refresh(http, fake, auth=(fake.client_id, "not-the-secret"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    missing = http.post(
        fake.token_url, data={"grant_type": "refresh_token", "refresh_token": fake.refresh_token}
    )
    assert missing.status_code == 401
    as_json = http.post(
        fake.token_url,
        json={"grant_type": "refresh_token", "refresh_token": fake.refresh_token},
        auth=(fake.client_id, fake.client_secret),
    )
    assert as_json.status_code == 400
    other_grant = http.post(
        fake.token_url,
        data={"grant_type": "client_credentials"},
        auth=(fake.client_id, fake.client_secret),
    )
    assert other_grant.json()["error"] == "unsupported_grant_type"
    # None of these spent the refresh token.
    assert fake.refresh_token == FIRST_REFRESH_TOKENS[fake.provider]
    assert refresh(http, fake).status_code == 200


def test_authorize_kills_the_stored_refresh_token(
    http: httpx.Client, oauth_fake: OAuthFake
) -> None:
    old = oauth_fake.refresh_token
    new = oauth_fake.authorize()
    assert new != old
    assert refresh(http, oauth_fake, token=old).json()["error"] == "invalid_grant"
    assert refresh(http, oauth_fake, token=new).status_code == 200


# -- the API ----------------------------------------------------------------------------------


def test_the_api_wants_the_current_access_token(http: httpx.Client, oauth_fake: OAuthFake) -> None:
    fake = oauth_fake
    fake.set_balances({"101": "1.00"})
    none = page_of(http, fake, None, 1, 10)
    assert none.status_code == 401
    old = access(http, fake)
    assert page_of(http, fake, old, 1, 10).status_code == 200
    new = access(http, fake)
    stale = page_of(http, fake, old, 1, 10)
    assert stale.status_code == 401
    assert old in stale.text  # the careless echo the adapter must not relay
    body = stale.json()
    if fake.provider == "fortnox":
        assert body["ErrorInformation"]["code"] == 2000311
    elif fake.provider == "xero":
        assert body["Status"] == 401
        assert body["Detail"].startswith("TokenExpired")
    else:
        assert {"ErrorCode", "DeveloperErrorMessage", "ErrorId"} <= set(body)
    assert page_of(http, fake, new, 1, 10).status_code == 200
    fake.expire_access_token()
    assert page_of(http, fake, new, 1, 10).status_code == 401
    assert [r.status for r in fake.api_requests()] == [401, 200, 401, 200, 401]


def test_xero_wants_the_connected_tenant(http: httpx.Client, xero: FakeXero) -> None:
    token = access(http, xero)
    tenants = http.get(f"{xero.base_url}/connections", headers={"Authorization": f"Bearer {token}"})
    assert tenants.status_code == 200
    assert XERO_TENANT_ID in [t["tenantId"] for t in tenants.json()]
    other = page_of(http, xero, token, 1, 10, tenant=OTHER_XERO_TENANT_ID)
    assert other.status_code == 403
    assert other.json()["Detail"] == "AuthenticationUnsuccessful"
    r = http.get(
        xero.base_url + xero.list_path,
        params={"page": 1},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403
    assert page_of(http, xero, token, 1, 10).status_code == 200
    assert "X-MinLimit-Remaining" in page_of(http, xero, token, 1, 10).headers


def test_pages_cover_every_customer_once_with_exact_amounts(
    http: httpx.Client, oauth_fake: OAuthFake
) -> None:
    fake = oauth_fake
    fake.set_balances(
        {"101": "6259.20", "102": "0.10", "103": "-50.00", "104": "0"},
        filler=fake.max_page_size + 10,
        last={"999999": "98765432.19"},
    )
    token = access(http, fake)
    size = fake.max_page_size
    items = read_all(http, fake, token, size)
    assert len(items) == fake.remote_count == fake.max_page_size + 15
    assert fake.pages_asked() == [1, 2]
    first = parsed(page_of(http, fake, token, 1, size))
    assert page_count(fake, first) == 2
    beyond = parsed(page_of(http, fake, token, 3, size))
    assert beyond[LIST_KEYS[fake.provider]] == []
    if fake.provider == "fortnox":
        assert first["MetaInformation"] == {
            "@TotalResources": fake.remote_count,
            "@TotalPages": 2,
            "@CurrentPage": 1,
        }
        numbers = [c["CustomerNumber"] for c in items]
        assert numbers[:4] == ["101", "102", "103", "104"]
        assert numbers[-1] == "999999"
        assert all(isinstance(n, str) for n in numbers)
        invoices = read_all(http, fake, token, size, "/3/invoices")
        assert len(invoices) == fake.list_total("/3/invoices")
        sums: dict[str, Decimal] = {}
        for invoice in invoices:
            assert invoice["Cancelled"] is False
            assert invoice["Currency"] == fake.currency
            assert invoice["@url"].startswith(fake.base_url)
            sums[invoice["CustomerNumber"]] = (
                sums.get(invoice["CustomerNumber"], Decimal(0)) + invoice["Balance"]
            )
        assert sums["101"] == Decimal("6259.20")
        assert sums["103"] == Decimal("-50.00")
        assert "104" not in sums  # paid everything: no unpaid invoice
        assert sums["999999"] == Decimal("98765432.19")
        # The filter matters: unfiltered, the fully paid invoices come too.
        r = http.get(
            f"{fake.base_url}/3/invoices",
            params={"limit": 500, "page": 1},
            headers=headers(fake, token),
        )
        assert parsed(r)["MetaInformation"]["@TotalResources"] > len(invoices)
        raw = page_of(http, fake, token, 1, size, "/3/invoices").text
        assert '"Balance": 3129.60' in raw  # 6259.20 in two halves, decimals kept
    elif fake.provider == "xero":
        assert first["pagination"] == {
            "page": 1,
            "pageSize": size,
            "pageCount": 2,
            "itemCount": fake.remote_count,
        }
        assert first["Status"] == "OK"
        by_number = {c["ContactNumber"]: c for c in items}
        outstanding = by_number["101"]["Balances"]["AccountsReceivable"]["Outstanding"]
        assert outstanding == Decimal("6259.20")
        assert by_number["101"]["DefaultCurrency"] == fake.currency
        ids = [c["ContactID"] for c in items]
        assert ids == sorted(ids)
        assert '"Outstanding": 6259.20' in page_of(http, fake, token, 1, size).text
    else:
        assert first["Meta"]["PageSize"] == size
        assert first["Meta"]["TotalNumberOfResults"] == fake.remote_count
        by_number = {c["CustomerNumber"]: c for c in items}
        assert by_number["999999"]["UnpaidInvoicesAmount"] == Decimal("98765432.19")
        assert '"UnpaidInvoicesAmount": 6259.20' in page_of(http, fake, token, 1, size).text


def test_fortnox_refuses_a_limit_over_500(http: httpx.Client, fortnox: FakeFortnox) -> None:
    token = access(http, fortnox)
    r = page_of(http, fortnox, token, 1, 501)
    assert r.status_code == 400
    assert r.json()["ErrorInformation"]["code"] == 2000588


def test_fortnox_unpaid_filter_leaves_out_cancelled_and_paid(
    http: httpx.Client, fortnox: FakeFortnox
) -> None:
    fortnox.set_customers([fortnox_customer("1")])
    fortnox.set_invoices(
        [
            fortnox_invoice(1, "1", "10.00"),
            fortnox_invoice(2, "1", "20.00", cancelled=True),
            fortnox_invoice(3, "1", "0", fully_paid=True),
            fortnox_invoice(4, "1", "-3.00"),
        ]
    )
    token = access(http, fortnox)
    invoices = read_all(http, fortnox, token, 100, "/3/invoices")
    assert [i["DocumentNumber"] for i in invoices] == ["1", "4"]


def test_visma_serves_at_most_its_cap_and_says_so(http: httpx.Client, visma: FakeVisma) -> None:
    visma.page_size_cap = 100
    visma.set_balances({}, filler=250)
    token = access(http, visma)
    body = parsed(page_of(http, visma, token, 1, 500))
    assert body["Meta"]["PageSize"] == 100
    assert body["Meta"]["TotalNumberOfPages"] == 3
    assert len(body["Data"]) == 100
    assert len(read_all(http, visma, token, 500)) == 250


def test_xero_leaves_archived_contacts_out(http: httpx.Client, xero: FakeXero) -> None:
    xero.set_contacts(
        [xero_contact(1, "1.00"), xero_contact(2, "2.00", status="ARCHIVED"), xero_contact(3, None)]
    )
    token = access(http, xero)
    items = read_all(http, xero, token, 100)
    assert [c["ContactID"] for c in items] == [
        xero_contact(1, 0)["ContactID"],
        xero_contact(3, 0)["ContactID"],
    ]
    assert "Balances" not in items[1]
    assert xero.remote_count == 2


# -- faults -----------------------------------------------------------------------------------


def test_status_faults_carry_the_providers_body_and_headers(
    http: httpx.Client, oauth_fake: OAuthFake
) -> None:
    fake = oauth_fake
    fake.set_balances({"101": "1.00"}, filler=fake.max_page_size)
    token = access(http, fake)
    fault = fake.add_fault(
        "status",
        status=429,
        page=2,
        times=1,
        headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute"},
    )
    assert page_of(http, fake, token, 1, fake.max_page_size).status_code == 200
    r = page_of(http, fake, token, 2, fake.max_page_size)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "7"
    assert r.headers["X-Rate-Limit-Problem"] == "minute"
    body = r.json()
    if fake.provider == "fortnox":
        assert "ErrorInformation" in body
    elif fake.provider == "xero":
        assert body["Status"] == 429
    else:
        assert body["ErrorCode"] == 4010
    assert page_of(http, fake, token, 2, fake.max_page_size).status_code == 200
    assert (fault.used, fault.completed) == (1, 0)
    forbidden = fake.add_fault("status", status=403)
    r = page_of(http, fake, token, 1, 10)
    assert r.status_code == 403
    if fake.provider == "xero":
        assert r.json()["Detail"] == "AuthenticationUnsuccessful"
    assert forbidden.used == 1


def test_expire_token_forces_a_refresh(http: httpx.Client, oauth_fake: OAuthFake) -> None:
    fake = oauth_fake
    fake.set_balances({"101": "1.00"})
    fault = fake.add_fault("expire_token", page=1, times=1)
    token = access(http, fake)
    assert page_of(http, fake, token, 1, 10).status_code == 401
    assert page_of(http, fake, token, 1, 10).status_code == 401  # that token is dead
    fresh = access(http, fake)
    assert page_of(http, fake, fresh, 1, 10).status_code == 200
    assert fault.used == 1


@pytest.mark.parametrize(
    "kind", ["malformed", "not_object", "no_list", "no_page_count", "page_count", "amount_string"]
)
def test_body_faults(http: httpx.Client, oauth_fake: OAuthFake, kind: str) -> None:
    fake = oauth_fake
    fake.set_balances({"101": "12.50"})
    options: dict[str, Any] = {"path": fake.amount_path, "times": 1}
    if kind == "page_count":
        options["value"] = "2"
    fault = fake.add_fault(kind, **options)
    token = access(http, fake)
    r = page_of(http, fake, token, 1, 10, fake.amount_path)
    assert r.status_code == 200
    assert fault.used == 1
    key = "Invoices" if fake.amount_path == "/3/invoices" else LIST_KEYS[fake.provider]
    if kind == "malformed":
        with pytest.raises(ValueError):
            r.json()
        return
    body = r.json()
    if kind == "not_object":
        assert isinstance(body, list)
    elif kind == "no_list":
        assert key not in body
        meta, _ = fake.page_count_at
        assert meta in body
    elif kind == "no_page_count":
        meta, count = fake.page_count_at
        assert count not in body[meta]
        assert body[key]
    elif kind == "page_count":
        assert page_count(fake, body) == "2"
    else:
        text = r.text
        if fake.provider == "fortnox":
            assert '"Balance": "6.25"' in text
        elif fake.provider == "xero":
            assert '"Outstanding": "12.50"' in text
        else:
            assert '"UnpaidInvoicesAmount": "12.50"' in text
    # Once only: the next answer is well-formed again.
    again = parsed(page_of(http, fake, token, 1, 10, fake.amount_path))
    assert page_count(fake, again) == 1


@pytest.mark.parametrize("kind", ["growing_pages", "endless_pages"])
def test_runaway_paging(http: httpx.Client, oauth_fake: OAuthFake, kind: str) -> None:
    fake = oauth_fake
    fake.set_balances({"101": "1.00", "102": "2.00"})
    fault = fake.add_fault(kind, path=fake.list_path, times=6)
    token = access(http, fake)
    counts = []
    for page in range(1, 6):
        body = parsed(page_of(http, fake, token, page, 10))
        counts.append(page_count(fake, body))
        assert body[LIST_KEYS[fake.provider]], page  # every page full of customers
    if kind == "growing_pages":
        assert counts == [2, 3, 4, 5, 6]
    else:
        assert counts == [1_000_000] * 5
    assert fault.used == 5
    page_of(http, fake, token, 6, 10)  # the sixth and last use
    ended = parsed(page_of(http, fake, token, 7, 10))
    assert ended[LIST_KEYS[fake.provider]] == []
    assert page_count(fake, ended) == 1


def test_token_faults_leave_the_refresh_token_valid(
    http: httpx.Client, oauth_fake: OAuthFake
) -> None:
    fake = oauth_fake
    first = fake.refresh_token
    down = fake.add_token_fault("status", status=500, times=1)
    r = refresh(http, fake)
    assert r.status_code == 500
    assert r.json()["error"] == "server_error"
    grant = fake.add_token_fault("token_error", times=1)
    r = refresh(http, fake)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    client = fake.add_token_fault("token_error", error="invalid_client", times=1)
    r = refresh(http, fake)
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
    junk = fake.add_token_fault("malformed", times=1)
    with pytest.raises(ValueError):
        refresh(http, fake).json()
    assert refresh(http, fake).status_code == 200
    assert [c.refresh_token for c in fake.token_calls] == [first] * 5
    assert [c.status for c in fake.token_calls] == [500, 400, 401, 200, 200]
    assert (down.used, grant.used, client.used, junk.used) == (1, 1, 1, 1)
    # An API fault never touches the token endpoint.
    fake.add_fault("status", status=503)
    assert refresh(http, fake).status_code == 200


def test_a_hang_is_given_up_on_and_reset_releases_it(
    http: httpx.Client, oauth_fake: OAuthFake
) -> None:
    fake = oauth_fake
    fake.set_balances({"101": "1.00"})
    hang = fake.add_token_fault("delay", seconds=HANG, times=1)
    with pytest.raises(httpx.ReadTimeout):
        refresh(http, fake, timeout=httpx.Timeout(5, read=0.5))
    assert (hang.used, hang.completed) == (1, 0)
    token = access(http, fake)
    slow = fake.add_fault("delay", seconds=HANG, page=1)
    with pytest.raises(httpx.ReadTimeout):
        http.get(
            fake.base_url + fake.list_path,
            params={fake.page_param: 1},
            headers=headers(fake, token),
            timeout=httpx.Timeout(5, read=0.5),
        )
    fake.release(slow)  # later requests pass at once
    assert page_of(http, fake, token, 1, 10).status_code == 200
    assert (slow.used, slow.completed) == (2, 0)
    fake.reset()
    assert fake.requests == []
    assert fake.token_calls == []
    assert fake.refresh_token == FIRST_REFRESH_TOKENS[fake.provider]
    assert fake.remote_count == 0
