"""The one policy for every HTTP call the service makes to a URL that a tenant supplied
(accounting ``base_url`` and ``token_url``, webhook endpoints).

- ``https://`` only, unless ``allow_http``.
- The host is resolved when the connection is made and *every* address it resolves to is
  checked (loopback, private, link-local, shared, multicast, reserved, unspecified and
  documentation ranges are refused, IPv4 and IPv6, also when an IPv4 address hides inside an
  IPv6 one: mapped, compatible, 6to4, Teredo, NAT64), unless ``allow_private``. Addresses
  spelled the way ``inet_aton`` reads them (``2130706433``, ``0x7f000001``, ``127.1``) are
  refused up front by :func:`check_url`, and in any case resolve to what they mean.
- The socket connects to the very address that was checked (no second DNS answer between the
  check and the connect: DNS rebinding gains nothing); TLS still verifies the host name.
- No redirects, no proxies from the environment, no Unix sockets.
- Bodies are read with a cap (:func:`read_body`), so a huge answer cannot exhaust memory;
  answers are asked for uncompressed and a compressed one is refused (a small gzip body can
  expand a thousandfold before any cap could see it).

Errors raised here never carry what answered: a refused destination says only that it is not
allowed, so a run's error cannot be used to scan ports or read banners.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import ssl
import threading
import time
import typing
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges that ``ipaddress`` does not flag on every supported Python version, refused as well.
_EXTRA_BLOCKED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001:db8::/32",  # documentation
        "fec0::/10",  # site-local (deprecated)
    )
]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")

NOT_ALLOWED = "The destination is not allowed."


class DestinationNotAllowed(Exception):
    """The URL's scheme or one of its host's addresses is refused by the policy."""

    def __init__(self, reason: str) -> None:
        super().__init__(NOT_ALLOWED)
        self.reason = reason  # for tests and debugging; never shown to a tenant


class ResponseTooLarge(Exception):
    """An answer's body is larger than the policy allows."""


class ResponseTooSlow(Exception):
    """An answer's body did not arrive completely before the deadline."""


class ResponseEncoded(Exception):
    """An answer came compressed although it was asked for uncompressed."""


@dataclass(frozen=True)
class OutboundPolicy:
    allow_http: bool = False
    allow_private: bool = False
    max_bytes: int = 16 * 1024 * 1024

    # -- checks ----------------------------------------------------------------------------

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """Refuse what can be refused before any connection: scheme, credentials in the URL,
        local names and literal addresses (in any spelling). Returns the parsed URL."""
        try:
            parsed = httpx.URL(str(url))
        except (httpx.InvalidURL, TypeError, ValueError):
            raise DestinationNotAllowed("unparsable URL") from None
        allowed_schemes = ("https", "http") if self.allow_http else ("https",)
        if parsed.scheme not in allowed_schemes:
            raise DestinationNotAllowed(f"scheme {parsed.scheme!r}")
        if parsed.userinfo:
            raise DestinationNotAllowed("credentials in the URL")
        host = parsed.host.rstrip(".").lower()
        if not host:
            raise DestinationNotAllowed("no host")
        if self.allow_private:
            return parsed
        if host in _LOCAL_NAMES or host.endswith(".localhost"):
            raise DestinationNotAllowed("a local name")
        literal = literal_address(host)
        if literal is not None and not is_public(literal):
            raise DestinationNotAllowed("a non-public address")
        return parsed

    def check_address(self, address: IPAddress) -> None:
        if not self.allow_private and not is_public(address):
            raise DestinationNotAllowed("a non-public address")

    # -- clients ---------------------------------------------------------------------------

    def client(
        self,
        *,
        base_url: str,
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout,
        transport: httpx.BaseTransport | None = None,
    ) -> httpx.Client:
        """An httpx client bound to this policy: the base URL checked, connections through
        :class:`GuardedTransport`, no redirects, nothing taken from the environment.

        ``transport`` replaces the guarded one (in-process fakes in tests only)."""
        self.check_url(base_url)
        return httpx.Client(
            base_url=base_url,
            headers={**(headers or {}), "Accept-Encoding": "identity"},
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=transport or GuardedTransport(self),
        )


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any spelling a resolver would accept
    (dotted, decimal, hex, octal, shortened IPv4; IPv6 with or without brackets)."""
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = address.packed
    if packed[:12] == bytes(12) and int(address) > 1:  # IPv4-compatible (deprecated) ::a.b.c.d
        return ipaddress.IPv4Address(packed[12:])
    return None


def is_public(address: IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
    if (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    ):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return False
    return not any(address in net for net in _EXTRA_BLOCKED if net.version == address.version)


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to, in the resolver's order."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise httpcore.ConnectError(f"could not resolve {host!r}") from None
    seen: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


def _closed(stream: httpcore.NetworkStream) -> bool:
    sock = stream.get_extra_info("socket")
    return sock is None or sock.fileno() == -1


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network layer with the policy applied at connect time: resolve once, check
    every address, connect to a checked one."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self._plain = httpcore.SyncBackend()
        self._streams: list[httpcore.NetworkStream] = []
        self._lock = threading.Lock()

    def abort(self) -> None:
        """End every connection this backend opened, from any thread: a read waiting on one
        fails at once (closing an httpx client does not wake it)."""
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            sock = stream.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve(host, port)
        for address in addresses:
            self.policy.check_address(address)  # any refused address refuses the host
        error: Exception | None = None
        for address in addresses:
            try:
                stream = self._plain.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            with self._lock:  # closed ones go: a long-lived client opens many over time
                self._streams = [s for s in self._streams if not _closed(s)]
                self._streams.append(stream)
            return stream
        raise error or httpcore.ConnectError("no address to connect to")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise DestinationNotAllowed("a Unix socket")

    def sleep(self, seconds: float) -> None:
        self._plain.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every outbound connection: making one loads the system's
    certificate store (hundreds of milliseconds on a busy machine); using one is thread-safe."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport over a connection pool whose network backend is guarded."""

    def __init__(self, policy: OutboundPolicy) -> None:
        context = _ssl_context()
        super().__init__(verify=context, trust_env=False)
        # httpx exposes no network backend option: its pool is replaced by an identical one
        # on the guarded backend (tests/core/test_outbound.py proves connections go through it).
        self._backend = GuardedBackend(policy)
        self._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=self._backend)

    def abort(self) -> None:
        """End its connections now, from any thread (see ``GuardedBackend.abort``)."""
        self._backend.abort()


def read_body(response: httpx.Response, *, max_bytes: int, deadline: float | None) -> bytes:
    """The whole body of a streamed answer, at most ``max_bytes`` of it, arriving before the
    monotonic ``deadline``; raises ResponseTooLarge, ResponseTooSlow or ResponseEncoded."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ResponseEncoded(f"the answer is {encoding}-encoded")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"the answer declares {declared} bytes")
    body = bytearray()
    for chunk in typing.cast(Iterable[bytes], response.iter_raw()):
        body.extend(chunk)
        if len(body) > max_bytes:
            raise ResponseTooLarge(f"the answer exceeds {max_bytes} bytes")
        if deadline is not None and time.monotonic() > deadline:
            raise ResponseTooSlow("the answer did not arrive in time")
    return bytes(body)
