"""systemd's notify protocol (``sd_notify``) for a service, with the standard library alone.

When ``$NOTIFY_SOCKET`` is set (a path, or ``@name`` for an abstract socket), a service run
under ``Type=notify`` tells systemd, in datagrams of ``KEY=VALUE`` lines:

* ``MAINPID=<pid>`` and ``STATUS=starting`` when the service starts;
* ``READY=1`` once every task is running (the service fired ``started``);
* ``STATUS=<one line>`` on every service transition, every change of the service's liveness,
  and every task restart record (a ``restart`` trigger, where the task machine has one);
* ``STOPPING=1`` when a stop begins, with ``EXTEND_TIMEOUT_USEC=<µs>``: the time left until
  the stop deadline (plus the short grace the stop takes past it), sent again as each task
  ends while the staged stop is still within its deadline;
* ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` (when ``$WATCHDOG_PID`` is unset or this
  process), but only while the service is live (`lifecycle.health`), so that systemd's
  ``WatchdogSec=`` restarts a process whose tasks stopped beating.

A missing, unreachable or broken socket is logged once (a warning) and never fails the service;
nothing here raises into the service.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from lifecycle.errors import LifecycleError, safe_str
from lifecycle.health import LIVE
from lifecycle.journal import Notice, Transition
from lifecycle.service import LATE_STOP_GRACE, Service
from lifecycle.shutdown import block_stop_signals
from lifecycle.spec import SERVICE, TASK, ServiceState, TaskState

__all__ = [
    "RESTART_TRIGGERS",
    "Notifier",
    "SystemdNotify",
    "status_line",
    "watchdog_interval",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Task triggers of a restart (the TASK table's crash into backoff, and the fresh instance
#: made from it), each worth a STATUS line.
RESTART_TRIGGERS = frozenset({"crash", "restart"})

#: The longest STATUS text sent (systemd shows one line; a datagram must stay small).
MAX_STATUS = 400


class Notifier:
    """Sends sd_notify datagrams to one socket address (``/path`` or ``@abstract``).

    `send` never raises: the first failure is logged as a warning and given to
    ``on_failure`` (a callable taking the message; the command line prints it), `failed` is
    set, and nothing more is sent. Thread-safe.
    """

    def __init__(self, address: str, on_failure: Callable[[str], object] | None = None) -> None:
        self.address = address
        self.failed = False
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._target: str | bytes = address
        if address.startswith("@"):
            self._target = b"\0" + address[1:].encode()  # Linux's abstract namespace
        elif not address.startswith("/"):
            self._fail(f"$NOTIFY_SOCKET={address!r} is neither a path nor an @abstract name")

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] | None = None,
        on_failure: Callable[[str], object] | None = None,
    ) -> Notifier | None:
        """The notifier of ``$NOTIFY_SOCKET`` (of ``environ``, default `os.environ`), or None
        when it is unset or empty."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        return cls(address, on_failure) if address else None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` ``fields`` in one datagram; True if it was sent."""
        if self.failed:
            return False
        data = "\n".join(fields).encode("utf-8", "replace")
        with self._lock:
            if self.failed:
                return False
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._socket.setblocking(False)  # never wait on systemd
                self._socket.sendto(data, self._target)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    logger.debug("sd_notify: socket busy; dropped %r", data)
                    return False
                self._fail(f"cannot send to $NOTIFY_SOCKET={self.address!r}: {exc}")
                return False
        return True

    def _fail(self, why: str) -> None:
        self.failed = True
        message = f"sd_notify disabled: {why}"
        logger.warning("%s", message)
        if self._on_failure is not None:
            try:
                self._on_failure(message)
            except Exception:
                logger.exception("sd_notify: the failure callback raised; ignored")
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``, or None when it is
    unset, not a positive integer, or meant for another process (``$WATCHDOG_PID``)."""
    env = os.environ if environ is None else environ
    text = env.get("WATCHDOG_USEC", "")
    if not text:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    if not text.isdigit() or int(text) <= 0:
        logger.warning("ignoring $WATCHDOG_USEC=%r: not a positive number of microseconds", text)
        return None
    return int(text) / 1e6 / 2


def status_line(service: Service, *, health: bool = False) -> str:
    """A one-line summary for ``STATUS=``: the service's state, how many tasks run, and why
    it is not live (with ``health``). Reads states without locks (safe from a journal
    listener)."""
    tasks = service.tasks
    grouped = tasks.by_state()
    total = sum(len(names) for names in grouped.values())
    running = len(grouped.get(TaskState.RUNNING, ()))
    parts = [f"{service.name} {service.state.value}: {running}/{total} tasks running"]
    for state in (TaskState.FAILED, TaskState.SKIPPED):
        names = grouped.get(state)
        if names:
            parts.append(f"{state.value}: {', '.join(names)}")
    if service.shutdown_requested:
        parts.append(f"stop: {safe_str(service.shutdown_reason)}")
    if health:
        report = service.health.report()
        if not report.live:
            parts.append(f"not live: {report.live_reason}")
    text = "; ".join(parts).replace("\n", " ")
    return text if len(text) <= MAX_STATUS else text[: MAX_STATUS - 3] + "..."


class SystemdNotify:
    """Tells systemd about one service through ``notifier`` (see the module docstring).

    The service's ``health`` gives the liveness that gates ``WATCHDOG=1``; ``ping_every``:
    seconds between pings (None: no pings; see `watchdog_interval`). `start` subscribes to the
    service's journal and starts the pinging thread, which ends when the service ends; `close` ends
    everything sooner (idempotent). Never raises into the service.
    """

    def __init__(
        self,
        service: Service,
        notifier: Notifier,
        *,
        ping_every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.notifier = notifier
        self.ping_every = ping_every
        self._clock = clock
        self._lock = threading.Lock()  # a ping's check and send vs a liveness STATUS
        self._ended = threading.Event()
        self._undo: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environ(
        cls,
        service: Service,
        environ: Mapping[str, str] | None = None,
        on_failure: Callable[[str], object] | None = None,
    ) -> SystemdNotify | None:
        """One for ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC``, or None without a socket;
        ``on_failure`` as for `Notifier`."""
        notifier = Notifier.from_environ(environ, on_failure)
        if notifier is None:
            return None
        return cls(service, notifier, ping_every=watchdog_interval(environ))

    @property
    def thread(self) -> threading.Thread | None:
        """The pinging thread (None without pings or before `start`)."""
        return self._thread

    def start(self) -> None:
        if self._undo or self._thread is not None:
            raise LifecycleError("a SystemdNotify is started once; make a new one")
        journal = self.service.journal
        self._undo = [
            journal.subscribe(self._on_record),
            journal.subscribe_notices(self._on_notice),
        ]
        if self.ping_every is not None:
            self._thread = threading.Thread(
                target=self._ping, name=f"{self.service.name}.watchdog-ping", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        undo, self._undo = self._undo, []
        for step in undo:
            step()
        self._ended.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.notifier.close()

    def __enter__(self) -> SystemdNotify:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- journal listeners (quick; under the journal's lock) ---------------------------------

    def _on_record(self, rec: Transition) -> None:
        if not rec.ok:
            return
        if rec.kind == SERVICE.name:
            self._on_service(rec)
        elif rec.kind == TASK.name:
            if rec.trigger in RESTART_TRIGGERS:
                self._status()
            elif rec.dest is not None and TASK.is_terminal(rec.dest):
                self._extend_stop()

    def _on_service(self, rec: Transition) -> None:
        status = f"STATUS={status_line(self.service)}"
        pid = f"MAINPID={os.getpid()}"
        if rec.trigger == "start":
            self.notifier.send(pid, status)
        elif rec.trigger == "started":
            self.notifier.send("READY=1", pid, status)
        elif rec.trigger == "stop":
            fields = ["STOPPING=1", status]
            extend = self._extension()
            if extend is not None:
                fields.append(extend)
            self.notifier.send(*fields)
        else:
            self.notifier.send(status)
        if rec.dest is not None and SERVICE.is_terminal(rec.dest):
            self._ended.set()

    def _extension(self) -> str | None:
        """``EXTEND_TIMEOUT_USEC=`` the time the stop may still take, or None once the stop
        is past its own deadline (then systemd's TimeoutStopSec decides)."""
        deadline = self.service.stop_deadline
        if deadline is None or self.service.state != ServiceState.STOPPING:
            return None
        left = deadline - self._clock()
        if left <= 0:
            return None
        return f"EXTEND_TIMEOUT_USEC={int((left + LATE_STOP_GRACE) * 1e6)}"

    def _extend_stop(self) -> None:
        extend = self._extension()
        if extend is not None:
            self.notifier.send(extend)

    def _status(self) -> None:
        self.notifier.send(f"STATUS={status_line(self.service, health=True)}")

    def _on_notice(self, notice: Notice) -> None:
        if notice.kind == SERVICE.name and notice.what == LIVE:
            with self._lock:  # after this, no ping is sent unless the service is live again
                self._status()

    # -- the pinging thread ------------------------------------------------------------------

    def _ping(self) -> None:
        block_stop_signals()
        interval = self.ping_every
        if interval is None:
            return
        while not self._ended.wait(interval):
            try:
                with self._lock:
                    if self.service.health.live:
                        self.notifier.send("WATCHDOG=1")
            except Exception:  # never let the pings take the service down
                logger.exception("sd_notify: a watchdog ping failed")
