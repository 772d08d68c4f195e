"""The staged stop: a task stops only once every task ordered after it has ended.

Stopping is where lifecycle engines break (dependencies closed under their users, hung hooks,
a deadline that passes mid-way), so it has one home. `StopOrder` is the rule, as pure
bookkeeping over a dependency graph: the collection's coordinator, the audit's ``stop-order``
rule and ``lifecycle plan`` all read it from here. `StopCoordinator` drives one staged stop
with it: it begins the stop of each task the moment the rule allows, wakes on each task's
terminal record (never on a poll), and, once the caller gives up waiting (a stop deadline),
still stops every remaining task in order without waiting for the stragglers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from lifecycle.graph import layers

__all__ = ["StopCoordinator", "StopOrder", "stop_layers", "time_left"]


class StopOrder:
    """Which tasks may begin their stop, as tasks end.

    ``order``: the task names, each after every task it is ordered after (a topological
    order). ``before``: name -> the names it is ordered after (its DEPS and WANTS); names not
    in ``order`` are ignored.

    A task is *released* once it has ended and every task ordered directly after it is
    released; a task *may stop* once every task ordered directly after it is released. By
    induction a task may stop exactly when every task ordered after it, directly or not, has
    ended, and a task that ended early (a crash) holds back what it is ordered after until its
    own dependents have ended too. Each update costs what the task's edges cost: linear in all.

    Not thread-safe: one owner (a coordinator, an audit) feeds it.
    """

    def __init__(self, order: Sequence[str], before: Mapping[str, Iterable[str]]) -> None:
        self._index = index = {name: i for i, name in enumerate(order)}
        # Only the tasks with edges get entries: most have none, and a stop of 100,000 tasks
        # should not build 200,000 empty lists first.
        self._before: dict[str, tuple[str, ...]] = {}
        self._after: dict[str, list[str]] = {}
        for name in order:
            listed = before.get(name)
            if not listed:
                continue
            firsts = tuple(dict.fromkeys(d for d in listed if d in index and d != name))
            if firsts:
                self._before[name] = firsts
                for first in firsts:
                    self._after.setdefault(first, []).append(name)
        self._unreleased_after = dict.fromkeys(order, 0)
        for first, after in self._after.items():
            self._unreleased_after[first] = len(after)
        self._ended: set[str] = set()
        self._released: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        """The task names, in the given (topological) order."""
        return tuple(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __len__(self) -> int:
        return len(self._index)

    def position(self, name: str) -> int:
        """The index of ``name`` in the order. Raises `KeyError` if unknown."""
        return self._index[name]

    @property
    def unended(self) -> int:
        """How many tasks have not ended."""
        return len(self._index) - len(self._ended)

    def may_stop(self, name: str) -> bool:
        """Whether every task ordered after ``name`` has ended. Raises `KeyError` if unknown."""
        return self._unreleased_after[name] == 0

    def blockers(self, name: str) -> list[str]:
        """The tasks ordered directly after ``name`` that are not released yet."""
        if name not in self._index:
            raise KeyError(name)
        return [user for user in self._after.get(name, ()) if user not in self._released]

    def free(self) -> list[str]:
        """Every task that may stop and has not ended, last in ``order`` first."""
        held, ended = self._unreleased_after, self._ended
        return [n for n in reversed(self._index) if not held[n] and n not in ended]

    def end(self, name: str) -> Sequence[str]:
        """Record that ``name`` ended; return the tasks not ended that may now stop.

        Idempotent: ending a task twice changes nothing the second time. Raises `KeyError`
        for a name not in the order.
        """
        if name in self._ended:
            return ()
        if name not in self._index:
            raise KeyError(name)
        self._ended.add(name)
        if self._unreleased_after[name]:
            return ()  # held back by what is ordered after it
        if name not in self._before:
            self._released.add(name)
            return ()  # nothing ordered before it to free: the usual case, nothing allocated
        now_free: list[str] = []
        releasing = [name]
        while releasing:  # a loop, not recursion: a 10,000-deep chain releases at once
            done = releasing.pop()
            self._released.add(done)
            for first in self._before.get(done, ()):
                self._unreleased_after[first] -= 1
                if self._unreleased_after[first] == 0:
                    if first in self._ended:
                        releasing.append(first)
                    else:
                        now_free.append(first)
        now_free.sort(key=self._index.__getitem__, reverse=True)
        return now_free


def stop_layers(order: Sequence[str], before: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The tasks grouped by when they stop if every stop takes as long: the first layer has
    nothing ordered after it, each later layer waits only for earlier ones.

    Within a layer, the reverse of ``order`` is kept. Raises `DependencyCycle` for a cycle.
    """
    known = set(order)
    after: dict[str, list[str]] = {name: [] for name in order}
    for name in order:
        for first in before.get(name, ()):
            if first in known and first != name:
                after[first].append(name)
    return layers(list(reversed(order)), after)


