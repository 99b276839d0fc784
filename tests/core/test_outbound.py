"""The outbound HTTP policy: refused destinations are never contacted, in any spelling, at
check time and at connect time; the socket goes to the address that was checked; no
redirects or proxies; bodies are bounded."""

from __future__ import annotations

import socket
import tracemalloc
from typing import Any

import httpcore
import httpx
import pytest

from app.core.outbound import (
    DestinationNotAllowed,
    GuardedTransport,
    OutboundPolicy,
    ResponseEncoded,
    ResponseTooLarge,
    is_public,
    literal_address,
    read_body,
)
from tests.core.listener import declares_huge, endless_json, gzipped, listening

STRICT = OutboundPolicy()
HTTP_ONLY = OutboundPolicy(allow_http=True)  # plain http allowed, private addresses not
OPEN = OutboundPolicy(allow_http=True, allow_private=True)
TIMEOUT = httpx.Timeout(2.0)

# Every way an attacker spelled loopback, private, link-local and metadata addresses.
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "017700000001",
    "0177.0.0.1",
    "127.0.0.1.",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::127.0.0.1]",
    "localhost",
    "LOCALHOST",
    "api.localhost",
]
OTHER_REFUSED_HOSTS = [
    "0.0.0.0",  # noqa: S104
    "0",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "224.0.0.1",
    "255.255.255.255",
    "[fd00:ec2::254]",
    "[fe80::1]",
    "[ff02::1]",
    "[::]",
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo of 127.0.0.1
    "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
    "[2001:db8::1]",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_REFUSED_HOSTS)
def test_check_url_refuses_every_non_public_spelling(host: str) -> None:
    with pytest.raises(DestinationNotAllowed):
        HTTP_ONLY.check_url(f"http://{host}:8080/api")
    with pytest.raises(DestinationNotAllowed):
        STRICT.check_url(f"https://{host}/api")


@pytest.mark.parametrize(
    "url",
    ["https://restapi.e-conomic.com", "https://8.8.8.8/x", "https://[2606:4700:4700::1111]"],
)
def test_check_url_accepts_public_https(url: str) -> None:
    assert STRICT.check_url(url).scheme == "https"


@pytest.mark.parametrize(
    "url",
    ["http://restapi.e-conomic.com", "ftp://example.com", "file:///etc/passwd", "gopher://x"],
)
def test_only_https_unless_allowed(url: str) -> None:
    with pytest.raises(DestinationNotAllowed):
        STRICT.check_url(url)


def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(DestinationNotAllowed):
        STRICT.check_url("https://user:secret@example.com/")


def test_literal_addresses_are_read_as_a_resolver_reads_them() -> None:
    assert str(literal_address("2130706433")) == "127.0.0.1"
    assert str(literal_address("0x7f000001")) == "127.0.0.1"
    assert str(literal_address("127.1")) == "127.0.0.1"
    assert str(literal_address("[::ffff:7f00:1]")) == "::ffff:7f00:1"
    assert literal_address("example.com") is None
    assert literal_address("deadbeef.example") is None
    assert not is_public(literal_address("[::ffff:7f00:1]"))  # type: ignore[arg-type]


@pytest.mark.parametrize("host", [h for h in LOOPBACK_SPELLINGS if "localhost" not in h.lower()])
def test_no_connection_is_made_to_a_refused_spelling(host: str) -> None:
    with listening() as listener:
        with pytest.raises(DestinationNotAllowed):
            HTTP_ONLY.client(base_url=f"http://{host}:{listener.port}", timeout=TIMEOUT)
        # Even a client built without the up-front check refuses when it connects (httpx
        # itself refuses some spellings as invalid URLs: no connection either).
        transport = GuardedTransport(HTTP_ONLY)
        with (
            httpx.Client(transport=transport, timeout=TIMEOUT) as raw,
            pytest.raises((DestinationNotAllowed, httpx.InvalidURL)),
        ):
            raw.get(f"http://{host}:{listener.port}/")
    assert listener.connections == 0


