"""Acceptance: ``lifecycle run`` under a notify socket and with the health endpoints, in a real
child process. The slow parts of the services wait on named pipes the test holds open (see
`tests.health_services`), so every step waits on an event, never on a duration.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lifecycle.audit import check

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sys.platform == "win32" or not hasattr(os, "mkfifo"), reason="POSIX signals and pipes"
    ),
]

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0


#: The children of the running test, killed at its end if still there (a failed step).
_CHILDREN: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def _no_child_left() -> Iterator[None]:
    yield
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)


class Child:
    """A ``lifecycle run`` child; stdout and stderr lines can be awaited, with deadlines."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lifecycle", "run", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _CHILDREN.append(self.proc)
        self.lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._buffers = {"stdout": b"", "stderr": b""}

    def wait_for(self, stream: str, pattern: str) -> re.Match[str]:
        """The first line of ``stream`` (``stdout``/``stderr``) matching ``pattern``."""
        pipe = getattr(self.proc, stream)
        deadline = time.monotonic() + TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(pipe, selectors.EVENT_READ)
            while True:
                while b"\n" in self._buffers[stream]:
                    raw, self._buffers[stream] = self._buffers[stream].split(b"\n", 1)
                    line = raw.decode()
                    self.lines[stream].append(line)
                    found = re.search(pattern, line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    self.proc.kill()
                    pytest.fail(f"no {stream} line matching {pattern!r}: {self.lines}")
                if not sel.select(left):
                    continue
                chunk = os.read(pipe.fileno(), 65536)
                if not chunk:
                    self.proc.kill()
                    pytest.fail(f"child ended before {pattern!r}: {self.lines}")
                self._buffers[stream] += chunk

    def printed(self, stream: str = "stdout") -> list[str]:
        """Every line of ``stream`` printed so far (what the pipe holds now, without waiting)."""
        pipe = getattr(self.proc, stream)
        os.set_blocking(pipe.fileno(), False)
        try:
            while chunk := os.read(pipe.fileno(), 65536):
                self._buffers[stream] += chunk
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(pipe.fileno(), True)
        *complete, self._buffers[stream] = self._buffers[stream].split(b"\n")
        self.lines[stream].extend(line.decode() for line in complete)
        return self.lines[stream]

    def finish(self) -> tuple[str, str]:
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=TIMEOUT)
            pytest.fail("child did not exit in time")
        return out.decode(), self._buffers["stderr"].decode() + err.decode()


class Gates:
    """Named pipes the child's tasks wait on; each is held open (read-write, so neither side
    blocks in ``open``) until `release` closes it and the child's read sees the end."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._held: dict[str, int] = {}

    def make(self, name: str) -> str:
        path = os.path.join(self.directory, name)
        os.mkfifo(path)
        self._held[name] = os.open(path, os.O_RDWR)
        return path

    def release(self, name: str) -> None:
        os.close(self._held.pop(name))

    def close(self) -> None:
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()


class NotifySocket:
    """The socket systemd would listen on: an AF_UNIX datagram socket, bound."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(TIMEOUT)
        self.received: list[dict[str, str]] = []

    def next(self) -> dict[str, str]:
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            pytest.fail(f"no datagram in time; got {self.received}")
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.received.append(fields)
        return fields

    def until(self, key: str, contains: str = "") -> dict[str, str]:
        """Datagrams until one has ``key`` (with ``contains`` in its value); that one."""
        while True:
            fields = self.next()
            if key in fields and contains in fields[key]:
                return fields

    def rest(self) -> list[dict[str, str]]:
        """Every datagram still waiting (the sender has exited: all are there)."""
        got = []
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(65536)
                got.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
        except BlockingIOError:
            return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def place() -> Iterator[tuple[Gates, NotifySocket]]:
    directory = tempfile.mkdtemp(prefix="hc")  # short: a socket path is bounded
    gates = Gates(directory)
    notify = NotifySocket(directory)
    try:
        yield gates, notify
    finally:
        gates.close()
        notify.close()
        shutil.rmtree(directory)


