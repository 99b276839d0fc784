"""Live fakes of Fortnox, Xero and Visma eAccounting, served for real over HTTP (the
``LiveServer``/``serve`` machinery of ``fake_economic``).

Each fake serves BOTH its API and its OAuth2 token endpoint on one port, so a connection points
``base_url`` at ``fake.base_url`` and ``token_url`` at ``fake.token_url``. They speak the
contract of ``design/accounting-providers.md``:

- the token endpoint (Fortnox ``/oauth-v1/token``, Xero and Visma ``/connect/token``) takes a
  form ``grant_type=refresh_token&refresh_token=...`` with ``Authorization: Basic
  base64(client_id:client_secret)`` and answers ``access_token``, ``refresh_token``,
  ``expires_in``, ``token_type``; every refresh issues a NEW refresh token and kills the old one
  (only the newest is accepted; the old access token dies too). A wrong refresh token answers 400
  ``invalid_grant``, a wrong client 401 ``invalid_client``. Every call is kept in
  ``token_calls`` with the refresh token it carried and the ones it issued.
- API calls need ``Authorization: Bearer <the current access token>`` (Xero also
  ``xero-tenant-id`` equal to the connected tenant, else 403 ``AuthenticationUnsuccessful``);
  otherwise 401 with the provider's error body. A careless server, the fake echoes the token it was
  offered in that body (and the refresh token in an ``invalid_grant``): the adapter must not relay
  either.
- Fortnox ``GET /3/customers?limit=N&page=P`` and ``GET /3/invoices?filter=unpaid&...``
  (``MetaInformation`` envelope); Xero ``GET /connections`` and ``GET
  /api.xro/2.0/Contacts?page=P&pageSize=N&order=ContactID``; Visma ``GET
  /v2/customers?$page=P&$pagesize=N`` (``Meta``/``Data``). Amounts are JSON numbers with their
  decimals exactly as stored (``fake_economic.dumps``).

Tests set the remote data with ``set_balances`` (the same call for all three: customer ref to
the balance the provider should yield) or the provider's own setters, and make a fake misbehave
with ``add_fault`` / ``add_token_fault`` (see ``OAuthFault``). ``reset`` puts a fake back to a
well-behaved, empty server with its first refresh token; ``requests`` holds every request.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import math
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, cast
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.accounting.fake_economic import HANG, Fault, LiveServer, Seen, dumps, serve

__all__ = [
    "CLIENT_IDS",
    "CLIENT_SECRETS",
    "FIRST_REFRESH_TOKENS",
    "HANG",
    "OTHER_XERO_TENANT_ID",
    "PROVIDERS",
    "XERO_TENANT_ID",
    "Call",
    "FakeFortnox",
    "FakeVisma",
    "FakeXero",
    "OAuthFake",
    "OAuthFault",
    "TokenCall",
    "fortnox_customer",
    "fortnox_invoice",
    "make_fake",
    "serve_oauth",
    "visma_customer",
    "xero_contact",
]

PROVIDERS = ("fortnox", "xero", "visma-eaccounting")

CLIENT_IDS = {
    "fortnox": "fake-fortnox-client-id-Fo1",
    "xero": "FAKEXEROCLIENTID0123456789ABCDEF",
    "visma-eaccounting": "fake-visma-client-id-Vi1",
}
CLIENT_SECRETS = {
    "fortnox": "fake-fortnox-client-secret-Kq3Zr8Lw5Tn2",
    "xero": "fake-xero-client-secret-Pm7Yd1Hs4Gx9",
    "visma-eaccounting": "fake-visma-client-secret-Bc6Nj2Vf8Qe3",
}
FIRST_REFRESH_TOKENS = {
    "fortnox": "fake-fortnox-refresh-first-Wd4Ks9Pa",
    "xero": "fake-xero-refresh-first-Ly2Hb7Rc",
    "visma-eaccounting": "fake-visma-refresh-first-Ue5Gm1Tz",
}
XERO_TENANT_ID = "3f1c2a44-9b7e-4c1d-8a55-0e6f7d8c9b10"
OTHER_XERO_TENANT_ID = "9d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6"

# Page counts reported by ``endless_pages`` unless the fault's ``value`` says otherwise.
ENDLESS = 1_000_000
RUNAWAY_KINDS = ("growing_pages", "endless_pages")


@dataclass(eq=False)  # one fault is itself only (kept in sets while sleeping)
class OAuthFault(Fault):
    """One misbehaviour. ``kind`` is one of:

    On API paths and the token endpoint:
    ``status``        answer ``status`` with ``headers`` and the provider's error body (on the
                      token endpoint an OAuth error body, ``{"error": "server_error"}`` for 5xx)
    ``delay``         wait ``seconds`` before answering normally (a hang when longer than the
                      client's read timeout: use ``HANG``)
    ``malformed``     answer 200 with a body that is not JSON
    ``not_object``    answer 200 with a JSON list

    On the token endpoint only:
    ``token_error``   answer the OAuth error ``error`` (``invalid_grant``: 400,
                      ``invalid_client``: 401) whatever the request; the refresh token offered
                      stays valid

    On API paths only:
    ``expire_token``  the current access token dies now (as if it expired): this request and every
                      later one carrying it answer 401; only a refresh brings a working token
    ``no_list``       leave the envelope's list (``Customers``, ``Invoices``, ``Contacts``,
                      ``Data``) out
    ``no_page_count`` leave the page count (``@TotalPages``, ``pageCount``,
                      ``TotalNumberOfPages``) out
    ``page_count``    report ``value`` as the page count (``"2"``, ``1.5``, ``None`` ...)
    ``amount_string`` write the first amount on the page as a JSON string (``"12.50"``); for
                      Fortnox only invoices carry amounts (``path=FakeFortnox.amount_path``)
    ``items``         replace the page's list with ``items`` (raw JSON-able objects)
    ``growing_pages`` runaway paging: every page reports one page more than its own number and
                      pages past the real ones keep coming, full of new customers
    ``endless_pages`` runaway paging: every page reports ``value`` pages (default a million),
                      and pages past the real ones keep coming, full of new customers

    ``path`` limits it to one path (``None``: every API path, never the token endpoint; use
    ``OAuthFake.add_token_fault`` for that), ``page`` to one page number (1-based), ``times`` to
    that many matching requests (``None``: every one; give runaway faults a ``times`` so that a
    client without a guard still ends).

    ``used`` counts the requests it hit; ``completed`` the ``delay`` answers sent after their
    whole delay (not when ``reset`` or ``release`` cut it short).
    """

    error: str = "invalid_grant"
    value: Any = None

    def hits(self, path: str, page: int | None, token_path: str) -> bool:
        if self.path is None and path == token_path:
            return False
        return self.matches(path, page)


@dataclass
class Call(Seen):
    """A request the fake received, its form body (token endpoint) and the status answered."""

    form: dict[str, str] = field(default_factory=dict)
    status: int = 0

    @property
    def bearer(self) -> str | None:
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token if scheme.lower() == "bearer" else None


@dataclass
class TokenCall:
    """One request to the token endpoint."""

    refresh_token: str | None  # the one it carried
    grant_type: str | None
    client_id: str | None  # from its Basic credentials
    status: int = 0
    issued_refresh_token: str | None = None  # set when it succeeded
    issued_access_token: str | None = None


def _decimal(value: Decimal | str | int) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _id(index: int) -> str:
    """A uuid whose text sorts like ``index`` (so ``order=ContactID`` keeps insertion order)."""
    return f"{index:08x}-0000-4000-8000-{index:012x}"


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


class OAuthFake:
    """What the three fakes share: state, token endpoint, bearer check, paging and faults."""

    provider: ClassVar[str]
    token_path: ClassVar[str]
    list_path: ClassVar[str]  # the customers (contacts) list: what ``fetched`` counts
    amount_path: ClassVar[str]  # the list that carries the amounts
    page_param: ClassVar[str] = "page"
    size_param: ClassVar[str]
    default_page_size: ClassVar[int]
    max_page_size: ClassVar[int]
    clamp_page_size: ClassVar[bool] = True  # False: a larger size answers 400
    page_count_at: ClassVar[tuple[str, str]]  # (meta key, page count key) in the envelope
    default_currency: ClassVar[str] = "SEK"
    expires_in: ClassVar[int] = 3600
    token_type: ClassVar[str] = "Bearer"
    scope: ClassVar[str] = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified on every recorded request
        self._sleepers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event, OAuthFault]] = set()
        self.base_url = ""  # set once the server listens
        self._counter = 0
        self._generation = 0  # bumped by reset
        self.client_id = ""
        self.client_secret = ""
        self.refresh_token = ""  # the only one the token endpoint accepts
        self.access_token: str | None = None  # the only one the API accepts
        self.tenant_id: str | None = None
        self.currency = self.default_currency
        self.page_size_cap = self.max_page_size
        self._faults: list[OAuthFault] = []
        self._requests: list[Call] = []
        self._token_calls: list[TokenCall] = []
        self._issued: list[str] = []
        self.app = Starlette(
            routes=[
                Route(self.token_path, self._endpoint(self._token), methods=["POST"]),
                *[
                    Route(path, self._endpoint(handler), methods=["GET"])
                    for path, handler in self._routes().items()
                ],
                Route(
                    "/{rest:path}",
                    self._endpoint(self._anything),
                    methods=["GET", "POST", "PUT", "DELETE"],
                ),
            ]
        )
        self.reset()

    # -- what tests call -----------------------------------------------------------------

    @property
    def token_url(self) -> str:
        return f"{self.base_url}{self.token_path}"

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self.client_id = CLIENT_IDS[self.provider]
            self.client_secret = CLIENT_SECRETS[self.provider]
            self.refresh_token = FIRST_REFRESH_TOKENS[self.provider]
            self.access_token = None
            self.tenant_id = XERO_TENANT_ID if self.provider == "xero" else None
            self.currency = self.default_currency
            self.page_size_cap = self.max_page_size
            self._faults = []
            self._requests = []
            self._token_calls = []
            self._issued = [self.refresh_token]
            self._reset_data()
            sleepers, self._sleepers = self._sleepers, set()
        for loop, released, _ in sleepers:  # wakes a handler still sleeping for an earlier test
            with contextlib.suppress(RuntimeError):  # its server has stopped
                loop.call_soon_threadsafe(released.set)

    def connection_body(self, **overrides: Any) -> dict[str, Any]:
        """A ``PUT /api/v1/accounting/connection`` body for this fake, with its current
        refresh token."""
        body: dict[str, Any] = {
            "provider": self.provider,
            "base_url": self.base_url,
            "token_url": self.token_url,
            "enabled": True,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": self.refresh_token,
        }
        if self.provider == "xero":
            body["tenant_id"] = self.tenant_id
        body.update(overrides)
        return body

    def add_fault(self, kind: str, **options: Any) -> OAuthFault:
        fault = OAuthFault(kind=kind, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_token_fault(self, kind: str, **options: Any) -> OAuthFault:
        return self.add_fault(kind, path=self.token_path, **options)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    def release(self, fault: OAuthFault) -> None:
        """End ``fault``'s delay now, for the requests sleeping in it and every later one."""
        with self._lock:
            fault.released = True
            woken = {s for s in self._sleepers if s[2] is fault}
            self._sleepers -= woken
        for loop, released, _ in woken:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(released.set)

    def expire_access_token(self) -> None:
        """The current access token dies now: the next API call with it answers 401."""
        with self._lock:
            self.access_token = None

    def authorize(self) -> str:
        """Someone went through the consent flow again (outside the service): a new refresh
        token, the stored one dies. Returns the new one (to PUT)."""
        with self._lock:
            self.refresh_token = self._new_token("refresh")
            self._issued.append(self.refresh_token)
            return self.refresh_token

    def secrets(self) -> list[str]:
        """Every secret of this test: the client secret, every refresh and access token."""
        with self._lock:
            return [self.client_secret, *self._issued]

    @property
    def requests(self) -> list[Call]:
        with self._lock:
            return list(self._requests)

    @property
    def token_calls(self) -> list[TokenCall]:
        with self._lock:
            return list(self._token_calls)

    def api_requests(self, path: str | None = None) -> list[Call]:
        """Requests other than to the token endpoint (only to ``path`` when given)."""
        return [
            r
            for r in self.requests
            if r.path != self.token_path and (path is None or r.path == path)
        ]

    def pages_asked(self, path: str | None = None) -> list[int]:
        """The page numbers asked of ``path`` (default: ``list_path``), in order."""
        return [
            int(r.query.get(self.page_param, "1"))
            for r in self.api_requests(path or self.list_path)
        ]

    def wait_for_requests(self, count: int, path: str, timeout: float = 20) -> bool:
        with self._arrived:
            return self._arrived.wait_for(
                lambda: sum(r.path == path for r in self._requests) >= count, timeout
            )

    # -- what each provider defines --------------------------------------------------------

    def _routes(self) -> dict[str, Callable[[Request, Call], Awaitable[Response]]]:
        raise NotImplementedError

    def _reset_data(self) -> None:
        raise NotImplementedError

    def set_balances(
        self,
        balances: Mapping[str, Decimal | str | int],
        *,
        filler: int = 0,
        last: Mapping[str, Decimal | str | int] | None = None,
    ) -> None:
        """Remote customers keyed by the ref a partner's ``accounting_ref`` matches, each owing
        its balance: ``balances`` first, then ``filler`` other customers (to fill pages), then
        ``last`` (on the last page)."""
        raise NotImplementedError

    @property
    def remote_count(self) -> int:
        """How many remote customers a sync should fetch."""
        raise NotImplementedError

    def list_total(self, path: str) -> int:
        """How many items ``path`` lists (with the filter the contract asks for)."""
        raise NotImplementedError

    def _error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def _unauthorized(self, offered: str | None) -> Response:
        raise NotImplementedError

    def _envelope(
        self, list_key: str, items: list[Any], page: int, size: int, total: int, pages: int
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _synthetic(self, list_key: str, page: int, index: int) -> dict[str, Any]:
        """An item on a page past the real ones (runaway paging)."""
        raise NotImplementedError

    def _stringify_amount(self, item: dict[str, Any]) -> bool:
        """Write ``item``'s amount as a string; False when it has none."""
        raise NotImplementedError

    def _refuse_more(self, request: Request) -> Response | None:
        """A provider's extra check after the bearer token (Xero: the tenant)."""
        return None

    def _success_headers(self) -> dict[str, str]:
        return {}

    # -- plumbing --------------------------------------------------------------------------

    def _new_token(self, what: str) -> str:
        self._counter += 1
        short = self.provider.split("-")[0]
        return f"fake-{short}-{what}-{self._counter:04d}-{uuid.uuid4().hex[:12]}"

    def _endpoint(
        self, handler: Callable[[Request, Call], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            form: dict[str, str] = {}
            if request.method == "POST":
                raw = (await request.body()).decode("utf-8", "replace")
                form = dict(parse_qsl(raw, keep_blank_values=True))
            call = Call(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers={k.lower(): v for k, v in request.headers.items()},
                raw_query=request.url.query,
                form=form,
            )
            with self._lock:
                self._requests.append(call)
                self._arrived.notify_all()
            response = await handler(request, call)
            call.status = response.status_code
            return response

        return endpoint

    def _json(self, body: Any) -> Response:
        return Response(dumps(body), media_type="application/json", headers=self._success_headers())

    def _error(
        self, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return Response(
            dumps(self._error_body(status, message)),
            status_code=status,
            media_type="application/json",
            headers=dict(headers or {}),
        )

    def _fault_for(self, path: str, page: int | None) -> OAuthFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.hits(path, page, self.token_path):
                    fault.used += 1
                    return fault
        return None

    async def _sleep(self, fault: OAuthFault, seconds: float) -> bool:
        """The fault's delay: ``seconds``, or until ``reset``/``release``. True when the whole
        delay passed."""
        sleeper = (asyncio.get_running_loop(), asyncio.Event(), fault)
        with self._lock:
            if fault.released:
                return False
            self._sleepers.add(sleeper)
        try:
            try:
                await asyncio.wait_for(sleeper[1].wait(), seconds)
            except TimeoutError:
                return True
            return False
        finally:
            with self._lock:
                self._sleepers.discard(sleeper)

    def _completed(self, fault: OAuthFault) -> None:
        with self._lock:
            fault.completed += 1

    # -- the token endpoint ----------------------------------------------------------------

    @staticmethod
    def _oauth_error(
        status: int, error: str, description: str = "", headers: Mapping[str, str] | None = None
    ) -> Response:
        body = {"error": error}
        if description:
            body["error_description"] = description
        return Response(
            dumps(body),
            status_code=status,
            media_type="application/json",
            headers={"Cache-Control": "no-store", **dict(headers or {})},
        )

    async def _token(self, request: Request, call: Call) -> Response:
        basic = _basic(request.headers.get("authorization"))
        offered = call.form.get("refresh_token")
        record = TokenCall(
            refresh_token=offered,
            grant_type=call.form.get("grant_type"),
            client_id=basic[0] if basic else None,
        )
        with self._lock:
            self._token_calls.append(record)
        response = await self._token_answer(request, call, basic, offered, record)
        record.status = response.status_code
        return response

    async def _token_answer(
        self,
        request: Request,
        call: Call,
        basic: tuple[str, str] | None,
        offered: str | None,
        record: TokenCall,
    ) -> Response:
        fault = self._fault_for(self.token_path, None)
        if fault is not None:
            if fault.kind == "status":
                error = {400: "invalid_request", 401: "invalid_client", 429: "slow_down"}.get(
                    fault.status, "server_error"
                )
                return self._oauth_error(fault.status, error, "Injected by the test", fault.headers)
            if fault.kind == "token_error":
                status = 401 if fault.error == "invalid_client" else 400
                return self._oauth_error(
                    status, fault.error, f"Refused refresh token {offered!r} (injected)."
                )
            if fault.kind == "malformed":
                return Response('{"access_token": "', media_type="application/json")
            if fault.kind == "not_object":
                return Response("[]", media_type="application/json")
            if fault.kind == "no_access_token":
                pass  # rotates, then answers without the access token (below)
            elif fault.kind == "delay":
                generation = self._generation
                if await self._sleep(fault, fault.seconds):
                    self._completed(fault)
                if generation != self._generation:
                    # ``reset`` ended the test this request belonged to: it must not spend the
                    # next test's refresh token.
                    return self._oauth_error(503, "temporarily_unavailable")
            else:
                raise AssertionError(f"fault {fault.kind} does not apply to the token endpoint")
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return self._oauth_error(400, "invalid_request", "Send a form.")
        if basic is None or basic != (self.client_id, self.client_secret):
            return self._oauth_error(
                401, "invalid_client", "", {"WWW-Authenticate": 'Basic realm="fake"'}
            )
        if call.form.get("grant_type") != "refresh_token":
            return self._oauth_error(400, "unsupported_grant_type")
        with self._lock:
            if offered is None or offered != self.refresh_token:
                valid = False
            else:
                valid = True
                self.refresh_token = self._new_token("refresh")
                self.access_token = self._new_token("access")
                self._issued += [self.refresh_token, self.access_token]
                record.issued_refresh_token = self.refresh_token
                record.issued_access_token = self.access_token
                answer: dict[str, Any] = {
                    "access_token": self.access_token,
                    "refresh_token": self.refresh_token,
                    "expires_in": self.expires_in,
                    "token_type": self.token_type,
                }
                if self.scope:
                    answer["scope"] = self.scope
                if fault is not None and fault.kind == "no_access_token":
                    # The refresh token rotated (the old one is dead), but the answer is
                    # unusable: a client must keep the new one all the same.
                    del answer["access_token"]
        if not valid:
            # "Invalid refresh token: either you have already used the refresh token or it has
            # expired" (Fortnox), with the token echoed as a careless server might.
            return self._oauth_error(
                400, "invalid_grant", f"Invalid refresh token {offered!r}: used or expired."
            )
        return Response(
            dumps(answer),
            media_type="application/json",
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    # -- the API ---------------------------------------------------------------------------

    def _refuse(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            valid = scheme.lower() == "bearer" and bool(token) and token == self.access_token
        if not valid:
            return self._unauthorized(token or None)
        return self._refuse_more(request)

    def _paging(self, request: Request) -> tuple[int, int] | Response:
        try:
            page = int(request.query_params.get(self.page_param, "1"))
            size = int(request.query_params.get(self.size_param, str(self.default_page_size)))
        except ValueError:
            return self._error(400, "The page parameters must be integers.")
        if page < 1 or size < 1:
            return self._error(400, "The page parameters must be positive.")
        if size > self.page_size_cap:
            if not self.clamp_page_size:
                return self._error(400, f"{self.size_param} must be at most {self.page_size_cap}.")
            size = self.page_size_cap
        return page, size

    async def _list(
        self, request: Request, call: Call, list_key: str, items: list[dict[str, Any]]
    ) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        paging = self._paging(request)
        if isinstance(paging, Response):
            return paging
        page, size = paging
        fault = self._fault_for(request.url.path, page)
        total = len(items)
        pages = math.ceil(total / size)
        chunk = items[(page - 1) * size : page * size]
        if fault is not None and fault.kind in RUNAWAY_KINDS:
            if fault.kind == "growing_pages":
                pages = max(pages, page + 1)
            else:
                pages = ENDLESS if fault.value is None else fault.value
            if not chunk:
                chunk = [self._synthetic(list_key, page, i) for i in range(size)]
        body = self._envelope(list_key, chunk, page, size, total, pages)
        return await self._answer(fault, body, list_key, call)

    async def _answer(
        self, fault: OAuthFault | None, body: dict[str, Any], list_key: str, call: Call
    ) -> Response:
        if fault is None or fault.kind in RUNAWAY_KINDS:
            return self._json(body)
        kind = fault.kind
        if kind == "status":
            return self._error(fault.status, f"Injected fault {fault.status}.", fault.headers)
        if kind == "expire_token":
            with self._lock:
                if self.access_token == call.bearer:
                    self.access_token = None
            return self._unauthorized(call.bearer)
        if kind == "delay":
            if await self._sleep(fault, fault.seconds):
                self._completed(fault)
            return self._json(body)
        if kind == "malformed":
            return Response(f'{{"{list_key}": [{{"Name": "Half', media_type="application/json")
        if kind == "not_object":
            return Response("[1, 2, 3]", media_type="application/json")
        meta_key, count_key = self.page_count_at
        if kind == "no_list":
            body.pop(list_key, None)
        elif kind == "no_page_count":
            body[meta_key].pop(count_key, None)
        elif kind == "page_count":
            body[meta_key][count_key] = fault.value
        elif kind == "amount_string":
            body[list_key] = copy.deepcopy(body[list_key])
            if not any(self._stringify_amount(item) for item in body[list_key]):
                raise AssertionError(f"no amount on this page of {call.path}")
        elif kind == "items":
            body[list_key] = fault.items
        else:
            raise AssertionError(f"fault {kind} does not apply to an API list")
        return self._json(body)

    async def _anything(self, request: Request, call: Call) -> Response:
        return self._error(404, "No such resource.")


# -- Fortnox --------------------------------------------------------------------------------


def fortnox_customer(number: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    """A customer as ``GET /3/customers`` lists it (no balance on it)."""
    return {
        "Address1": "Storgatan 1",
        "Address2": "",
        "City": "Stockholm",
        "CustomerNumber": number,
        "Email": f"billing-{number}@example.se",
        "Name": name or f"Kund {number}",
        "OrganisationNumber": "556000-0000",
        "Phone": "08-123 45 67",
        "ZipCode": "111 22",
        **extra,
    }


def fortnox_invoice(
    document: int,
    customer_number: str,
    balance: Decimal | str | int,
    *,
    cancelled: bool = False,
    fully_paid: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """An invoice as ``GET /3/invoices`` lists it; ``Currency`` is the fake's unless given."""
    amount = _decimal(balance)
    return {
        "Balance": amount,
        "Booked": True,
        "Cancelled": cancelled,
        "CurrencyRate": 1,
        "CurrencyUnit": 1,
        "CustomerName": f"Kund {customer_number}",
        "CustomerNumber": customer_number,
        "DocumentNumber": str(document),
        "DueDate": "2024-03-31",
        "ExternalInvoiceReference1": "",
        "FullyPaid": fully_paid,
        "InvoiceDate": "2024-03-01",
        "Sent": True,
        "Total": amount if amount else Decimal("100.00"),
        **extra,
    }


def _number_key(value: str) -> tuple[int, int, str]:
    return (0, int(value), value) if value.isdigit() else (1, 0, value)


class FakeFortnox(OAuthFake):
    provider = "fortnox"
    token_path = "/oauth-v1/token"
    list_path = "/3/customers"
    amount_path = "/3/invoices"
    size_param = "limit"
    default_page_size = 100
    max_page_size = 500
    clamp_page_size = False
    page_count_at = ("MetaInformation", "@TotalPages")
    default_currency = "SEK"
    token_type = "bearer"
    scope = "customer invoice"
    FILTERS: ClassVar[tuple[str, ...]] = (
        "cancelled",
        "fullypaid",
        "unpaid",
        "unpaidoverdue",
        "unbooked",
    )

    def _routes(self) -> dict[str, Callable[[Request, Call], Awaitable[Response]]]:
        return {"/3/customers": self._customers_page, "/3/invoices": self._invoices_page}

    def _reset_data(self) -> None:
        self._customers: list[dict[str, Any]] = []
        self._invoices: list[dict[str, Any]] = []

    def set_customers(self, customers: list[dict[str, Any]]) -> None:
        with self._lock:
            self._customers = sorted(customers, key=lambda c: _number_key(c["CustomerNumber"]))

    def set_invoices(self, invoices: list[dict[str, Any]]) -> None:
        with self._lock:
            self._invoices = sorted(invoices, key=lambda i: _number_key(i["DocumentNumber"]))

    def set_balances(
        self,
        balances: Mapping[str, Decimal | str | int],
        *,
        filler: int = 0,
        last: Mapping[str, Decimal | str | int] | None = None,
    ) -> None:
        """Each nonzero balance as two unpaid invoices beside a fully paid one (which the unpaid
        filter leaves out); a zero balance: only the paid one. Filler customers owe one invoice
        each. Document numbers follow that order, so invoices page like customers."""
        entries = [
            *((ref, _decimal(raw), False) for ref, raw in balances.items()),
            *((f"5{n:05d}", Decimal(n % 50 + 1) + Decimal("0.25"), True) for n in range(filler)),
            *((ref, _decimal(raw), False) for ref, raw in (last or {}).items()),
        ]
        customers, invoices = [], []
        document = 1000
        for ref, amount, is_filler in entries:
            customers.append(fortnox_customer(ref))
            if is_filler:
                parts = [amount]
            else:
                document += 1
                invoices.append(fortnox_invoice(document, ref, 0, fully_paid=True))
                half = (amount / 2).quantize(Decimal("0.01"))
                parts = [half, amount - half] if amount else []
            for part in parts:
                document += 1
                invoices.append(fortnox_invoice(document, ref, part))
        self.set_customers(customers)
        self.set_invoices(invoices)

    @property
    def remote_count(self) -> int:
        with self._lock:
            return len(self._customers)

    def _unpaid(self) -> list[dict[str, Any]]:
        return [i for i in self._invoices if self._passes(i, "unpaid")]

    def list_total(self, path: str) -> int:
        with self._lock:
            return len(self._customers) if path == self.list_path else len(self._unpaid())

    @staticmethod
    def _passes(invoice: dict[str, Any], name: str | None) -> bool:
        cancelled = bool(invoice.get("Cancelled"))
        paid = bool(invoice.get("FullyPaid")) or _decimal(invoice.get("Balance", 0)) == 0
        if name is None:
            return True
        if name == "cancelled":
            return cancelled
        if name == "fullypaid":
            return paid and not cancelled
        if name in ("unpaid", "unpaidoverdue"):
            return not paid and not cancelled
        return not invoice.get("Booked", True)  # unbooked

    def _error_body(self, status: int, message: str) -> dict[str, Any]:
        code = {400: 2000588, 401: 2000311, 403: 2000310, 404: 2000423, 429: 2000429}.get(
            status, 2000000 + status
        )
        return {"ErrorInformation": {"error": 1, "message": message, "code": code}}

    def _unauthorized(self, offered: str | None) -> Response:
        return self._error(401, f"Invalid access token {offered!r}.")

    def _envelope(
        self, list_key: str, items: list[Any], page: int, size: int, total: int, pages: int
    ) -> dict[str, Any]:
        kind = "customers" if list_key == "Customers" else "invoices"
        key = "CustomerNumber" if kind == "customers" else "DocumentNumber"
        shown = [
            {
                "@url": f"{self.base_url}/3/{kind}/{item.get(key)}",
                **({"Currency": self.currency} if kind == "invoices" else {}),
                **item,
            }
            if isinstance(item, dict)
            else item
            for item in items
        ]
        return {
            "MetaInformation": {
                "@TotalResources": total,
                "@TotalPages": pages,
                "@CurrentPage": page,
            },
            list_key: shown,
        }

    def _synthetic(self, list_key: str, page: int, index: int) -> dict[str, Any]:
        number = f"8{page:05d}{index:04d}"
        if list_key == "Customers":
            return fortnox_customer(number)
        return fortnox_invoice(int(number), number, "1.00")

    def _stringify_amount(self, item: dict[str, Any]) -> bool:
        if "Balance" not in item:
            return False
        item["Balance"] = str(item["Balance"])
        return True

    async def _customers_page(self, request: Request, call: Call) -> Response:
        with self._lock:
            customers = list(self._customers)
        return await self._list(request, call, "Customers", customers)

    async def _invoices_page(self, request: Request, call: Call) -> Response:
        name = request.query_params.get("filter")
        if name is not None and name not in self.FILTERS:
            return self._error(400, f"Invalid filter {name!r}.")
        with self._lock:
            invoices = [i for i in self._invoices if self._passes(i, name)]
        return await self._list(request, call, "Invoices", invoices)


# -- Xero -----------------------------------------------------------------------------------


def xero_contact(
    index: int,
    outstanding: Decimal | str | int | None,
    *,
    contact_number: str | None = None,
    currency: str | None = None,
    overdue: Decimal | str | int = 0,
    status: str = "ACTIVE",
    name: str | None = None,
) -> dict[str, Any]:
    """A contact as ``GET /api.xro/2.0/Contacts`` lists it. ``ContactID`` sorts like ``index``;
    ``outstanding=None``: no ``Balances`` at all; ``DefaultCurrency`` is the fake's unless
    given; ``ContactNumber`` only when given."""
    contact: dict[str, Any] = {
        "ContactID": _id(index),
        "ContactStatus": status,
        "Name": name or f"Contact {index}",
        "FirstName": "",
        "LastName": "",
        "EmailAddress": f"contact{index}@example.co.uk",
        "BankAccountDetails": "",
        "Addresses": [],
        "Phones": [],
        "UpdatedDateUTC": "/Date(1709284500000+0000)/",
        "ContactGroups": [],
        "IsSupplier": False,
        "IsCustomer": True,
        "HasAttachments": False,
        "HasValidationErrors": False,
    }
    if contact_number is not None:
        contact["ContactNumber"] = contact_number
    if currency is not None:
        contact["DefaultCurrency"] = currency
    if outstanding is not None:
        contact["Balances"] = {
            "AccountsReceivable": {
                "Outstanding": _decimal(outstanding),
                "Overdue": _decimal(overdue),
            },
            "AccountsPayable": {"Outstanding": Decimal("0.00"), "Overdue": Decimal("0.00")},
        }
    return contact


class FakeXero(OAuthFake):
    provider = "xero"
    token_path = "/connect/token"
    list_path = "/api.xro/2.0/Contacts"
    amount_path = "/api.xro/2.0/Contacts"
    size_param = "pageSize"
    default_page_size = 100
    max_page_size = 1000
    page_count_at = ("pagination", "pageCount")
    default_currency = "GBP"
    expires_in = 1800
    scope = "offline_access accounting.contacts.read"

    def _routes(self) -> dict[str, Callable[[Request, Call], Awaitable[Response]]]:
        return {
            "/connections": self._connections,
            "/Connections": self._connections,
            "/api.xro/2.0/Contacts": self._contacts_page,
        }

    def _reset_data(self) -> None:
        self._contacts: list[dict[str, Any]] = []

    def set_contacts(self, contacts: list[dict[str, Any]]) -> None:
        with self._lock:
            self._contacts = list(contacts)

    def set_balances(
        self,
        balances: Mapping[str, Decimal | str | int],
        *,
        filler: int = 0,
        last: Mapping[str, Decimal | str | int] | None = None,
    ) -> None:
        """One contact per ref, its ``ContactNumber`` the ref."""
        entries = [
            *balances.items(),
            *((f"F{n:05d}", Decimal(n % 50 + 1) + Decimal("0.25")) for n in range(filler)),
            *(last or {}).items(),
        ]
        self.set_contacts(
            [
                xero_contact(index, amount, contact_number=ref)
                for index, (ref, amount) in enumerate(entries, start=1)
            ]
        )

    def _visible(self, archived: bool = False) -> list[dict[str, Any]]:
        return [c for c in self._contacts if archived or c.get("ContactStatus") != "ARCHIVED"]

    @property
    def remote_count(self) -> int:
        with self._lock:
            return len(self._visible())

    def list_total(self, path: str) -> int:
        return self.remote_count

    def _success_headers(self) -> dict[str, str]:
        return {
            "X-DayLimit-Remaining": "4990",
            "X-MinLimit-Remaining": "59",
            "X-AppMinLimit-Remaining": "9999",
        }

    @staticmethod
    def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
        return {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": detail,
            "Instance": str(uuid.uuid4()),
            "Extensions": {},
        }

    def _error_body(self, status: int, message: str) -> dict[str, Any]:
        if status == 400:
            return {"ErrorNumber": 10, "Type": "ValidationException", "Message": message}
        if status == 403:
            return self._problem(403, "Forbidden", "AuthenticationUnsuccessful")
        titles = {401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}
        return self._problem(status, titles.get(status, "Error"), message)

    def _unauthorized(self, offered: str | None) -> Response:
        body = self._problem(
            401, "Unauthorized", f"TokenExpired: token expired at 03/01/2024 09:15:00 ({offered})"
        )
        return Response(
            dumps(body),
            status_code=401,
            media_type="application/json",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )

    def _refuse_more(self, request: Request) -> Response | None:
        if not request.url.path.startswith("/api.xro/"):
            return None
        with self._lock:
            tenant = self.tenant_id
        if request.headers.get("xero-tenant-id") != tenant:
            return self._error(403, "AuthenticationUnsuccessful")
        return None

    def _paging(self, request: Request) -> tuple[int, int] | Response:
        if self.page_param not in request.query_params:  # Xero: every contact, unpaged
            with self._lock:
                return 1, max(1, len(self._visible()))
        return super()._paging(request)

    def _envelope(
        self, list_key: str, items: list[Any], page: int, size: int, total: int, pages: int
    ) -> dict[str, Any]:
        shown = [
            {"DefaultCurrency": self.currency, **item} if isinstance(item, dict) else item
            for item in items
        ]
        return {
            "Id": str(uuid.uuid4()),
            "Status": "OK",
            "ProviderName": "crm-overview tests",
            "DateTimeUTC": "/Date(1709284500000)/",
            "pagination": {"page": page, "pageSize": size, "pageCount": pages, "itemCount": total},
            list_key: shown,
        }

    def _synthetic(self, list_key: str, page: int, index: int) -> dict[str, Any]:
        return xero_contact(10_000_000 + page * 10_000 + index, "1.00", contact_number=None)

    def _stringify_amount(self, item: dict[str, Any]) -> bool:
        receivable = item.get("Balances", {}).get("AccountsReceivable")
        if not receivable or "Outstanding" not in receivable:
            return False
        receivable["Outstanding"] = str(receivable["Outstanding"])
        return True

    async def _connections(self, request: Request, call: Call) -> Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        fault = self._fault_for(request.url.path, None)
        with self._lock:
            tenants = [self.tenant_id, OTHER_XERO_TENANT_ID]
        body = [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, str(tenant))),
                "authEventId": "00000000-0000-4000-8000-00000000a0e1",
                "tenantId": tenant,
                "tenantType": "ORGANISATION",
                "tenantName": "Fake Foods Ltd" if i == 0 else "Another Org Ltd",
                "createdDateUtc": "2024-03-01T09:15:00.0000000",
                "updatedDateUtc": "2024-03-01T09:15:00.0000000",
            }
            for i, tenant in enumerate(tenants)
        ]
        if fault is None:
            return self._json(body)
        if fault.kind == "status":
            return self._error(fault.status, f"Injected fault {fault.status}.", fault.headers)
        if fault.kind == "delay":
            if await self._sleep(fault, fault.seconds):
                self._completed(fault)
            return self._json(body)
        if fault.kind == "malformed":
            return Response('[{"tenantId": ', media_type="application/json")
        if fault.kind == "expire_token":
            self.expire_access_token()
            return self._unauthorized(call.bearer)
        raise AssertionError(f"fault {fault.kind} does not apply to /connections")

    async def _contacts_page(self, request: Request, call: Call) -> Response:
        archived = request.query_params.get("includeArchived", "").lower() == "true"
        with self._lock:
            contacts = self._visible(archived)
        if request.query_params.get("order", "").split(" ")[0].lower() == "contactid":
            contacts.sort(key=lambda c: c["ContactID"])
        else:
            contacts.sort(key=lambda c: c["Name"])
        return await self._list(request, call, "Contacts", contacts)


# -- Visma eAccounting ----------------------------------------------------------------------


def visma_customer(
    index: int,
    number: str,
    unpaid: Decimal | str | int,
    *,
    active: bool = True,
    name: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A customer as ``GET /v2/customers`` lists it (``Id`` sorts like ``index``)."""
    return {
        "Id": _id(index),
        "CustomerNumber": number,
        "CorporateIdentityNumber": "556000-0000",
        "Name": name or f"Kund {number}",
        "InvoiceAddress1": "Storgatan 1",
        "InvoiceCity": "Stockholm",
        "InvoicePostalCode": "11122",
        "EmailAddress": f"billing-{number}@example.se",
        "IsActive": active,
        "IsPrivatePerson": False,
        "TermsOfPaymentId": "8f9a8f7b-5ea9-44c6-9725-9b8a1addb036",
        "ChangedUtc": "2024-03-01T09:15:00Z",
        "UnpaidInvoicesAmount": _decimal(unpaid),
        **extra,
    }


class FakeVisma(OAuthFake):
    provider = "visma-eaccounting"
    token_path = "/connect/token"
    list_path = "/v2/customers"
    amount_path = "/v2/customers"
    page_param = "$page"
    size_param = "$pagesize"
    default_page_size = 50
    max_page_size = 500  # no documented maximum: the answer's Meta.PageSize says what was served
    page_count_at = ("Meta", "TotalNumberOfPages")
    default_currency = "SEK"
    scope = "ea:api offline_access ea:sales_readonly"

    def _routes(self) -> dict[str, Callable[[Request, Call], Awaitable[Response]]]:
        return {"/v2/customers": self._customers_page}

    def _reset_data(self) -> None:
        self._customers: list[dict[str, Any]] = []

    def set_customers(self, customers: list[dict[str, Any]]) -> None:
        with self._lock:
            self._customers = list(customers)

    def set_balances(
        self,
        balances: Mapping[str, Decimal | str | int],
        *,
        filler: int = 0,
        last: Mapping[str, Decimal | str | int] | None = None,
    ) -> None:
        entries = [
            *balances.items(),
            *((f"5{n:05d}", Decimal(n % 50 + 1) + Decimal("0.25")) for n in range(filler)),
            *(last or {}).items(),
        ]
        self.set_customers(
            [
                visma_customer(index, ref, amount)
                for index, (ref, amount) in enumerate(entries, start=1)
            ]
        )

    @property
    def remote_count(self) -> int:
        with self._lock:
            return len(self._customers)

    def list_total(self, path: str) -> int:
        return self.remote_count

    def _error_body(self, status: int, message: str) -> dict[str, Any]:
        if status == 403:
            message = "ForbiddenRequestException - No access to module: api_standard"
        if status == 429:
            message = (
                "API calls quota exceeded! maximum admitted 600 per Minute. "
                "Try again in 55 seconds."
            )
        code = {400: 1000, 401: 4001, 403: 4003, 404: 4004, 429: 4010}.get(status, 5000 + status)
        return {"ErrorCode": code, "DeveloperErrorMessage": message, "ErrorId": str(uuid.uuid4())}

    def _unauthorized(self, offered: str | None) -> Response:
        return self._error(401, f"Unauthorized: access token {offered!r} is not valid.")

    def _envelope(
        self, list_key: str, items: list[Any], page: int, size: int, total: int, pages: int
    ) -> dict[str, Any]:
        return {
            "Meta": {
                "CurrentPage": page,
                "PageSize": size,
                "TotalNumberOfPages": pages,
                "TotalNumberOfResults": total,
                "ServerTimeUtc": "2024-03-01T09:15:00Z",
            },
            list_key: [
                {"CurrencyCode": self.currency, **item} if isinstance(item, dict) else item
                for item in items
            ],
        }

    def _synthetic(self, list_key: str, page: int, index: int) -> dict[str, Any]:
        return visma_customer(10_000_000 + page * 10_000 + index, f"8{page:05d}{index:04d}", 1)

    def _stringify_amount(self, item: dict[str, Any]) -> bool:
        if "UnpaidInvoicesAmount" not in item:
            return False
        item["UnpaidInvoicesAmount"] = str(item["UnpaidInvoicesAmount"])
        return True

    async def _customers_page(self, request: Request, call: Call) -> Response:
        with self._lock:
            customers = list(self._customers)
        if request.query_params.get("$orderby", "").split(" ")[0] == "CustomerNumber":
            customers.sort(key=lambda c: c["CustomerNumber"])
        return await self._list(request, call, "Data", customers)


# -- serving --------------------------------------------------------------------------------

FAKES: dict[str, type[OAuthFake]] = {
    "fortnox": FakeFortnox,
    "xero": FakeXero,
    "visma-eaccounting": FakeVisma,
}


def make_fake(provider: str) -> OAuthFake:
    return FAKES[provider]()


@contextmanager
def serve_oauth(fake: OAuthFake) -> Iterator[LiveServer]:
    """``fake_economic.serve`` for these fakes: a live server, ``fake.base_url`` pointed at it."""
    with serve(cast(Any, fake)) as server:
        yield server