class StopCoordinator:
    """Drives one collection's staged stop.

    ``order`` and ``before`` as for `StopOrder`. ``is_ended(name)`` says whether a task is in a
    terminal state; ``begin(name, cause)`` starts its stop (fires ``stop`` and launches its
    stop hooks without waiting for them; a task that already ended is left alone).
    ``news`` is where the collection posts the name of each task that reached a terminal
    state (and None for "look again"); `SimpleQueue.put` is safe from a signal handler.

    Thread-safe: `start`, `drive`, `give_up` and `force` may be called from any thread; one
    thread drives at a time (the collection's `join` sees to it).
    """

    def __init__(
        self,
        order: Sequence[str],
        before: Mapping[str, Iterable[str]],
        *,
        is_ended: Callable[[str], bool],
        begin: Callable[[str, str | None], None],
        news: queue.SimpleQueue[str | None],
    ) -> None:
        self._order = StopOrder(order, before)
        self._is_ended = is_ended
        self._begin = begin
        self._news = news
        self._lock = threading.RLock()
        self._begun: set[str] = set()
        self._late_cause: str | None = None

    @property
    def gave_up(self) -> bool:
        """Whether `give_up` was called: stragglers no longer hold back the rest."""
        return self._late_cause is not None

    def start(self) -> None:
        """Take note of the tasks that already ended and begin the stop of those free now,
        and of those their ending frees at once (tasks with no code left to run end on the
        spot); does not wait for anything."""
        with self._lock:
            for name in self._order.names:
                if self._is_ended(name):
                    self._order.end(name)
            self._begin_all(self._order.free())
            self._act_on([])

    def pending(self) -> list[str]:
        """The tasks that have not ended, in order."""
        with self._lock:
            return [n for n in self._order.names if not self._is_ended(n)]

    def drive(self, deadline: float | None, until: Callable[[], bool] = lambda: False) -> list[str]:
        """Begin each stop as the order allows until every task ended (after `give_up`: every
        task but the stragglers), ``deadline`` (a `time.monotonic` value; None: no bound)
        passes, or ``until()`` is true (checked at every wake-up; post None to `news` to wake
        the driver). Returns the tasks that have not ended, in order.

        Drive from one thread at a time (the news are consumed here). The waits happen without
        the coordinator's lock, so `give_up` and `force` are never held up by a driver.
        """
        got: list[str | None] = []
        while True:
            with self._lock:
                self._act_on(got)
                if not self._order.unended:  # stragglers given up on count as ended here
                    return self.pending() if self.gave_up else []
            if until() or (deadline is not None and time_left(deadline) <= 0):
                return self.pending()
            try:
                got = [self._news.get(timeout=None if deadline is None else time_left(deadline))]
            except queue.Empty:
                got = []

    def stragglers(self) -> list[str]:
        """The tasks asked to stop that have not ended (their code still runs), in order."""
        with self._lock:
            return [n for n in self._order.names if n in self._begun and not self._is_ended(n)]

    def give_up(self, why: str) -> list[str]:
        """Stop waiting for the `stragglers`; return them. The rest still stop in order, as if
        the stragglers had ended; each stop begun from now on is journaled with a cause saying
        ``why`` and naming them."""
        with self._lock:
            stragglers = self.stragglers()
            named = ", ".join(stragglers) if stragglers else "none"
            self._late_cause = f"stopped after {why}; still running then: {named}"
            freed: list[str] = []
            for name in stragglers:
                freed += self._order.end(name)
            self._begin_all(sorted({*freed, *self._order.free()}, key=self._rank))
            return stragglers

    def force(self) -> None:
        """Begin the stop of every task not asked yet, at once, last in order first."""
        with self._lock:
            self._begin_all(
                [n for n in reversed(self._order.names) if n not in self._begun]
            )

    def _rank(self, name: str) -> int:
        return -self._order.position(name)

    def _act_on(self, news: list[str | None]) -> None:
        """Act on ``news`` and on all the news queued since, including what the stops begun
        here make at once (tasks without hooks end on the spot). Called with the lock held."""
        order = self._order
        while True:
            try:
                while True:
                    news.append(self._news.get_nowait())
            except queue.Empty:
                pass
            if not news:
                return
            freed: list[str] = []
            end = order.end
            for name in news:
                # News names a task only once it has ended (None is a bare wake-up).
                if name is None:
                    continue
                try:
                    now_free = end(name)
                except KeyError:  # not in this stop's order (a restart's stop: not in its chain)
                    continue
                if now_free:
                    freed += now_free
            news = []
            if freed:
                self._begin_all(sorted(freed, key=self._rank))

    def _begin_all(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self._begun:
                continue
            self._begun.add(name)
            self._begin(name, self._late_cause)


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (a `time.monotonic` value), never negative."""
    return max(0.0, deadline - time.monotonic())
