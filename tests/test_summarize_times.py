"""`summarize`: times to running count from the chosen service's start; a task without records is
in its initial state; a task that never ran has no time to running."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lifecycle.journal import Transition
from lifecycle.outcome import summarize

SECOND = 1_000_000_000  # ns


def _records(rows: list[tuple[int, str, str, str, str, str, str | None]]) -> list[Transition]:
    """Records from ``(mono, kind, subject, trigger, source, dest, cause)`` rows, in order."""
    return [
        Transition(seq, 0.0, mono, kind, subject, trigger, source, dest, True, cause, "main")
        for seq, (mono, kind, subject, trigger, source, dest, cause) in enumerate(rows, 1)
    ]


def _two_services(first_start: int, second_start: int, running_at: int) -> list[Transition]:
    return _records(
        [
            (0, "task", "early", "create", "registered", "created", None),
            (first_start, "service", "first", "start", "new", "starting", None),
            (second_start, "service", "second", "start", "new", "starting", None),
            (running_at - 1, "task", "work", "create", "registered", "created", None),
            (running_at - 1, "task", "work", "init", "created", "initialized", None),
            (running_at, "task", "work", "start", "initialized", "running", None),
            (running_at + SECOND, "task", "idle", "create", "registered", "created", None),
        ]
    )


def test_time_to_running_counts_from_the_start_of_the_service_asked_for() -> None:
    records = _two_services(1 * SECOND, 2 * SECOND, 5 * SECOND)
    (second,) = summarize(records, ["work"], service="second")
    assert (second.state, second.time_to_running) == ("running", 3.0)
    (first,) = summarize(records, ["work"], service="first")
    assert first.time_to_running == 4.0


def test_time_to_running_counts_from_the_first_service_when_none_is_named() -> None:
    records = _two_services(1 * SECOND, 2 * SECOND, 5 * SECOND)
    (work,) = summarize(records, ["work"])
    assert work.time_to_running == 4.0
    # A name that matches no service: the first one's start, still.
    (work,) = summarize(records, ["work"], service="nobody")
    assert work.time_to_running == 4.0


def test_without_a_service_time_to_running_counts_from_the_first_record() -> None:
    records = [r for r in _two_services(SECOND, 2 * SECOND, 5 * SECOND) if r.kind != "service"]
    (work,) = summarize(records, ["work"])
    assert work.time_to_running == 5.0


def test_a_task_that_never_ran_or_has_no_record_has_no_time_to_running() -> None:
    records = _two_services(SECOND, 2 * SECOND, 5 * SECOND)
    idle, ghost, work = summarize(records, ["idle", "ghost", "work"])
    assert (idle.name, idle.state, idle.time_to_running) == ("idle", "created", None)
    assert (ghost.name, ghost.state, ghost.time_to_running) == ("ghost", "registered", None)
    assert work.name == "work"


@given(
    first=st.integers(0, 10**6),
    gap=st.integers(0, 10**6),
    wait=st.integers(1, 10**6),
)
def test_time_to_running_is_the_gap_between_that_services_start_and_running(
    first: int, gap: int, wait: int
) -> None:
    second = first + gap
    running = second + wait
    records = _two_services(first * 1000, second * 1000, running * 1000)
    (by_second,) = summarize(records, ["work"], service="second")
    (by_first,) = summarize(records, ["work"], service="first")
    assert by_second.time_to_running == (running - second) * 1000 / 1e9
    assert by_first.time_to_running == (running - first) * 1000 / 1e9


def test_times_count_from_the_first_start_to_the_first_running_whatever_records_follow() -> None:
    # Records as an edited or replayed journal might hold them: a second start of the service
    # and a second running of the task move neither end of the measure.
    records = _two_services(SECOND, 2 * SECOND, 5 * SECOND)
    records += _records(
        [
            (6 * SECOND, "service", "second", "start", "new", "starting", None),
            (7 * SECOND, "task", "work", "start", "initialized", "running", None),
        ]
    )
    (work,) = summarize(records, ["work"], service="second")
    assert work.time_to_running == 3.0