def _get(base: str, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(base + path, timeout=TIMEOUT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def _running(child: Child, task: str) -> bool:
    """Whether the child printed ``task``'s move to running (it prints each transition, and
    flushes, on the thread that fires it, before anything later happens)."""
    return any(re.search(rf"task\s+{task}\s+\w+ -> running", line) for line in child.printed())


def test_ready_only_once_the_slow_task_runs_then_stopping_after_sigterm(
    place: tuple[Gates, NotifySocket], tmp_path: Path
) -> None:
    gates, notify = place
    journal = tmp_path / "run.jsonl"
    child = Child(
        "--journal",
        str(journal),
        "tests.health_services:Starting",
        "--SlowStart-gate",
        gates.make("start"),
        env={"NOTIFY_SOCKET": notify.path},
    )
    first = notify.next()
    assert first["MAINPID"] == str(child.proc.pid)
    assert "READY" not in first
    child.wait_for("stdout", r"task\s+SlowStart\s+registered -> created")
    assert not _running(child, "SlowStart")
    gates.release("start")
    notify.until("READY")
    assert _running(child, "SlowStart")  # printed before READY=1 was sent
    assert all("READY" not in fields for fields in notify.received[:-1])
    child.proc.send_signal(signal.SIGTERM)
    stopping = notify.until("STOPPING")
    assert int(stopping["EXTEND_TIMEOUT_USEC"]) > 0
    _, err = child.finish()
    assert child.proc.returncode == 0, err
    assert notify.rest()[-1]["STATUS"].startswith("Starting stopped")
    assert check(journal) == []


def test_readyz_follows_init_running_and_a_slow_stop(
    place: tuple[Gates, NotifySocket], tmp_path: Path
) -> None:
    gates, notify = place
    child = Child(
        "--health-address",
        "127.0.0.1:0",
        "tests.health_services:Starting",
        "--SlowStart-gate",
        gates.make("start"),
        "--SlowStop-gate",
        gates.make("stop"),
        env={"NOTIFY_SOCKET": notify.path},
    )
    base = child.wait_for("stderr", r"health endpoints at (http://\S+)").group(1)
    child.wait_for("stdout", r"task\s+SlowStart\s+registered -> created")
    status, body = _get(base, "/readyz")
    assert status == 503
    assert body["tasks"]["SlowStart"]["ready"] is False
    assert _get(base, "/startupz")[0] == 503
    assert _get(base, "/livez")[0] == 200
    gates.release("start")
    notify.until("READY")
    status, body = _get(base, "/readyz")
    assert status == 200, body
    assert _get(base, "/startupz")[0] == 200
    child.proc.send_signal(signal.SIGTERM)
    child.wait_for("stdout", r"task\s+SlowStop\s+running -> stopping")  # on_stop is waiting
    status, body = _get(base, "/readyz")
    assert status == 503
    assert body["state"] == "stopping"
    assert body["reason"] == "stop requested"
    assert _get(base, "/livez")[0] == 200  # draining is not dead
    gates.release("stop")
    _, err = child.finish()
    assert child.proc.returncode == 0, err


def test_watchdog_pings_stop_and_livez_fails_once_a_task_misses_its_heartbeat(
    place: tuple[Gates, NotifySocket], tmp_path: Path
) -> None:
    gates, notify = place
    child = Child(
        "--health-address",
        "127.0.0.1:0",
        "tests.health_services:Watched",
        "--Beating-gate",
        gates.make("beat"),
        "--SlowStop-gate",
        gates.make("stop"),
        env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "40000"},  # a ping every 20 ms
    )
    base = child.wait_for("stderr", r"health endpoints at (http://\S+)").group(1)
    notify.until("READY")
    notify.until("WATCHDOG")
    assert _get(base, "/livez")[0] == 200
    gates.release("beat")  # Beating goes silent: its WATCHDOG (0.3 s) will pass
    notify.until("STATUS", "not live")
    status, body = _get(base, "/livez")
    assert status == 503
    assert body["tasks"]["Beating"]["live"] is False
    assert "missed its heartbeat" in body["live_reason"]
    child.wait_for("stdout", r"task\s+SlowStop\s+running -> stopping")
    gates.release("stop")
    _, err = child.finish()
    assert child.proc.returncode == 1
    assert "WatchdogTimeout" in err
    after = notify.rest()
    assert {"WATCHDOG": "1"} not in after


def test_a_broken_notify_socket_is_reported_once_and_the_run_is_clean(tmp_path: Path) -> None:
    child = Child(
        "tests.health_services:Starting",
        env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")},
    )
    child.wait_for("stdout", r"service\s+Starting\s+starting -> running")
    child.proc.send_signal(signal.SIGTERM)
    _, err = child.finish()
    assert child.proc.returncode == 0, err
    assert err.count("sd_notify disabled") == 1


def test_a_health_address_in_use_exits_2_saying_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        host, port = taken.getsockname()
        child = Child(
            "--health-address", f"{host}:{port}", "tests.health_services:Starting", env={}
        )
        _, err = child.finish()
    assert child.proc.returncode == 2
    assert "cannot serve the health endpoints" in err


def test_a_bad_health_address_exits_2(tmp_path: Path) -> None:
    child = Child("--health-address", "nowhere", "tests.health_services:Starting", env={})
    _, err = child.finish()
    assert child.proc.returncode == 2
    assert "bad health address" in err
