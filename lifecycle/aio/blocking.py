"""`BlockingDetector`: warn when an asyncio event loop stays blocked longer than a threshold.

A coroutine that calls blocking code (``time.sleep``, a synchronous HTTP client, a long
computation) stops every other coroutine of its loop: timers fire late, stops are not heard.
The detector names the asyncio task whose coroutine was running and logs its stack, once per
blocked episode, so the culprit is found from the log.

How it works, and why this way. The loop beats: a callback on the loop records the time and
sets a `threading.Event`, then reschedules itself with ``loop.call_later(threshold / 4)``. A
watchdog thread waits on that event with a *deadline*, the last beat plus one beat period plus
the threshold: while the loop is healthy the next beat always arrives first; if the deadline
passes, the loop has been unable to run a callback that was due for at least ``threshold``
seconds, so it is blocked, and the watchdog reads which asyncio task is current on the loop
(`asyncio.current_task`) and the stack of the loop's thread (`sys._current_frames`). Both sides
wait on events, never on polling sleeps: an idle loop wakes four times per threshold, the
watchdog once per beat. Unlike a ``SIGALRM`` timer (mode's ``BlockingDetector``), this works
for a loop on any thread, takes no signal handler from the application, and never raises into
the blocked code: it only observes and logs.

One warning per episode: once a blocked loop is reported, the watchdog waits for the next beat
(the loop answered again, logged at INFO with how long it was blocked) before it can report
again. A loop that is not running (not started yet, or between two ``run_until_complete``
calls) is not blocked: no beat is due and nothing is reported.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import sys
import threading
import time
import traceback
from types import FrameType, TracebackType

import attrs

from lifecycle.errors import LifecycleError, safe_repr

__all__ = [
    "BlockedEpisode",
    "BlockingDetector",
    "BlockingDetectorError",
    "InvalidThreshold",
]

#: No `NullHandler` here, unlike the other modules: someone who switched the detector on wants
#: its warnings, so a program that configured no logging (``lifecycle run``) still shows them
#: on stderr through logging's last-resort handler. Configure the logger to route them.
logger = logging.getLogger(__name__)

#: How many heartbeats per threshold: a report comes between 1 and 1 + 1/BEATS thresholds
#: after the loop blocked, at the cost of BEATS wake-ups of an idle loop per threshold.
BEATS_PER_THRESHOLD = 4


class BlockingDetectorError(LifecycleError):
    """A `BlockingDetector` was misused: started twice, started after `stop`, given something
    that is not an event loop, or started on a closed loop."""


class InvalidThreshold(BlockingDetectorError, ValueError):
    """A blocking threshold that is not a finite number of seconds > 0.

    Attribute: ``threshold`` (the value given).
    """

    def __init__(self, threshold: object) -> None:
        self.threshold = threshold
        super().__init__(
            f"blocking threshold must be a finite number of seconds > 0, not {safe_repr(threshold)}"
        )


@attrs.frozen
class BlockedEpisode:
    """What the detector saw when it reported a blocked loop.

    ``task``: the name of the asyncio task whose coroutine was running (None when the loop was
    running a plain callback); ``coroutine``: that coroutine's qualified name; ``stack``: the
    loop thread's stack, formatted, innermost call last (from the task's coroutine down when it
    is on the stack); ``blocked_for``: seconds the loop had been blocked, at least (a lower
    bound: it is measured from when the missed beat was due); ``threshold``: the detector's.
    """

    task: str | None
    coroutine: str | None
    stack: str
    blocked_for: float
    threshold: float

    def describe(self) -> str:
        """One line naming the culprit, as the warning starts."""
        if self.task is None:
            culprit = "a callback outside any asyncio task"
        else:
            culprit = f"asyncio task {self.task!r} (coroutine {self.coroutine})"
        return (
            f"event loop blocked for at least {self.blocked_for:.3g}s "
            f"(threshold {self.threshold:g}s) by {culprit}"
        )


def _check_threshold(threshold: object) -> float:
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise InvalidThreshold(threshold)
    return float(threshold)


class BlockingDetector:
    """Watch ``loop``; log one warning per episode in which it stays blocked longer than
    ``threshold`` seconds (default 1), naming the running asyncio task and carrying its stack.

    ``start()`` begins watching (it may be called before the loop runs: watching begins with
    the loop's first beat), ``stop()`` ends it and returns only once the watchdog thread has
    exited. Also a context manager (``with BlockingDetector(loop): ...``). A detector is
    started once. Off unless you start one; ``lifecycle run`` starts one for services with
    async tasks.

    Raises `InvalidThreshold` for a threshold that is not a finite number > 0 (a `ValueError`),
    `BlockingDetectorError` for a ``loop`` that is not an `asyncio.AbstractEventLoop`, from
    `start` on a detector already started or stopped, or on a closed loop.

    Thread-safe: `start` and `stop` may be called from any thread, `stop` any number of times,
    before `start`, and after the loop closed. Log handlers run on the watchdog thread; one that
    waits for the loop would wait for the blocked loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float = 1.0) -> None:
        if not isinstance(loop, asyncio.AbstractEventLoop):
            raise BlockingDetectorError(
                f"BlockingDetector needs an asyncio event loop, not {safe_repr(loop)}"
            )
        self._loop = loop
        self._threshold = _check_threshold(threshold)
        self._period = self._threshold / BEATS_PER_THRESHOLD
        self._lock = threading.Lock()
        self._beat = threading.Event()  # set by each heartbeat, and by stop
        self._state = "new"  # new -> watching -> stopped
        self._last_beat: float | None = None  # monotonic time of the latest heartbeat
        self._loop_thread: int | None = None  # ident of the thread the loop runs on
        self._timer: asyncio.TimerHandle | None = None
        self._watchdog: threading.Thread | None = None
        self._episodes = 0
        self._last_episode: BlockedEpisode | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def threshold(self) -> float:
        """Seconds the loop may stay blocked before a warning."""
        return self._threshold

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def episodes(self) -> int:
        """Blocked episodes reported so far (one warning each)."""
        with self._lock:
            return self._episodes

    @property
    def last_episode(self) -> BlockedEpisode | None:
        """The latest episode reported (None before the first)."""
        with self._lock:
            return self._last_episode

    @property
    def watching(self) -> bool:
        """True between `start` and `stop`."""
        with self._lock:
            return self._state == "watching"

    def start(self) -> BlockingDetector:
        """Begin watching the loop; returns the detector. Raises `BlockingDetectorError` if it
        was started before, or the loop is closed."""
        with self._lock:  # held until the watchdog runs, so a concurrent stop() can join it
            if self._state != "new":
                now = "already watching" if self._state == "watching" else "stopped"
                raise BlockingDetectorError(
                    f"this BlockingDetector is {now}; make a new one to watch again"
                )
            watchdog = threading.Thread(
                target=self._watch, name="lifecycle-blocking-detector", daemon=True
            )
            try:
                # Thread-safe whichever thread starts us, and works before the loop runs.
                self._loop.call_soon_threadsafe(self._heartbeat)
            except RuntimeError as exc:
                if self._loop.is_closed():
                    raise BlockingDetectorError("cannot watch a closed event loop") from exc
                raise
            watchdog.start()  # it waits for this lock before it looks at anything
            self._state = "watching"
            self._watchdog = watchdog
        return self

    def stop(self) -> None:
        """Stop watching; return once the watchdog thread has exited.

        Safe from any thread, twice, before `start`, and after the loop closed. On the loop's
        thread the pending heartbeat is cancelled; from another thread it is left to run once
        more and end itself (cancelling a timer handle is not thread-safe, and a closed loop
        takes no more callbacks).
        """
        with self._lock:
            self._state = "stopped"
            timer, self._timer = self._timer, None
            watchdog = self._watchdog
            on_loop = self._loop_thread == threading.get_ident()
        self._beat.set()  # wake the watchdog: it sees the state and returns
        if timer is not None and on_loop:
            timer.cancel()
        # Not when never started (a failed start), nor on itself (a log handler may call stop).
        if (
            watchdog is not None
            and watchdog.ident is not None
            and watchdog is not threading.current_thread()
        ):
            watchdog.join()

    def __enter__(self) -> BlockingDetector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<BlockingDetector threshold={self._threshold:g}s {self._state}>"

    # -- the loop's side ---------------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Runs on the loop: record that it could run a callback, then schedule the next."""
        with self._lock:
            if self._state != "watching":
                return
            self._last_beat = time.monotonic()
            self._loop_thread = threading.get_ident()
            self._timer = self._loop.call_later(self._period, self._heartbeat)
        self._beat.set()

    # -- the watchdog's side -----------------------------------------------------------------

    def _watch(self) -> None:
        silent: float | None = None  # the last beat before a silence already dealt with
        warned = False  # whether that silence was reported (a loop that stopped running is not)
        while True:
            with self._lock:
                if self._state != "watching":
                    return
                last = self._last_beat
            if last is None or last == silent:
                # Not beating yet, or silent and dealt with: wait for the loop to answer.
                self._beat.wait()
                self._beat.clear()
                continue
            if silent is not None and warned:
                logger.info(
                    "event loop answered again after %.3gs blocked",
                    max(0.0, last - silent - self._period),
                )
            silent, warned = None, False
            deadline = last + self._period + self._threshold
            if self._beat.wait(max(0.0, deadline - time.monotonic())):
                self._beat.clear()
                continue
            with self._lock:
                if self._state != "watching" or self._last_beat != last:
                    continue  # stopped, or the beat came just as the wait timed out
            silent = last
            warned = self._loop.is_running()  # a loop that stopped running is not blocked
            if warned:
                self._report(time.monotonic() - last - self._period)

    def _report(self, blocked_for: float) -> None:
        with self._lock:
            thread = self._loop_thread
        try:
            running = asyncio.current_task(self._loop)
        except Exception:  # a loop implementation without task tracking
            running = None
        frame = sys._current_frames().get(thread) if thread is not None else None
        coroutine = running.get_coro() if running is not None else None
        frames = _task_frames(frame, getattr(coroutine, "cr_code", None))
        episode = BlockedEpisode(
            task=running.get_name() if running is not None else None,
            coroutine=_running_coroutine(frames, coroutine) if running is not None else None,
            stack=_format_frames(frames),
            blocked_for=blocked_for,
            threshold=self._threshold,
        )
        with self._lock:
            self._episodes += 1
            self._last_episode = episode
        logger.warning(
            "%s; its stack, innermost call last:\n%s",
            episode.describe(),
            episode.stack,
            extra={"blocked_episode": episode},
        )


