"""A real local webhook receiver: an HTTP server on 127.0.0.1 that records what it receives
and answers from a script (status codes, or a pause longer than the sender's timeout).

It also counts the requests in flight (received, not yet answered), in all and per
``webhook-id``, and remembers the most of one ``webhook-id`` ever in flight at once; ``delay``
makes every answer take that long (a receiver doing some work)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    script: deque[int | float] = field(default_factory=deque)  # status, or -seconds to hang
    default: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0  # seconds every answer takes (before any scripted pause)
    # A trickling answer: the status line at once, then this many header lines, one every
    # drip_gap seconds (each well within a read timeout, all of them together not).
    drip_lines: int = 0
    drip_gap: float = 0.0
    in_flight: int = 0  # requests received and not yet answered
    in_flight_by_id: dict[str, int] = field(default_factory=dict)
    most_in_flight_by_id: dict[str, int] = field(default_factory=dict)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def answer(self, *statuses: int | float) -> None:
        self.script.extend(statuses)

    def next_status(self) -> int | float:
        with self.lock:
            return self.script.popleft() if self.script else self.default

    def bodies(self) -> list[bytes]:
        return [r.body for r in self.received]

    def ids(self) -> list[str]:
        """The ``webhook-id`` of every request received, in order."""
        with self.lock:
            return [r.headers.get("webhook-id", "") for r in self.received]

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float) -> bool:
        """Waits until ``predicate(self)`` holds (checked under the lock, whenever a request
        arrives or is answered); False on timeout."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout=timeout)

    def _began(self, webhook_id: str) -> None:
        with self.changed:
            self.in_flight += 1
            now = self.in_flight_by_id.get(webhook_id, 0) + 1
            self.in_flight_by_id[webhook_id] = now
            self.most_in_flight_by_id[webhook_id] = max(
                now, self.most_in_flight_by_id.get(webhook_id, 0)
            )
            self.changed.notify_all()

    def _ended(self, webhook_id: str) -> None:
        with self.changed:
            self.in_flight -= 1
            self.in_flight_by_id[webhook_id] -= 1
            self.changed.notify_all()


@contextmanager
def receiver() -> Iterator[Receiver]:
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            rec = box["r"]
            webhook_id = self.headers.get("webhook-id", "")
            with rec.lock:
                rec.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            drip_lines, drip_gap = rec.drip_lines, rec.drip_gap  # as when it arrived
            rec._began(webhook_id)
            try:
                status = rec.next_status()
                if rec.delay:
                    time.sleep(rec.delay)
                if status < 0:
                    time.sleep(-status)
                    status = 200
                if drip_lines:
                    try:
                        self.wfile.write(f"HTTP/1.1 {int(status)} OK\r\n".encode())
                        for i in range(drip_lines):
                            time.sleep(drip_gap)
                            self.wfile.write(f"X-Drip-{i}: 1\r\n".encode())
                        self.wfile.write(b"Content-Length: 2\r\n\r\nok")
                    except OSError:
                        pass  # the sender gave up: what a trickling answer is for
                    return
                self.send_response(int(status))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            finally:
                rec._ended(webhook_id)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box["r"] = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hooks/crm")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box["r"]
    finally:
        server.shutdown()
        server.server_close()
