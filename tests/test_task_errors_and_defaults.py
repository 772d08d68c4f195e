"""The small contracts of `lifecycle.task`: what `TryLater` carries, the errors a misused task
raises (each names the task class and what was wrong), a task's repr, readiness without a
service, and which class values an instance's restart options fall back to."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.collection import Tasks
from lifecycle.errors import InvalidTask, LifecycleError
from lifecycle.task import Task, TryLater
from tests.fakes import FakeService

# -- TryLater ----------------------------------------------------------------------------------


@given(message=st.none() | st.text(max_size=20), after=st.none() | st.floats(0, 1e6))
def test_try_later_keeps_its_message_and_delay_and_has_no_args_without_a_message(
    message: str | None, after: float | None
) -> None:
    error = TryLater(message, after=after)
    assert (error.message, error.after) == (message, after)
    if message is None:
        assert error.args == () and str(error) == ""
    else:
        assert error.args == (message,) and str(error) == message


@pytest.mark.parametrize("after", [-1.0, -1e-9, math.nan, -math.inf])
def test_try_later_refuses_a_delay_that_is_not_a_delay_and_names_it(after: float) -> None:
    with pytest.raises(ValueError) as info:
        TryLater("busy", after=after)
    assert "after" in str(info.value) and repr(after) in str(info.value)


# -- errors that name the task -----------------------------------------------------------------


def test_run_loop_not_overridden_raises_naming_the_task_class() -> None:
    class Forgetful(Task):
        pass

    with pytest.raises(NotImplementedError) as info:
        Forgetful().run_loop()
    assert f"{Forgetful.__qualname__} must implement run_loop()" in str(info.value)


def test_a_thread_task_has_no_init_task_to_await_and_says_which_task() -> None:
    class Threaded(Task):
        LOOPLESS = True

    task = Threaded()
    assert task._init_loop() is None
    with pytest.raises(LifecycleError) as info:
        asyncio.run(task._await_init())
    assert "'Threaded'" in str(info.value)


def test_an_async_hook_on_a_thread_task_is_refused_naming_the_class() -> None:
    with pytest.raises(InvalidTask) as info:

        class AsyncStop(Task):
            LOOPLESS = True

            async def on_stop(self) -> None:
                pass

    assert info.value.task.__qualname__.endswith("AsyncStop")
    assert isinstance(info.value.task, type) and issubclass(info.value.task, Task)
    assert "on_stop() is an async def" in info.value.problem
    assert "subclass lifecycle.aio.AsyncTask" in info.value.problem  # where to go instead


def test_a_bad_restart_attribute_is_refused_naming_the_class_being_made() -> None:
    with pytest.raises(InvalidTask) as info:

        class Sometimes(Task):
            LOOPLESS = True
            RESTART = "sometimes"

    error = info.value
    assert isinstance(error.task, type) and error.task.__qualname__.endswith("Sometimes")
    assert "'sometimes'" in error.problem
    assert error.__cause__ is None and error.__suppress_context__


def test_restart_options_that_combine_badly_raise_invalid_task_naming_class_and_problem() -> None:
    class Restarts(Task):
        LOOPLESS = True
        RESTART = "on-failure"

    task = Restarts()
    task.set_option("restart-delay", 10.0)
    task.set_option("restart-delay-max", 1.0)
    with pytest.raises(InvalidTask) as info:
        task.current_restart_policy()
    error = info.value
    assert error.task is Restarts
    assert "RESTART_DELAY" in error.problem and "10.0" in error.problem
    assert str(error).startswith(repr(Restarts)) and error.problem in str(error)
    assert error.__cause__ is None and error.__suppress_context__


# -- restart options fall back to the class, one by one ------------------------------------------


@pytest.mark.parametrize("mode", ["never", "on-failure", "always"])
def test_an_instance_restart_option_overrides_only_itself_the_rest_come_from_the_class(
    mode: str,
) -> None:
    class Policy(Task):
        LOOPLESS = True
        RESTART = mode
        RESTART_DELAY = 0.25
        RESTART_DELAY_MAX = 8.0
        RESTART_LIMIT = (4, 30.0)

    task = Policy()
    task.set_option("restart-delay", 0.5)
    policy = task.current_restart_policy()
    assert (policy.mode, policy.delay, policy.delay_max, policy.limit) == (
        mode, 0.5, 8.0, (4, 30.0)
    )
    other = Policy()
    other.set_option("restart-limit", (2, 5.0))
    policy = other.current_restart_policy()
    assert (policy.mode, policy.delay, policy.delay_max, policy.limit) == (
        mode, 0.25, 8.0, (2, 5.0)
    )


# -- repr ----------------------------------------------------------------------------------------


def test_a_tasks_repr_names_its_class_its_name_and_its_state() -> None:
    class Shown(Task):
        LOOPLESS = True

    assert repr(Shown()) == f"<{Shown.__qualname__} 'Shown' unbound>"
    tasks = Tasks([Shown])
    tasks.create(FakeService())
    assert repr(tasks.Shown) == f"<{Shown.__qualname__} 'Shown' created>"
    tasks.init()
    assert repr(tasks.Shown) == f"<{Shown.__qualname__} 'Shown' initialized>"
    tasks.stop()


# -- readiness without a service ---------------------------------------------------------------


@pytest.mark.parametrize("service", [None, object()], ids=["no-service", "no-health-hook"])
def test_readiness_and_heartbeats_work_for_a_task_whose_service_does_not_watch_health(
    service: object,
) -> None:
    class Plain(Task):
        LOOPLESS = True

    task = Plain(service)
    assert task.readiness == (True, None)
    task.set_ready(False, "warming up")
    assert task.readiness == (False, "warming up")
    task.set_ready(False)
    assert task.readiness == (False, "not ready")
    task.set_ready()  # the default: ready
    assert task.readiness == (True, None)
    task.heartbeat()