def _resolving(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> list[str]:
    """Make getaddrinfo answer ``answers`` for these names; returns the names looked up."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            asked.append(host)
            family = socket.AF_INET
            return [
                (family, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))
                for address in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def test_a_name_that_resolves_to_loopback_is_refused_at_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolving(monkeypatch, {"internal.test": ["127.0.0.1"]})
    with listening() as listener:
        client = HTTP_ONLY.client(base_url=f"http://internal.test:{listener.port}", timeout=TIMEOUT)
        with client, pytest.raises(DestinationNotAllowed) as info:
            client.get("/")
    assert listener.connections == 0
    assert str(info.value) == "The destination is not allowed."


def test_one_private_address_among_public_ones_refuses_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _resolving(monkeypatch, {"mixed.test": ["93.184.216.34", "127.0.0.1"]})
    with listening() as listener:
        client = HTTP_ONLY.client(base_url=f"http://mixed.test:{listener.port}", timeout=TIMEOUT)
        with client, pytest.raises(DestinationNotAllowed):
            client.get("/")
    assert listener.connections == 0


def test_the_socket_connects_to_the_checked_address_not_a_second_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name is resolved once; the connection goes to that very address."""
    asked = _resolving(monkeypatch, {"rebind.test": ["93.184.216.34"]})
    dialled: list[str] = []

    def no_network(self: Any, host: str, port: int, **kwargs: Any) -> Any:
        dialled.append(host)  # record instead of connecting: no packet leaves the machine
        raise httpcore.ConnectError("not dialled in tests")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", no_network)
    with (
        HTTP_ONLY.client(base_url="http://rebind.test:8080", timeout=TIMEOUT) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get("/")
    assert dialled == ["93.184.216.34"]
    assert asked == ["rebind.test"]


def test_redirects_are_not_followed() -> None:
    with listening() as target:

        def redirect(conn: socket.socket) -> None:
            conn.sendall(
                f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target.port}/\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )

        with (
            listening(redirect) as origin,
            OPEN.client(base_url=f"http://127.0.0.1:{origin.port}", timeout=TIMEOUT) as c,
        ):
            assert c.get("/").status_code == 302
    assert target.connections == 0


def test_proxies_from_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    def ok(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    with listening() as proxy, listening(ok) as target:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        with OPEN.client(base_url=f"http://127.0.0.1:{target.port}", timeout=TIMEOUT) as c:
            assert c.get("/").status_code == 204
    assert proxy.connections == 0
    assert target.connections == 1


def test_an_endless_answer_is_cut_at_the_cap_with_flat_memory() -> None:
    policy = OutboundPolicy(allow_http=True, allow_private=True, max_bytes=8 * 1024 * 1024)
    with listening(endless_json) as listener:
        client = policy.client(base_url=f"http://127.0.0.1:{listener.port}", timeout=TIMEOUT)
        tracemalloc.start()
        try:
            with (
                client,
                client.stream("GET", "/") as response,
                pytest.raises(ResponseTooLarge),
            ):
                read_body(response, max_bytes=policy.max_bytes, deadline=None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # The 200 MB answer costs about the cap (the buffer may double once while growing).
    assert peak < 3 * policy.max_bytes, peak


def test_a_declared_huge_body_is_refused_before_reading() -> None:
    with (
        listening(declares_huge) as listener,
        OPEN.client(base_url=f"http://127.0.0.1:{listener.port}", timeout=TIMEOUT) as c,
        c.stream("GET", "/") as response,
        pytest.raises(ResponseTooLarge),
    ):
        read_body(response, max_bytes=1024 * 1024, deadline=None)


def test_a_compressed_answer_is_refused_and_identity_was_asked_for() -> None:
    with (
        listening(gzipped) as listener,
        OPEN.client(base_url=f"http://127.0.0.1:{listener.port}", timeout=TIMEOUT) as c,
        c.stream("GET", "/") as response,
        pytest.raises(ResponseEncoded),
    ):
        read_body(response, max_bytes=1024 * 1024, deadline=None)
    assert b"accept-encoding: identity" in bytes(listener.received).lower()
