"""sd_notify: the datagrams a service sends to ``$NOTIFY_SOCKET``, in process."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lifecycle.health import HealthMonitor
from lifecycle.service import Service
from lifecycle.systemd import Notifier, SystemdNotify, status_line, watchdog_interval
from lifecycle.task import Task

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="AF_UNIX sockets")


@pytest.fixture
def listener() -> Iterator[tuple[str, socket.socket]]:
    """A bound AF_UNIX datagram socket (in a short directory: socket paths are bounded)."""
    directory = tempfile.mkdtemp(prefix="sd")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    try:
        yield path, sock
    finally:
        sock.close()
        shutil.rmtree(directory)


def _fields(data: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in data.decode().splitlines())


def _until(sock: socket.socket, wanted: Callable[[dict[str, str]], bool]) -> list[dict[str, str]]:
    """The datagrams received before the first that is ``wanted`` (the socket's timeout bounds
    each wait)."""
    seen = []
    while not wanted(fields := _fields(sock.recv(65536))):
        seen.append(fields)
    return seen


def _drain(sock: socket.socket) -> list[dict[str, str]]:
    """Every datagram waiting on ``sock`` (it has them all: sends are synchronous)."""
    got = []
    sock.setblocking(False)
    try:
        while True:
            try:
                got.append(_fields(sock.recv(65536)))
            except BlockingIOError:
                return got
    finally:
        sock.settimeout(30)


class Idle(Task):
    LOOPLESS = True


class Gate(Task):
    """Its on_stop waits for ``release``, so the stop is still going when the test looks."""

    LOOPLESS = True
    release = threading.Event()

    def on_stop(self) -> None:
        type(self).release.wait(30)


class Notified(Service):
    TASKS = (Idle, Gate)


def test_a_path_socket_gets_each_datagram(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    notifier = Notifier(path)
    assert notifier.send("READY=1", "STATUS=up")
    assert _fields(sock.recv(100)) == {"READY": "1", "STATUS": "up"}
    notifier.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets: Linux")
def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"lifecycle-test-{os.getpid()}-{threading.get_ident()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(30)
        notifier = Notifier("@" + name)
        assert notifier.send("READY=1")
        assert sock.recv(100) == b"READY=1"
        notifier.close()


@pytest.mark.parametrize("address", ["relative/path", "/no/such/dir/notify"])
def test_a_broken_socket_is_logged_once_and_never_raises(
    address: str, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(address)
    with caplog.at_level(logging.WARNING, logger="lifecycle.systemd"):
        assert not notifier.send("READY=1")
        assert not notifier.send("STATUS=again")
    assert notifier.failed
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert len(caplog.records) == 1
    assert "sd_notify disabled" in caplog.records[0].message


def test_no_notify_socket_means_no_notifier() -> None:
    assert Notifier.from_environ({}) is None
    assert Notifier.from_environ({"NOTIFY_SOCKET": ""}) is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process(
    environ: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(environ) == expected


def test_a_service_says_ready_once_running_and_stopping_with_an_extension(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    Gate.release.clear()
    service = Notified({"stop_timeout": 60})
    with SystemdNotify(service, Notifier(path)):
        service.start()
        started = _drain(sock)
        assert started[0]["MAINPID"] == str(os.getpid())
        assert "READY" not in started[0]
        assert started[-1]["READY"] == "1"
        assert started[-1]["STATUS"].startswith("Notified running: 2/2 tasks running")
        service.shutdown("asked")
        stopper = threading.Thread(target=service.wait)
        stopper.start()
        stopping = _fields(sock.recv(65536))
        assert stopping["STOPPING"] == "1"
        assert "stop: asked" in stopping["STATUS"]
        extension = int(stopping["EXTEND_TIMEOUT_USEC"])
        assert 0 < extension <= 61 * 10**6  # the deadline left, plus the grace
        Gate.release.set()
        stopper.join(30)
    ended = _drain(sock)
    assert ended[-1]["STATUS"].startswith("Notified stopped")
    assert all("READY" not in fields for fields in ended)


class Silent(Task):
    LOOPLESS = True
    WATCHDOG = 10.0


class Watched(Service):
    TASKS = (Silent,)


def test_watchdog_pings_stop_once_a_task_missed_its_heartbeat(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    now = [time.monotonic()]
    service = Watched()
    service.health = HealthMonitor(service, clock=lambda: now[0])
    notify = SystemdNotify(service, Notifier(path), ping_every=0.01)
    with notify:
        service.start()
        assert "MAINPID" in _fields(sock.recv(65536))
        # Pings start with the notifier, so some may come before READY: each is a bare ping.
        before_ready = _until(sock, lambda fields: fields.get("READY") == "1")
        assert all(fields == {"WATCHDOG": "1"} for fields in before_ready)
        _until(sock, lambda fields: fields == {"WATCHDOG": "1"})
        now[0] += 60  # the heartbeat is overdue now
        service.tasks.require(Silent).set_ready(True)  # wakes the monitor to look
        while "not live" not in _fields(sock.recv(65536)).get("STATUS", ""):
            pass
        service.wait()  # the task failed: the service stops (pings go on if not gated)
        assert notify.thread is not None
        notify.thread.join(30)
        after = _drain(sock)
    assert service.failure is not None
    assert "missed its heartbeat" in str(service.failure)
    assert {"WATCHDOG": "1"} not in after
    assert after[-1]["STATUS"].startswith("Watched failed")


def test_status_line_is_one_line() -> None:
    service = Notified()
    service.shutdown("a\nmulti-line\nreason")
    assert "\n" not in status_line(service)


def test_the_restart_triggers_told_to_systemd_are_the_task_tables_own() -> None:
    from lifecycle.spec import TASK, TaskState
    from lifecycle.systemd import RESTART_TRIGGERS

    into_backoff = {t for _, t, dest in TASK.edges() if dest == TaskState.BACKOFF}
    out_of_backoff = {
        t
        for source, t, dest in TASK.edges()
        if source == TaskState.BACKOFF and dest == TaskState.CREATED
    }
    assert (into_backoff - {"finish", "suspend"}) | out_of_backoff == RESTART_TRIGGERS
