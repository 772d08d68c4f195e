"""The HTTP health endpoints: answers, bounds, hostile clients, and the server's thread."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.probes import (
    MAX_CLIENTS,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_LINE,
    HealthAddressError,
    ProbeServer,
    parse_address,
)
from lifecycle.service import Service
from lifecycle.task import Task


class Idle(Task):
    LOOPLESS = True


class Probed(Service):
    TASKS = (Idle,)


@pytest.fixture
def served() -> Iterator[tuple[Service, ProbeServer]]:
    service = Probed()
    with ProbeServer(service, ("127.0.0.1", 0)) as server:
        yield service, server
        if service.state.value not in ("new", "stopped", "failed"):
            service.shutdown()
            service.wait()


def _request(server: ProbeServer, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _get(server: ProbeServer, path: str) -> tuple[int, Any]:
    status, _, body = _request(server, "GET", path)
    return status, json.loads(body)


def _raw(server: ProbeServer, data: bytes) -> bytes:
    with socket.create_connection(server.address, timeout=30) as sock:
        sock.sendall(data)
        # The server may already have answered and closed (a request it refuses unread): the
        # connection is then gone, and only the answer matters.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_port_0_binds_a_free_port_and_the_service_knows_it(
    served: tuple[Service, ProbeServer],
) -> None:
    service, server = served
    assert server.address[1] != 0
    assert service.health_address == server.address


def test_the_probes_are_503_before_the_start_and_200_while_running(
    served: tuple[Service, ProbeServer],
) -> None:
    service, server = served
    assert _get(server, "/readyz")[0] == 503
    assert _get(server, "/startupz")[0] == 503
    assert _get(server, "/livez")[0] == 200
    service.start()
    for path in ("/readyz", "/startupz", "/livez"):
        status, body = _get(server, path)
        assert status == 200, body
        assert body["tasks"]["Idle"] == {
            "state": "running",
            "required": True,
            "ready": True,
            "says_ready": True,
            "live": True,
            "reason": None,
            "watchdog": None,
        }
    service.shutdown("done")
    assert _get(server, "/readyz")[0] == 503
    service.wait()


def test_status_is_the_summary_as_json(served: tuple[Service, ProbeServer]) -> None:
    service, server = served
    service.start()
    status, body = _get(server, "/status")
    assert status == 200
    assert body["service"] == "Probed"
    assert body["state"] == "running"
    assert body["tasks"]["Idle"] == service.summary()[0].to_dict()


def test_head_answers_the_headers_alone(served: tuple[Service, ProbeServer]) -> None:
    _, server = served
    status, headers, body = _request(server, "HEAD", "/livez")
    assert status == 200
    assert body == b""
    assert int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_are_405_with_allow(served: tuple[Service, ProbeServer], method: str) -> None:
    _, server = served
    status, headers, _ = _request(server, method, "/livez")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/", "/livez/x", "/metrics", "/../etc/passwd"])
def test_other_paths_are_404(served: tuple[Service, ProbeServer], path: str) -> None:
    _, server = served
    assert _request(server, "GET", path)[0] == 404


def test_a_huge_request_line_is_414(served: tuple[Service, ProbeServer]) -> None:
    _, server = served
    answer = _raw(server, b"GET /" + b"a" * (MAX_REQUEST_LINE * 4) + b" HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 414")
    assert _get(server, "/livez")[0] == 200  # the server is still answering


def test_headers_beyond_the_bound_are_431(served: tuple[Service, ProbeServer]) -> None:
    _, server = served
    header = b"X-Filler: " + b"y" * 1000 + b"\r\n"
    flood = header * (MAX_REQUEST_BYTES // len(header) + 2)
    answer = _raw(server, b"GET /livez HTTP/1.1\r\n" + flood + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431")


def test_a_client_that_sends_nothing_blocks_neither_the_probes_nor_the_service(
    served: tuple[Service, ProbeServer],
) -> None:
    service, server = served
    silent = [socket.create_connection(server.address, timeout=30) for _ in range(3)]
    try:
        service.start()
        assert _get(server, "/readyz")[0] == 200
        service.shutdown()
        service.wait()
    finally:
        for sock in silent:
            sock.close()


def test_clients_beyond_the_bound_are_turned_away_not_queued(
    served: tuple[Service, ProbeServer],
) -> None:
    _, server = served
    hold = [socket.create_connection(server.address, timeout=30) for _ in range(MAX_CLIENTS)]
    try:
        # Every slot is taken by a silent client: the next one is closed unanswered.
        with socket.create_connection(server.address, timeout=30) as extra:
            extra.sendall(b"GET /livez HTTP/1.1\r\n\r\n")
            assert extra.recv(100) == b""
    finally:
        for sock in hold:
            sock.close()


def test_the_server_thread_ends_with_the_service(served: tuple[Service, ProbeServer]) -> None:
    service, server = served
    service.start()
    service.shutdown()
    service.wait()
    assert server.thread is not None
    server.thread.join(30)
    assert not server.thread.is_alive()


def test_an_address_in_use_raises_oserror_and_leaves_nothing_open() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        service = Probed()
        before = threading.active_count()
        with pytest.raises(OSError):
            ProbeServer(service, taken.getsockname())
        assert threading.active_count() == before
        assert service.health_address is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (":0", ("", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_parse_address_takes_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text", ["8080", "host:", "host:port", "host:65536", "::1:80", "[nothost]:80", "h:-1", "h:٣"]
)
def test_parse_address_refuses_what_is_not_host_port(text: str) -> None:
    with pytest.raises(HealthAddressError, match="bad health address"):
        parse_address(text)


@given(st.text(max_size=30))
def test_parse_address_returns_a_port_or_raises_its_typed_error(text: str) -> None:
    try:
        _, port = parse_address(text)
    except HealthAddressError:
        return
    assert 0 <= port <= 65535
    assert text.endswith(f":{port}") or text.endswith(f":{port:0>{len(text.rpartition(':')[2])}}")


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="Linux's /proc")
def test_the_server_thread_leaves_the_stop_signals_to_the_main_thread(
    served: tuple[Service, ProbeServer],
) -> None:
    _, server = served
    assert server.thread is not None
    with open(f"/proc/self/task/{server.thread.native_id}/status") as status:
        line = next(x for x in status if x.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    for number in (signal.SIGINT, signal.SIGTERM):
        assert mask & (1 << (number - 1))


def test_a_request_that_trickles_past_the_deadline_is_cut_off(
    served: tuple[Service, ProbeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    import lifecycle.probes

    _, server = served
    # Each read may wait a minute, but the request as a whole has 0.2 s: the client, which
    # waits 10 s at most, sees the server give up long before either.
    monkeypatch.setattr(lifecycle.probes._Handler, "timeout", 60.0)
    monkeypatch.setattr(lifecycle.probes, "CLIENT_TIMEOUT", 0.2)
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nX-Slow: ")  # and never the rest
        assert sock.recv(100) == b""  # closed by the server at its deadline, unanswered
    assert _get(server, "/livez")[0] == 200
