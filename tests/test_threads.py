"""Eight threads at once: shared subjects and one shared collection stay consistent."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from lifecycle.collection import Tasks
from lifecycle.engine import Lifecycle
from lifecycle.errors import IllegalTransition
from lifecycle.journal import Journal
from lifecycle.spec import COLLECTION, SERVICE, TASK, CollectionState
from lifecycle.task import Task
from tests.strategies import replay, sequence_problems

THREADS = 8
FIRES_PER_THREAD = 150
DEADLINE = 10.0


def run_together(work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(index)`` on eight threads released at once; the errors they raised."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(DEADLINE)
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"firer-{i}") for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        errors.append(TimeoutError(f"threads still running: {stuck}"))
    return errors


@given(seed=st.integers(min_value=0, max_value=2**32 - 1), per_spec=st.integers(1, 4))
def test_eight_threads_firing_at_shared_subjects_leave_no_torn_state(
    seed: int, per_spec: int
) -> None:
    journal = Journal()
    subjects = [
        Lifecycle(spec, f"{spec.name}-{i}", journal)
        for spec in (TASK, COLLECTION, SERVICE)
        for i in range(per_spec)
    ]
    # What each thread saw: (subject, trigger, the state fire returned or None if refused,
    # the state IllegalTransition reported).
    seen: list[list[tuple[str, str, str | None, str | None]]] = [[] for _ in range(THREADS)]

    def fire_randomly(index: int) -> None:
        rng = random.Random(seed * THREADS + index)
        for _ in range(FIRES_PER_THREAD):
            lc = rng.choice(subjects)
            # Mostly a trigger that was legal a moment ago (so threads race for real edges),
            # sometimes anything, including a trigger no table has.
            allowed = lc.allowed()
            if allowed and rng.random() < 0.7:
                trigger = rng.choice(allowed)
            else:
                trigger = rng.choice([*lc.spec.triggers, "bogus"])
            try:
                dest = lc.fire(trigger)
            except IllegalTransition as err:
                seen[index].append((lc.subject, trigger, None, err.state))
            else:
                seen[index].append((lc.subject, trigger, str(dest), None))

    assert run_together(fire_randomly) == []
    records = journal.records
    assert len(records) == THREADS * FIRES_PER_THREAD
    assert sequence_problems(records) == []
    assert all(a.mono <= b.mono for a, b in itertools.pairwise(records))
    states, problems = replay(records)
    assert problems == []  # continuity and legality of every record, per subject
    for lc in subjects:
        assert states.get((lc.spec.name, lc.subject), lc.spec.initial) == lc.state
    for index in range(THREADS):
        mine = [r for r in records if r.thread == f"firer-{index}"]
        assert [(r.subject, r.trigger, r.dest, None if r.ok else r.source) for r in mine] == seen[
            index
        ]


class Steady(Task):
    def run_loop(self) -> None:
        self.stop_event.wait(DEADLINE)


class Quick(Task):
    LOOPLESS = True
    DEPS = (Steady,)


@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_eight_threads_driving_one_collection_agree_with_the_table(seed: int) -> None:
    tasks = Tasks([Quick])
    calls = ["create", "init", "start", "stop", "join"]
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def drive(index: int) -> None:
        rng = random.Random(seed * THREADS + index)
        for _ in range(12):
            call = rng.choice(calls)
            try:
                if call == "join":
                    tasks.join(0)
                else:
                    getattr(tasks, call)()
                outcome = "ok"
            except IllegalTransition:
                outcome = "illegal"
            with lock:
                outcomes.append((call, outcome))

    try:
        assert run_together(drive) == []
    finally:
        if tasks.lifecycle.can("stop"):
            tasks.stop()
        assert tasks.join(DEADLINE) == []
    records = tasks.journal.records
    assert sequence_problems(records) == []
    states, problems = replay(records)
    assert problems == []
    assert states.get(("collection", "tasks"), COLLECTION.initial) == tasks.state
    for name in ("Steady", "Quick"):
        assert states.get(("task", name), TASK.initial) == tasks.state_of(name)
    # Each driver call is one collection transition at most: it happened exactly once if
    # any thread's call of it succeeded.
    for call in ("create", "init", "start"):
        fired = [r for r in records if r.kind == "collection" and r.ok and r.trigger == call]
        assert len(fired) == (1 if (call, "ok") in outcomes else 0)
    assert tasks.state in (CollectionState.STOPPED, CollectionState.REGISTERING)
