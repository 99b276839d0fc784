"""A fake Visma e-conomic REST API, served for real over HTTP by uvicorn in a background thread.

It speaks the contract of ``design/e-conomic.md``: both token headers on every request (a
wrong or missing one answers 401 with an e-conomic error body), ``GET /self``, and
``GET /customers?skippages=N&pagesize=M`` (at most 1000) with ``collection``, ``pagination``
(``nextPage`` an absolute URL on its own host, absent on the last page) and ``self``. Amounts
are written as JSON numbers with their decimals exactly as stored (``6259.20``, never a float
rendering).

Each test tells it how to misbehave with ``add_fault``; ``reset`` puts it back to a well-behaved
server with no customers, and every request it receives is recorded in ``requests``. A fault
counts the requests it hit (``used``) and, for the slow kinds, the answers it sent in full after
its whole delay (``completed``): a test learns from the fake, not from a clock, whether a client
waited a hang out or gave up on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

APP_SECRET_TOKEN = "fake-app-secret-Q7vX9kLmN2pR4sT6"
AGREEMENT_GRANT_TOKEN = "fake-grant-token-H3jK5lZ8wY1bC0dF"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 20
# A delay that stands for a hang: no test waits it out (the client's timeout ends the request,
# ``reset`` releases the handler). A hang fault still sleeping, ``completed == 0``, shows that a
# client gave up on it; a test never needs a wall-clock bound for that.
HANG = 60.0


@dataclass(eq=False)  # one fault is itself only (the fake keeps it in sets)
class Fault:
    """One misbehaviour. ``kind`` is one of:

    ``status``      answer ``status`` with ``headers`` and an e-conomic error body
    ``delay``       wait ``seconds`` before answering normally (a hang when longer than the
                    client's read timeout)
    ``stall_body``  send the headers and half the body, then wait ``seconds``, then the rest
    ``drip``        send the normal body one byte every ``seconds`` (slow but never silent for
                    long), for at most ``total`` seconds, then the rest at once
    ``malformed``   answer 200 with a body that is not JSON
    ``not_object``  answer 200 with a JSON list
    ``no_collection`` leave ``collection`` out of the page
    ``next_page``   set ``pagination.nextPage`` to ``url``
    ``redirect``    answer ``status`` (302) with ``Location: url``
    ``customers``   replace the page's collection with ``items`` (raw JSON-able objects)

    ``path`` limits it to one path (``/customers`` or ``/self``), ``page`` to one ``skippages``
    value, ``times`` to that many matching requests (``None``: every one).

    ``used`` counts the requests it hit; ``completed`` those of ``delay``, ``stall_body`` and
    ``drip`` whose whole delay passed and whose whole answer was sent (not when ``reset`` or
    ``FakeEconomic.release`` cut the delay short, nor when the client's leaving ended the
    answer).
    """

    kind: str
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    total: float = 60.0
    url: str = ""
    items: list[Any] = field(default_factory=list)
    path: str | None = None
    page: int | None = None
    times: int | None = None
    used: int = 0
    completed: int = 0
    released: bool = False  # set by FakeEconomic.release: no more delay

    def matches(self, path: str, page: int | None) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if self.path is not None and self.path != path:
            return False
        return self.page is None or self.page == page


@dataclass
class Seen:
    """A request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw_query: str


_DECIMAL = re.compile(r'"__decimal__(-?[0-9.]+)__"')


def dumps(value: Any) -> str:
    """JSON with Decimals written as plain numbers, keeping every decimal digit."""
    text = json.dumps(value, default=lambda d: f"__decimal__{d}__")
    return _DECIMAL.sub(r"\1", text)


def customer(number: int, balance: Decimal | str | int, **extra: Any) -> dict[str, Any]:
    """A customer as e-conomic lists it."""
    amount = balance if isinstance(balance, int) else Decimal(balance)
    return {
        "customerNumber": number,
        "name": f"Customer {number}",
        "currency": "DKK",
        "balance": amount,
        "dueAmount": Decimal("0.00"),
        "creditLimit": None,
        "corporateIdentificationNumber": None,
        "barred": False,
        "lastUpdated": "2024-03-01T09:15:00Z",
        **extra,
    }


class FakeEconomic:
    """The fake's state, shared between the test thread and the server thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified on every recorded request
        # Handlers sleeping in a fault's delay: their loop, what wakes them, and the fault.
        self._sleepers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event, Fault]] = set()
        self.base_url = ""  # set once the server listens
        self.app_secret_token = APP_SECRET_TOKEN
        self.agreement_grant_token = AGREEMENT_GRANT_TOKEN
        self._customers: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._requests: list[Seen] = []
        self.drips_finished = 0  # dripping answers whose whole body was sent
        self._generation = 0  # bumped by reset: a dripping answer of an earlier test stops
        self.app = Starlette(
            routes=[
                Route("/self", self._self, methods=["GET"]),
                Route("/customers", self._customers_page, methods=["GET"]),
                Route("/{rest:path}", self._anything, methods=["GET", "POST", "PUT"]),
            ]
        )

    # -- what tests call -----------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.app_secret_token = APP_SECRET_TOKEN
            self.agreement_grant_token = AGREEMENT_GRANT_TOKEN
            self._customers = []
            self._faults = []
            self._requests = []
            self.drips_finished = 0
            self._generation += 1
            sleepers, self._sleepers = self._sleepers, set()
        for loop, released, _ in sleepers:  # wakes any handler still sleeping for an earlier test
            with contextlib.suppress(RuntimeError):  # its server has stopped
                loop.call_soon_threadsafe(released.set)

    def set_customers(self, customers: list[dict[str, Any]]) -> None:
        with self._lock:
            self._customers = sorted(customers, key=lambda c: c["customerNumber"])

    def add_fault(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind=kind, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def release(self, fault: Fault) -> None:
        """End ``fault``'s delay now, for the requests sleeping in it and every later one: a
        test holds an answer back for exactly as long as it needs, with no clock involved."""
        with self._lock:
            fault.released = True
            woken = {s for s in self._sleepers if s[2] is fault}
            self._sleepers -= woken
        for loop, released, _ in woken:
            with contextlib.suppress(RuntimeError):  # its server has stopped
                loop.call_soon_threadsafe(released.set)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._requests)

    def customer_requests(self) -> list[Seen]:
        return [r for r in self.requests if r.path == "/customers"]

    def wait_for_requests(self, count: int, path: str = "/customers", timeout: float = 20) -> bool:
        """Until ``count`` requests to ``path`` have arrived (False after ``timeout`` seconds)."""
        with self._arrived:
            return self._arrived.wait_for(
                lambda: sum(r.path == path for r in self._requests) >= count, timeout
            )

    # -- the API -------------------------------------------------------------------------

    def _record(self, request: Request) -> None:
        seen = Seen(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            raw_query=request.url.query,
        )
        with self._lock:
            self._requests.append(seen)
            self._arrived.notify_all()

    def _fault_for(self, path: str, page: int | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, page):
                    fault.used += 1
                    return fault
        return None

    @staticmethod
    def error(status: int, message: str, hint: str = "", **headers: str) -> Response:
        body = {
            "message": message,
            "errorCode": f"E{status}00",
            "developerHint": hint,
            "logId": f"log-{status}-0001",
            "httpStatusCode": status,
            "logTime": "2024-03-01T09:15:00",
        }
        return Response(
            dumps(body), status_code=status, media_type="application/json", headers=headers
        )

    def _unauthorized(self, request: Request) -> Response | None:
        app = request.headers.get("x-appsecrettoken")
        grant = request.headers.get("x-agreementgranttoken")
        with self._lock:
            ok = app == self.app_secret_token and grant == self.agreement_grant_token
        if ok:
            return None
        # Echo what was offered, as a careless server might: the adapter must not relay it.
        return self.error(
            401,
            "Unauthorized: the token is not valid.",
            f"Offered X-AppSecretToken={app!r}, X-AgreementGrantToken={grant!r}.",
        )

    async def _sleep(self, fault: Fault, seconds: float) -> bool:
        """The fault's delay: ``seconds``, or until ``reset`` ends the test it was meant for or
        the test releases the fault. True when the whole delay passed."""
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
            return False  # released by reset or release
        finally:
            with self._lock:
                self._sleepers.discard(sleeper)

    def _completed(self, fault: Fault) -> None:
        with self._lock:
            fault.completed += 1

    async def _answer(self, request: Request, page: int | None, body: dict[str, Any]) -> Response:
        fault = self._fault_for(request.url.path, page)
        if fault is None:
            return Response(dumps(body), media_type="application/json")
        if fault.kind == "status":
            return self.error(
                fault.status, f"Fault {fault.status}", "Injected by the test", **fault.headers
            )
        if fault.kind == "delay":
            if await self._sleep(fault, fault.seconds):
                self._completed(fault)
            return Response(dumps(body), media_type="application/json")
        if fault.kind == "malformed":
            return Response('{"collection": [{"customerNumber": 1,', media_type="application/json")
        if fault.kind == "not_object":
            return Response("[1, 2, 3]", media_type="application/json")
        if fault.kind == "no_collection":
            body.pop("collection", None)
            return Response(dumps(body), media_type="application/json")
        if fault.kind == "next_page":
            body.setdefault("pagination", {})["nextPage"] = fault.url
            return Response(dumps(body), media_type="application/json")
        if fault.kind == "customers":
            body["collection"] = fault.items
            return Response(dumps(body), media_type="application/json")
        if fault.kind == "redirect":
            return Response(b"", status_code=fault.status or 302, headers={"Location": fault.url})
        if fault.kind in ("stall_body", "drip"):
            data = dumps(body).encode()
            seconds = fault.seconds
            sleep = self._sleep
            with self._lock:
                generation = self._generation

            async def chunks() -> Any:
                if fault.kind == "stall_body":
                    yield data[: len(data) // 2]
                    waited_out = await sleep(fault, seconds)
                    yield data[len(data) // 2 :]
                    if waited_out:
                        self._completed(fault)
                else:
                    until = time.monotonic() + fault.total
                    for i in range(len(data)):
                        if self._generation != generation:
                            return  # reset: the test this answer was meant for is over
                        if time.monotonic() > until:
                            yield data[i:]
                            break
                        yield data[i : i + 1]
                        await sleep(fault, seconds)
                    self.drips_finished += 1  # the whole body went out
                    self._completed(fault)

            return StreamingResponse(chunks(), media_type="application/json")
        raise AssertionError(f"unknown fault {fault.kind}")

    async def _self(self, request: Request) -> Response:
        self._record(request)
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        body = {
            "agreementNumber": 123456,
            "company": {"name": "Fake Foods ApS"},
            "self": f"{self.base_url}/self",
        }
        return await self._answer(request, None, body)

    async def _customers_page(self, request: Request) -> Response:
        self._record(request)
        refused = self._unauthorized(request)
        if refused is not None:
            return refused
        try:
            skip = int(request.query_params.get("skippages", "0"))
            size = int(request.query_params.get("pagesize", str(DEFAULT_PAGE_SIZE)))
        except ValueError:
            return self.error(400, "skippages and pagesize must be integers.")
        if skip < 0 or not 1 <= size <= MAX_PAGE_SIZE:
            return self.error(
                400, f"pagesize must be between 1 and {MAX_PAGE_SIZE}.", "Lower the pagesize."
            )
        with self._lock:
            customers = list(self._customers)
        total = len(customers)
        start = skip * size
        items = [
            {**c, "self": f"{self.base_url}/customers/{c['customerNumber']}"}
            for c in customers[start : start + size]
        ]
        last = max(0, (total - 1) // size)

        def page_url(n: int) -> str:
            return f"{self.base_url}/customers?skippages={n}&pagesize={size}"

        pagination: dict[str, Any] = {
            "maxPageSizeAllowed": MAX_PAGE_SIZE,
            "skipPages": skip,
            "pageSize": size,
            "results": total,
            "resultsWithoutFilter": total,
            "firstPage": page_url(0),
            "lastPage": page_url(last),
        }
        if skip < last:
            pagination["nextPage"] = page_url(skip + 1)
        body: dict[str, Any] = {
            "collection": items,
            "pagination": pagination,
            "self": f"{self.base_url}/customers",
        }
        return await self._answer(request, skip, body)

    async def _anything(self, request: Request) -> Response:
        self._record(request)
        return self.error(404, "No such resource.")


class _Server(uvicorn.Server):
    """A uvicorn server that tells when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.up.set()


class LiveServer:
    """A uvicorn server on 127.0.0.1 and a free port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="critical",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=5,
        )
        self.server = _Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self._socket])
        finally:
            self.server.up.set()  # also when it failed to start: start() need not wait longer

    def start(self) -> None:
        self._thread.start()
        if not self.server.up.wait(10) or not self.server.started:
            raise RuntimeError("the fake e-conomic server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5)
        self._socket.close()


@contextmanager
def serve(fake: FakeEconomic) -> Iterator[LiveServer]:
    """Start ``fake`` on a live server (for a fixture), point its URLs at it, stop it after."""
    server = LiveServer(fake.app)
    fake.base_url = server.url
    server.start()
    try:
        yield server
    finally:
        server.stop()
