"""Stop requests, the stop deadline and signals: when a service must stop, and by when.

A `ShutdownRequests` object records requests lock-free (a signal handler may make them), arms
the stop deadline at the first request whatever the phase (init included), turns SIGINT and
SIGTERM into requests and a second one into a forced exit, and, while a constructor or an
``init_task`` runs on the main thread, interrupts that hook once the deadline passes or the
exit is forced (a hook that never returns must not hang the process). What the stop then does
is the collection's and its coordinator's business (`lifecycle.collection`,
`lifecycle.stopping`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

from lifecycle.errors import ForcedShutdown, LifecycleError, LifecycleInterrupt, StopTimeout

__all__ = ["STOP_SIGNALS", "ShutdownRequests", "block_stop_signals"]

#: The signals that request a graceful stop (a second one forces the exit).
STOP_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None
)
_ALARM = getattr(signal, "SIGALRM", None)


class ShutdownRequests:
    """The stop requests of one service, its stop deadline and its signal handling.

    ``timeout``: seconds from the first request to the stop deadline. ``wake``: called (from
    any thread, or a signal handler: it must be signal-safe) after every request and when the
    exit is forced. ``busy``: the names of the tasks still at work, for the errors that name
    them.

    `request` is lock-free and idempotent; the first reason is kept. Thread-safe.
    """

    def __init__(
        self, timeout: float, wake: Callable[[], None], busy: Callable[[], Sequence[str]]
    ) -> None:
        self.timeout = timeout
        self._wake = wake
        self._busy = busy
        self._reasons: list[str] = []
        self._signals: list[str] = []
        self._deadline: float | None = None
        self._forced = False
        self._guarding = False  # task code runs on the main thread under `guard_hooks`
        # While `handling_signals`: a pipe the signals' C handler writes to, whichever thread
        # the kernel handed the signal to (see `wait_on_main_thread`).
        self._wakeup: tuple[int, int] | None = None

    # -- requests --------------------------------------------------------------------------

    def request(self, reason: str) -> None:
        """Ask for a stop and arm the deadline if this is the first request. Signal-safe."""
        self._reasons.append(reason)  # list.append is atomic
        if self._deadline is None:
            self._deadline = time.monotonic() + self.timeout
            if self._guarding:
                _arm_alarm(self.timeout)
                if not self._guarding:  # the hooks ended meanwhile: no stray alarm later
                    _arm_alarm(None)
        self._wake()

    @property
    def requested(self) -> bool:
        return bool(self._reasons)

    @property
    def reason(self) -> str | None:
        """The first request's reason, if any."""
        return self._reasons[0] if self._reasons else None

    @property
    def forced(self) -> bool:
        """Whether a second signal gave up waiting."""
        return self._forced

    @property
    def deadline(self) -> float | None:
        """The stop deadline (a `time.monotonic` value), once a stop was requested."""
        return self._deadline

    def left(self) -> float:
        """Seconds until the deadline (never negative; the whole timeout before a request)."""
        if self._deadline is None:
            return self.timeout
        return max(0.0, self._deadline - time.monotonic())

    def gave_up_error(self, names: Sequence[str]) -> LifecycleError:
        """The error that ends a stop that did not finish: `ForcedShutdown` after a second
        signal, else `StopTimeout`, naming ``names``."""
        if self._forced:
            return ForcedShutdown(names, self._signals[-1] if self._signals else "signal")
        return StopTimeout(names, self.timeout)

    # -- signals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[bool]:
        """Turn SIGINT/SIGTERM into requests while inside; yields whether it could (only the
        main thread can). The previous handlers are restored on exit."""
        if threading.current_thread() is not threading.main_thread():
            yield False
            return
        previous: dict[int, Any] = {}
        wakeup = _open_wakeup()
        previous_fd = -1
        try:
            for signum in STOP_SIGNALS:
                previous[signum] = signal.signal(signum, self._on_signal)
            if _ALARM is not None:
                previous[_ALARM] = signal.signal(_ALARM, self._on_alarm)
            if wakeup is not None:
                previous_fd = signal.set_wakeup_fd(wakeup[1], warn_on_full_buffer=False)
                self._wakeup = wakeup
            yield True
        finally:
            _arm_alarm(None)
            if self._wakeup is not None:
                self._wakeup = None
                signal.set_wakeup_fd(previous_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if wakeup is not None:
                for fd in wakeup:
                    os.close(fd)

    def wait_on_main_thread(self, permit: threading.Lock, timeout: float) -> bool:
        """Wait for ``permit`` (what `wake` releases) at most ``timeout`` seconds (-1: no
        bound); True if it was acquired.

        On the main thread while `handling_signals`, the wait also ends when a signal arrives,
        whichever thread the kernel handed it to: a signal taken by another thread (the
        kernel may give a process's signal to any thread that does not block it) sets Python's
        flag but cannot interrupt a lock the main thread waits on, so its handler would never
        run. Here the handler's pipe wakes the main thread, which runs it on the way back.
        """
        wakeup = self._wakeup
        if wakeup is None or threading.current_thread() is not threading.main_thread():
            return permit.acquire(timeout=timeout)
        deadline = None if timeout < 0 else time.monotonic() + timeout
        while not permit.acquire(blocking=False):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            # Woken by a signal (any thread's) or by `poke` (what the service's wake does).
            ready, _, _ = select.select([wakeup[0]], [], [], left)
            if ready:
                with contextlib.suppress(OSError):
                    os.read(wakeup[0], 4096)
            # Back in Python: a signal's handler runs now, and may release the permit.
        return True

    def poke(self) -> None:
        """Wake `wait_on_main_thread` (signal-safe, lock-free; a no-op when not waiting)."""
        wakeup = self._wakeup
        if wakeup is not None:
            with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
                os.write(wakeup[1], b"\0")

    @contextlib.contextmanager
    def handling_loop_signals(self, loop: asyncio.AbstractEventLoop) -> Iterator[bool]:
        """`handling_signals` for a service on an event loop: SIGINT/SIGTERM reach ``loop``
        through `loop.add_signal_handler`, so the request is made on the loop's thread between
        two callbacks, never inside one. Yields whether it could (only on the main thread, and
        where the loop supports it); the previous handlers are restored on exit."""
        if threading.current_thread() is not threading.main_thread():
            yield False
            return
        previous: dict[int, Any] = {}
        try:
            for signum in STOP_SIGNALS:
                handler = signal.getsignal(signum)
                loop.add_signal_handler(signum, self._on_signal, signum, None)
                previous[signum] = handler
        except (NotImplementedError, RuntimeError, ValueError):
            self._restore_loop_signals(loop, previous)
            yield False
            return
        try:
            yield True
        finally:
            self._restore_loop_signals(loop, previous)

    @staticmethod
    def _restore_loop_signals(loop: asyncio.AbstractEventLoop, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            with contextlib.suppress(RuntimeError, ValueError):  # the loop is closed already
                loop.remove_signal_handler(signum)
            # remove_signal_handler leaves SIG_DFL (or SIGINT's default): put back the caller's.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    @contextlib.contextmanager
    def guard_hooks(self, active: bool) -> Iterator[None]:
        """While inside (and ``active``: our handlers are installed on this, the main thread),
        a passed deadline or a forced exit raises `LifecycleInterrupt` into the hook running
        on it (a constructor, an ``init_task``)."""
        if not active or _ALARM is None:
            yield
            return
        self._guarding = True
        try:
            if self._deadline is not None:
                _arm_alarm(self.left())
            yield
        finally:
            self._guarding = False
            _arm_alarm(None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self._signals.append(name)
        if len(self._signals) == 1:
            self.request(f"received {name}")
            return
        self._forced = True
        self._wake()
        if self._guarding:
            raise LifecycleInterrupt(self.gave_up_error(self._busy()))

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._guarding:
            self._interrupt_if_due()

    def _interrupt_if_due(self) -> None:
        if self._forced or (self._deadline is not None and self.left() <= 0):
            raise LifecycleInterrupt(self.gave_up_error(self._busy()))


def _open_wakeup() -> tuple[int, int] | None:
    """A non-blocking pipe for `signal.set_wakeup_fd` (None where there is none)."""
    if not hasattr(os, "pipe") or sys.platform == "win32":
        return None
    read, write = os.pipe()
    for fd in (read, write):
        os.set_blocking(fd, False)
    return read, write


def block_stop_signals() -> None:
    """Keep the stop signals (and SIGALRM) off the calling thread, which must not be the main
    one: call it first thing on a helper thread of the engine's own.

    The kernel hands a process's signal to any thread that does not block it, and the main
    thread already has one pending is such a case: a second SIGINT sent right after a SIGTERM
    then lands on a helper thread, and the main thread, blocked in a lock, never wakes to run
    its handler. Blocked here, every such signal is the main thread's. A no-op where threads
    cannot block signals.
    """
    mask = getattr(signal, "pthread_sigmask", None)
    if mask is None or threading.current_thread() is threading.main_thread():
        return
    mask(signal.SIG_BLOCK, {*STOP_SIGNALS, *((_ALARM,) if _ALARM is not None else ())})


def _arm_alarm(seconds: float | None) -> None:
    """Deliver SIGALRM after ``seconds`` (at once if none are left; None disarms). A no-op
    where there is no SIGALRM."""
    if _ALARM is None:
        return
    # A zero interval would disarm the timer: a deadline already passed fires in 1 ms instead.
    signal.setitimer(signal.ITIMER_REAL, 0 if seconds is None else max(seconds, 1e-3))
