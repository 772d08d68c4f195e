"""`Service.wait` with real timeouts and several waiters; whom a passed stop deadline names;
the limits of ``--stop-timeout`` (0 is a valid deadline, ``inf`` is not one)."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from lifecycle.errors import OptionError, StopTimeout, UsageError
from lifecycle.service import Service
from lifecycle.spec import ServiceState, TaskState
from lifecycle.task import Task

WAIT = 30.0  # a bound for what happens at once; never reached when the code is right


class Idle(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


class Static(Task):
    LOOPLESS = True


def _service(*tasks: type[Task], **options: Any) -> Service:
    return type("Svc", (Service,), {"TASKS": tasks})(options or None)


def _in_thread(target: Any) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(target()), daemon=True)
    thread.start()
    return thread, results


# -- wait(timeout) ---------------------------------------------------------------------------


def test_wait_with_a_real_timeout_and_no_request_returns_false_and_leaves_it_running() -> None:
    service = _service(Idle)
    service.start()
    try:
        thread, results = _in_thread(lambda: service.wait(0.05))
        thread.join(WAIT)
        assert not thread.is_alive(), "wait(0.05) did not return"
        assert results == [False]
        assert service.state == ServiceState.RUNNING
        assert not service.shutdown_requested
        assert service.tasks.state_of("Idle") == TaskState.RUNNING
    finally:
        service.shutdown()
        assert service.wait(WAIT)
    assert service.state == ServiceState.STOPPED


def test_a_shutdown_during_a_timed_wait_is_carried_out_by_that_waiter() -> None:
    service = _service(Idle)
    service.start()
    thread, results = _in_thread(lambda: service.wait(WAIT))
    service.shutdown("done")
    thread.join(WAIT)
    assert results == [True]
    assert service.state == ServiceState.STOPPED


def test_a_second_waiter_times_out_with_false_while_the_first_carries_out_a_slow_stop() -> None:
    in_on_stop, release = threading.Event(), threading.Event()

    class SlowStop(Task):
        def run_loop(self) -> None:
            self.stop_event.wait()

        def on_stop(self) -> None:
            in_on_stop.set()
            release.wait(WAIT)

    service = _service(SlowStop)
    service.start()
    service.shutdown("done")
    first, first_results = _in_thread(service.wait)
    try:
        assert in_on_stop.wait(WAIT)  # the first waiter is inside the stop now
        # The stop is not done: a second waiter gives up at its own timeout, with False.
        assert service.wait(0.05) is False
        assert service.state == ServiceState.STOPPING
    finally:
        release.set()
        first.join(WAIT)
    assert first_results == [True]
    assert service.state == ServiceState.STOPPED
    # Once the stop is done, any waiter learns it at once.
    assert service.wait(0.05) is True


# -- whom a stop deadline names ------------------------------------------------------------


def test_a_passed_stop_deadline_names_only_the_tasks_still_at_work_in_dependency_order() -> None:
    release = threading.Event()

    class Held(Task):
        """Ordered before StuckA: asked to stop only once StuckA ended, or the stop gave up."""

        def run_loop(self) -> None:
            self.stop_event.wait()

    class StuckA(Task):
        DEPS = (Held,)

        def run_loop(self) -> None:
            release.wait(WAIT)

    class StuckB(Task):
        def run_loop(self) -> None:
            release.wait(WAIT)

    class Base(Task):
        def run_loop(self) -> None:
            self.stop_event.wait()

    class UsesBase(Task):
        DEPS = (Base,)

        def run_loop(self) -> None:
            self.stop_event.wait()

    service = _service(StuckB, Base, UsesBase, StuckA, stop_timeout=0.5)
    service.start()
    threads = [*service.tasks.StuckA.threads, *service.tasks.StuckB.threads]
    try:
        service.shutdown()
        assert service.wait(WAIT)
        failure = service.failure
        assert isinstance(failure, StopTimeout)
        # Base and UsesBase stopped in time and Held was not asked yet: only the two stuck
        # ones are named, in the collection's order (registration order breaks ties).
        assert failure.tasks == ("StuckB", "StuckA")
        assert failure.timeout == 0.5
        assert service.tasks.state_of("Base") == TaskState.STOPPED
        assert service.tasks.state_of("UsesBase") == TaskState.STOPPED
        # Held still stopped once the stop gave up on StuckA, and its record says why.
        assert service.tasks.state_of("Held") == TaskState.STOPPED
        (held_stop,) = [
            r for r in service.journal.records if r.subject == "Held" and r.trigger == "stop"
        ]
        assert held_stop.cause is not None and "StuckA" in held_stop.cause
    finally:
        release.set()
        for thread in threads:
            thread.join(WAIT)


# -- --stop-timeout's limits -----------------------------------------------------------------


def test_a_stop_timeout_of_zero_is_accepted_and_a_prompt_stop_still_ends_stopped() -> None:
    service = _service(Static, stop_timeout=0.0)
    assert service.stop_timeout == 0.0
    service.start()
    service.shutdown()
    assert service.wait(WAIT)
    assert service.state == ServiceState.STOPPED
    assert service.exit_code == 0


def test_stop_timeout_zero_from_the_command_line_is_accepted() -> None:
    cls = type("Svc", (Service,), {"TASKS": (Static,)})
    assert cls.from_argv(["--stop-timeout", "0"]).stop_timeout == 0.0


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_stop_timeout_inf_nan_or_negative_on_the_command_line_is_a_usage_error(
    value: str,
) -> None:
    cls = type("Svc", (Service,), {"TASKS": (Static,)})
    with pytest.raises(UsageError, match="stop-timeout"):
        cls.from_argv(["--stop-timeout", value])


@pytest.mark.parametrize("value", [math.inf, math.nan, -0.001, "30", None])
def test_stop_timeout_given_as_an_option_must_be_finite_seconds_at_least_zero(
    value: object,
) -> None:
    with pytest.raises(OptionError, match="stop-timeout") as caught:
        _service(Static, stop_timeout=value)
    assert caught.value.option == "--stop-timeout"
