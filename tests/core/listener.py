"""A raw TCP listener on loopback that counts connections and what they sent: proof that a
refused destination was never contacted, and a server that answers without end."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Listener:
    port: int
    connections: int = 0
    received: bytearray = field(default_factory=bytearray)


def _read_head(conn: socket.socket, into: bytearray) -> None:
    conn.settimeout(5)
    while b"\r\n\r\n" not in into:
        chunk = conn.recv(65536)
        if not chunk:
            return
        into.extend(chunk)


@contextmanager
def listening(
    answer: Callable[[socket.socket], None] | None = None, host: str = "127.0.0.1"
) -> Iterator[Listener]:
    """Accepts connections until the block ends; ``answer`` (if given) writes a response."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, 0))
    server.listen(16)
    server.settimeout(0.05)
    listener = Listener(port=server.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            listener.connections += 1
            with conn:
                try:
                    _read_head(conn, listener.received)
                    if answer is not None:
                        answer(conn)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        stop.set()
        thread.join(5)
        server.close()


def endless_json(conn: socket.socket) -> None:
    """200 OK, chunked, a JSON document that never ends (until the client hangs up)."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    piece = b'{"collection": [' + b" " * (1024 * 1024 - 16)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    for _ in range(200):  # 200 MB at most
        conn.sendall(chunk)


def declares_huge(conn: socket.socket) -> None:
    """200 OK that declares a 200 MB body and sends a little of it."""
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 209715200\r\n\r\n" + b" " * 1024
    )


def gzipped(conn: socket.socket) -> None:
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: 4\r\n\r\nabcd"
    )
