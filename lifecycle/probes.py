"""The health endpoints over HTTP: ``GET /livez``, ``/readyz``, ``/startupz`` and ``/status``.

`ProbeServer` serves one service's `HealthMonitor` (its ``health``) from a thread on the
standard library's HTTP server:

* ``/livez``, ``/readyz``, ``/startupz``: 200 when the service is live, ready, started (else
  503), with the JSON of `HealthReport.to_dict` (each task's state, readiness and liveness);
* ``/status``: the service's state, health and each task's summary (`Service.summary`, the
  outcome's ``TaskSummary``) as JSON, always 200;
* ``HEAD`` of the same: the headers alone. Any other method is 405 (with ``Allow``), any other
  path 404.

A slow or hostile client cannot hold the service up: the server runs on threads of its own,
each connection's socket reads time out (`CLIENT_TIMEOUT`), the request line and the headers
are bounded (`MAX_REQUEST_LINE`, `MAX_REQUEST_BYTES`), each connection answers one request, and at
most `MAX_CLIENTS` connections are served at once (the next ones are closed unanswered).

The server's thread sleeps in ``select`` until a client connects or it is told to stop (no
poll interval); it stops when the service ends, and `ProbeServer.close` joins it and every
connection's thread.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import json
import logging
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

from lifecycle.errors import LifecycleError
from lifecycle.health import HealthReport
from lifecycle.journal import Transition
from lifecycle.service import Service
from lifecycle.shutdown import block_stop_signals
from lifecycle.spec import SERVICE

__all__ = [
    "CLIENT_TIMEOUT",
    "MAX_CLIENTS",
    "MAX_REQUEST_BYTES",
    "MAX_REQUEST_LINE",
    "PATHS",
    "HealthAddressError",
    "ProbeServer",
    "parse_address",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Seconds a connection may take to send its request (in all), and to take each part of the
#: answer.
CLIENT_TIMEOUT = 5.0
#: The longest request line taken, in bytes (a longer one is answered 414).
MAX_REQUEST_LINE = 4096
#: The most bytes a request's line and headers may take together (more are answered 431).
MAX_REQUEST_BYTES = 16384
#: The most connections served at once; the next ones are closed unanswered.
MAX_CLIENTS = 16

#: The endpoints, each the check it answers (None: the status document).
PATHS: dict[str, str | None] = {
    "/livez": "live",
    "/readyz": "ready",
    "/startupz": "started",
    "/status": None,
}
_METHODS = ("GET", "HEAD")


class HealthAddressError(LifecycleError, ValueError):
    """A ``--health-address`` that is not ``HOST:PORT`` (port 0 to 65535; an IPv6 host in
    brackets). Attributes: ``text`` and ``problem``."""

    def __init__(self, text: str, problem: str) -> None:
        self.text = text
        self.problem = problem
        super().__init__(f"bad health address {text!r}: {problem}")

    def __str__(self) -> str:
        return str(self.args[0])


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6; an empty host means every interface) as
    ``(host, port)``. Raises `HealthAddressError`."""
    if not isinstance(text, str):
        raise HealthAddressError(repr(text), "expected a HOST:PORT string")
    host, colon, port_text = text.rpartition(":")
    if not colon:
        raise HealthAddressError(text, "expected HOST:PORT, for example 127.0.0.1:8080")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise HealthAddressError(text, f"{host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise HealthAddressError(text, "put an IPv6 host in brackets: [::1]:8080")
    if not port_text.isdigit() or not port_text.isascii():
        raise HealthAddressError(text, f"the port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise HealthAddressError(text, f"the port {port} is above 65535")
    return host, port


class _Handler(http.server.BaseHTTPRequestHandler):
    """One connection, one request: GET or HEAD of one of `PATHS`."""

    server: _Server
    timeout = CLIENT_TIMEOUT  # applied to the connection's socket by StreamRequestHandler
    protocol_version = "HTTP/1.1"
    server_version = "lifecycle-probes"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.rfile = _CappedReader(  # type: ignore[assignment]
            self.rfile, MAX_REQUEST_BYTES, self.connection, CLIENT_TIMEOUT
        )

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()

    def handle_one_request(self) -> None:
        # The standard handler's, with our bounds and our methods.
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline = ""
                self.request_version = ""
                self.command = ""
                self.send_error(414, "request line too long")
                return
            if not self.raw_requestline:
                return
            if not self.parse_request():
                return  # parse_request answered (400, 431 for too many headers, ...)
            if self.rfile.exhausted:  # type: ignore[attr-defined]
                self.send_error(431, f"request headers above {MAX_REQUEST_BYTES} bytes")
                return
            if self.command not in _METHODS:
                self._answer(405, {"error": f"method {self.command} not allowed"})
                return
            self._serve()
            self.wfile.flush()
        except TimeoutError:
            self.log_error("client timed out")
        except OSError as exc:  # the client went away
            self.log_error("client connection: %s", exc)

    def _serve(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in PATHS:
            self._answer(404, {"error": f"no such path: {path}", "paths": sorted(PATHS)})
            return
        check = PATHS[path]
        service = self.server.service
        report = service.health.report()
        if check is None:
            self._answer(200, _status(service, report))
            return
        ok = bool(getattr(report, check))
        self._answer(200 if ok else 503, {"check": check, "ok": ok, **report.to_dict()})

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = (json.dumps(body, indent=2, default=str) + "\n").encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if code == 405:
            self.send_header("Allow", ", ".join(_METHODS))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("probe %s: " + format, self.address_string(), *args)

    def log_error(self, format: str, *args: Any) -> None:
        logger.info("probe %s: " + format, self.address_string(), *args)


class _CappedReader:
    """A connection's reader that hands out at most ``cap`` bytes in all (then end of input),
    so that a request's line and headers together stay bounded whatever the client sends, and
    that raises `TimeoutError` once the request took longer than ``timeout`` seconds in all (a
    client that trickles a byte at a time cannot hold its slot for long)."""

    def __init__(self, raw: Any, cap: int, connection: socket.socket, timeout: float) -> None:
        self._raw = raw
        self._connection = connection
        self._deadline = time.monotonic() + timeout
        self.left = cap
        self.exhausted = False

    def readline(self, limit: int = -1) -> bytes:
        if self.left <= 0:
            self.exhausted = True
            return b""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long")
        self._connection.settimeout(left)
        want = self.left if limit < 0 else min(limit, self.left)
        line: bytes = self._raw.readline(want)
        self.left -= len(line)
        if self.left <= 0 and not line.endswith(b"\n"):
            self.exhausted = True
        return line

    def read(self, size: int = -1) -> bytes:
        return b""  # no endpoint takes a body

    def close(self) -> None:
        self._raw.close()


def _status(service: Service, report: HealthReport) -> dict[str, Any]:
    return {
        "service": service.name,
        "state": report.state,
        "exit_code": service.exit_code,
        "started": report.started,
        "ready": report.ready,
        "live": report.live,
        "stop_reason": service.shutdown_reason,
        "tasks": {summary.name: summary.to_dict() for summary in service.summary()},
    }


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True  # a connection's thread never keeps the process alive
    block_on_close = True  # close() joins them (each is bounded by CLIENT_TIMEOUT)
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        self.service = service
        self.clients = threading.BoundedSemaphore(MAX_CLIENTS)
        self.address_family = _family(address[0])
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # "[::]:PORT" answers on IPv6 only, as asked, not on IPv4 as well.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)  # not HTTPServer's: no reverse DNS lookup
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.clients.acquire(blocking=False):
            logger.warning("probe server: %d clients already; refusing one", MAX_CLIENTS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.clients.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        block_stop_signals()
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.clients.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("probe server: error serving %s", client_address)


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET  # a name (or empty: every interface), resolved for IPv4


class ProbeServer:
    """Serve `PATHS` for ``service`` (its ``health``) at ``address`` (``(host, port)``; port 0
    picks a free one) from a thread of its own.

    Binds at once: raises `OSError` when the address cannot be bound (in use, not ours), and
    then nothing is left open. `address` is the bound address, also set as the service's
    ``health_address``. The thread starts at `start` and ends when the service ends or at
    `close` (which joins it and the connections' threads). Usable as a context manager.
    """

    def __init__(self, service: Service, address: tuple[str, int]) -> None:
        self.service = service
        self._server = _Server(address, service)
        host, port = self._server.server_address[:2]
        self.address: tuple[str, int] = (str(host), int(port))
        self._stop_reader, self._stop_writer = socket.socketpair()
        self._stop_writer.setblocking(False)
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._closed = False
        service.health_address = self.address

    @property
    def url(self) -> str:
        """The base URL of the endpoints, such as ``http://127.0.0.1:8080``."""
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self) -> None:
        """Start serving; raises `LifecycleError` if started before or closed."""
        if self._thread is not None or self._closed:
            raise LifecycleError("a ProbeServer is started once; make a new one")
        self._unsubscribe = self.service.journal.subscribe(self._on_record)
        self._thread = threading.Thread(
            target=self._serve, name=f"{self.service.name}.probes", daemon=True
        )
        self._thread.start()
        logger.info("health endpoints of %r at %s", self.service.name, self.url)

    def _on_record(self, rec: Transition) -> None:
        if rec.kind == SERVICE.name and rec.ok and rec.dest and SERVICE.is_terminal(rec.dest):
            self._request_stop()

    def _request_stop(self) -> None:
        # Already told (a full buffer) or closed: either way it stops.
        with contextlib.suppress(OSError):
            self._stop_writer.send(b"x")

    def _serve(self) -> None:
        block_stop_signals()
        server = self._server
        with selectors.DefaultSelector() as selector:
            selector.register(server.socket, selectors.EVENT_READ, "client")
            selector.register(self._stop_reader, selectors.EVENT_READ, "stop")
            while True:
                events = selector.select()  # no timeout: a client or the stop wakes it
                if any(key.data == "stop" for key, _ in events):
                    return
                server._handle_request_noblock()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Stop serving and join the threads (each connection's is bounded by
        `CLIENT_TIMEOUT`). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._request_stop()
        if self._thread is not None:
            self._thread.join()
        self._server.server_close()
        self._stop_reader.close()
        self._stop_writer.close()

    def __enter__(self) -> ProbeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