def _task_frames(frame: FrameType | None, code: object) -> list[FrameType]:
    """The loop thread's frames from ``frame`` outwards, innermost first, cut at the outermost
    frame running ``code`` (the task's coroutine) so that the loop's own frames do not bury
    the culprit."""
    if frame is None:
        return []
    frames = [f for f, _ in traceback.walk_stack(frame)]
    outermost = max((i for i, f in enumerate(frames) if f.f_code is code), default=len(frames) - 1)
    return frames[: outermost + 1]


def _running_coroutine(frames: list[FrameType], coroutine: object) -> str:
    """The qualified name of the innermost coroutine function on the stack: the code that
    blocks, or awaits what blocks (the task's own coroutine may be an engine wrapper)."""
    for frame in frames:
        if frame.f_code.co_flags & inspect.CO_COROUTINE:
            return frame.f_code.co_qualname
    name = getattr(coroutine, "__qualname__", None)
    return name if isinstance(name, str) else safe_repr(coroutine)


def _format_frames(frames: list[FrameType]) -> str:
    if not frames:
        return "  (the loop's thread has no Python frame)\n"
    summary = traceback.StackSummary.extract(
        ((f, f.f_lineno) for f in reversed(frames)), lookup_lines=True
    )
    return "".join(summary.format())
