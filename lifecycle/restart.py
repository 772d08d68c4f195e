"""Restart policies: when a crashed task is restarted, after how long, and how often.

The words are systemd's. A task class declares::

    class Fetcher(Task):
        RESTART = "on-failure"        # "never" (the default), "on-failure" or "always"
        RESTART_DELAY = 0.5           # the first backoff, in seconds
        RESTART_DELAY_MAX = 30.0      # the backoff doubles per recent restart, up to this
        RESTART_LIMIT = (5, 10.0)     # more than 5 restarts within 10 s: the task fails

"on-failure" restarts a task whose worker raised; "always" also one whose run loop returned
before any stop request. A failure during init or during a stop is never restarted.

Backoff: the ``n``-th restart within the limit's window (``n`` from 0) waits a uniformly random
time between ``RESTART_DELAY`` and ``min(RESTART_DELAY_MAX, RESTART_DELAY * 2**n)`` (full jitter
over each doubling step, never below the first delay, so the audit can check the floor from the
journal's header alone). Limit: a crash that finds ``burst`` restarts already within the last
``seconds`` is not restarted: the task fails with `RestartLimitExceeded` (OTP's intensity and
period, systemd's ``StartLimitBurst=`` and ``StartLimitIntervalSec=``).

This module is the pure policy: values, their validation, the backoff and the limit. The
collection drives the restarts (`lifecycle.collection`); the audit checks them against the
policy each task's journal header carries (`RestartPolicy.to_dict`).
"""

from __future__ import annotations

import argparse
import functools
import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs

__all__ = [
    "DEFAULT_DELAY",
    "DEFAULT_DELAY_MAX",
    "DEFAULT_LIMIT",
    "MODES",
    "RestartHistory",
    "RestartPolicy",
    "delay_problem",
    "limit_problem",
    "mode_problem",
    "parse_limit",
    "policy_of",
    "seconds_ns",
]

#: The restart modes, in systemd's words.
MODES = ("never", "on-failure", "always")
#: systemd's ``RestartSec=`` default.
DEFAULT_DELAY = 0.1
DEFAULT_DELAY_MAX = 10.0
#: systemd's ``StartLimitBurst=5`` within ``StartLimitIntervalSec=10``.
DEFAULT_LIMIT = (5, 10.0)


