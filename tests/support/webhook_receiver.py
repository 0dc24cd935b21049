"""A real webhook receiver on a loopback port: records every POST and answers as scripted.

A threaded ``http.server`` in the test process. ``stop()`` closes the port (senders get
"connection refused", as from a receiver that is down); ``start()`` serves again on the same
port. ``hold()`` keeps every answer back until ``release()`` (a receiver that hangs).
"""

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.processes import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


class WebhookReceiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks/ssbg"
        self.requests: list[Received] = []
        self.in_flight = 0
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        self._answer = threading.Event()
        self._answer.set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def answer(self, statuses: Iterable[int]) -> None:
        """Answer the next requests with these statuses, then with 200."""
        with self._lock:
            self._statuses = list(statuses)

    def hold(self) -> None:
        self._answer.clear()

    def release(self) -> None:
        self._answer.set()

    def deliveries(self) -> list[str]:
        """The ``X-SSBG-Delivery`` of every request answered 2xx, in order."""
        with self._lock:
            return [r.headers["x-ssbg-delivery"] for r in self.requests if 200 <= r.answered < 300]

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def start(self) -> "WebhookReceiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.in_flight += 1
                receiver._answer.wait(timeout=60)
                with receiver._lock:
                    receiver.in_flight -= 1
                    status = receiver._statuses.pop(0) if receiver._statuses else 200
                    receiver.requests.append(
                        Received(
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            answered=status,
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