def mode_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a ``RESTART`` mode (None: nothing)."""
    if value in MODES and isinstance(value, str):
        return None
    return f"must be one of {', '.join(repr(m) for m in MODES)}, not {value!r}"


def delay_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a delay in seconds (None: nothing)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        return f"must be a finite number of seconds >= 0, not {value!r}"
    return None


def limit_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a ``RESTART_LIMIT`` (None: nothing): it must be a pair
    ``(burst, seconds)``, ``burst`` an int >= 0 and ``seconds`` a finite number > 0."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        return f"must be a pair (burst, seconds), not {value!r}"
    burst, seconds = value
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 0:
        return f"must be (burst, seconds) with burst an int >= 0, not {value!r}"
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        return f"must be (burst, seconds) with seconds a finite number > 0, not {value!r}"
    return None


def parse_limit(text: str) -> tuple[int, float]:
    """``"BURST/SECONDS"`` (``"3/60"``) as ``(3, 60.0)``: the ``--{prefix}-restart-limit`` flag.

    Raises `argparse.ArgumentTypeError` (a `ValueError`'s sibling argparse reports as is)
    saying what is wrong.
    """
    burst_text, slash, seconds_text = text.partition("/")
    try:
        if not slash:
            raise ValueError
        limit: tuple[int, float] = (int(burst_text), float(seconds_text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected BURST/SECONDS (for example 5/10), not {text!r}"
        ) from None
    problem = limit_problem(limit)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return limit


def _limit(value: Any) -> tuple[int, float]:
    return (value[0], float(value[1]))


@attrs.frozen
class RestartPolicy:
    """One task's restart policy (see the module docstring). Immutable.

    Raises `ValueError` naming the field for a value that breaks its rule; task classes report
    it as `InvalidTask` when the class is made.
    """

    mode: str = "never"
    delay: float = DEFAULT_DELAY
    delay_max: float = DEFAULT_DELAY_MAX
    limit: tuple[int, float] = attrs.field(default=DEFAULT_LIMIT, converter=_limit)

    def __attrs_post_init__(self) -> None:
        for field, problem in (
            ("RESTART", mode_problem(self.mode)),
            ("RESTART_DELAY", delay_problem(self.delay)),
            ("RESTART_DELAY_MAX", delay_problem(self.delay_max)),
        ):
            if problem is not None:
                raise ValueError(f"{field} {problem}")
        if self.delay_max < self.delay:
            raise ValueError(
                f"RESTART_DELAY_MAX must be >= RESTART_DELAY ({self.delay!r}), "
                f"not {self.delay_max!r}"
            )

    @classmethod
    def checked(
        cls, mode: object, delay: object, delay_max: object, limit: object
    ) -> RestartPolicy:
        """A policy from raw values; raises `ValueError` naming the first bad one."""
        problem = limit_problem(limit)
        if problem is not None:
            raise ValueError(f"RESTART_LIMIT {problem}")
        return cls(mode, delay, delay_max, limit)  # type: ignore[arg-type]

    @property
    def burst(self) -> int:
        return self.limit[0]

    @property
    def window(self) -> float:
        return self.limit[1]

    def restarts_after(self, failed: bool) -> bool:
        """Whether a task that crashed (``failed``: a worker raised) or whose run loop returned
        early (not ``failed``) is to be restarted, the limit aside."""
        return self.mode == "always" or (failed and self.mode == "on-failure")

    def backoff_cap(self, attempt: int) -> float:
        """The longest backoff of the ``attempt``-th recent restart (from 0)."""
        if self.delay == 0:
            return 0.0
        # In logarithms, as floats would overflow: 2**attempt grows without bound, and so does
        # delay_max / delay for a tiny (subnormal) delay.
        if attempt >= math.log2(self.delay_max) - math.log2(self.delay):
            return float(self.delay_max)
        return float(min(self.delay_max, math.ldexp(self.delay, attempt)))

    def backoff(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        """The backoff of the ``attempt``-th recent restart: uniform in ``[delay, cap]``.

        ``draw`` returns a float in ``[0, 1)`` (`random.random`).
        """
        cap = self.backoff_cap(attempt)
        return self.delay + (cap - self.delay) * draw()

    def to_dict(self) -> dict[str, Any]:
        """The policy as a journal header carries it (``restart`` of a task's entry)."""
        return {
            "policy": self.mode,
            "delay": self.delay,
            "delay_max": self.delay_max,
            "limit": [self.burst, self.window],
        }

    @classmethod
    def from_dict(cls, obj: object) -> RestartPolicy:
        """The inverse of `to_dict`; raises `ValueError` saying what is malformed."""
        if not isinstance(obj, Mapping):
            raise ValueError(f"expected a restart policy mapping, not {obj!r}")
        try:
            return cls.checked(obj["policy"], obj["delay"], obj["delay_max"], obj["limit"])
        except KeyError as exc:
            raise ValueError(f"the restart policy has no {exc.args[0]!r}") from None


@functools.lru_cache(maxsize=256)
def _cached(mode: object, delay: object, delay_max: object, limit: object) -> RestartPolicy:
    return RestartPolicy.checked(mode, delay, delay_max, limit)


def policy_of(mode: object, delay: object, delay_max: object, limit: object) -> RestartPolicy:
    """`RestartPolicy.checked`, cached: every task class asks for its policy when it is made,
    registered and created, and most share the default one. Raises `ValueError` likewise."""
    try:
        hash((mode, delay, delay_max, limit))
    except TypeError:  # a list as the limit, say: checked (and refused) uncached
        return RestartPolicy.checked(mode, delay, delay_max, limit)
    return _cached(mode, delay, delay_max, limit)


class RestartHistory:
    """The recent restarts of one task, judged against its policy's limit.

    Times are `time.monotonic_ns` values, the clock of the journal's ``mono`` field. Not
    thread-safe: its owner serializes calls.
    """

    def __init__(self) -> None:
        self._times: deque[int] = deque()

    def recent(self, policy: RestartPolicy, now_ns: int) -> int:
        """How many restarts happened within the policy's window before ``now_ns``."""
        times = self._times
        horizon = now_ns - seconds_ns(policy.window)
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def add(self, when_ns: int) -> None:
        """Count a restart decided at ``when_ns``: never earlier than the crash's journal
        record, so that the audit, judging by the records, finds the window respected."""
        self._times.append(when_ns)

    def __len__(self) -> int:
        return len(self._times)


def seconds_ns(seconds: float) -> int:
    """``seconds`` in whole nanoseconds, rounded up (a wait is never shortened)."""
    return math.ceil(seconds * 1_000_000_000)
