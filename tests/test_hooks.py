"""Hooks run on worker threads: a coroutine function as a hook is refused when the class is made.

Called on a thread, an ``async def`` hook would only build a coroutine and drop it: the work
would never run, and its errors would never surface.
"""

from __future__ import annotations

from typing import Any

import pytest

from lifecycle.errors import InvalidTask
from lifecycle.task import Task
from lifecycle.tasks import PeriodicTask, PriorityQueueTask, QueueTask, UniqueQueueTask


async def _coroutine_hook(self: Any, *args: Any) -> None:
    return None


async def _async_generator_hook(self: Any, *args: Any) -> Any:
    yield None


HOOKS = [
    (Task, "init_task"),
    (Task, "init_thread"),
    (Task, "run_loop"),
    (Task, "on_stop"),
    (PeriodicTask, "execute"),
    (PeriodicTask, "run_loop"),
    (QueueTask, "execute"),
    (PriorityQueueTask, "execute"),
    (UniqueQueueTask, "on_stop"),
]


@pytest.mark.parametrize("function", [_coroutine_hook, _async_generator_hook])
@pytest.mark.parametrize(("base", "hook"), HOOKS, ids=[f"{b.__name__}.{h}" for b, h in HOOKS])
def test_an_async_hook_is_a_type_error_naming_the_class_and_the_hook(
    base: type[Task], hook: str, function: Any
) -> None:
    with pytest.raises(TypeError, match=rf"Rogue\.{hook}\(\) is an async def") as info:
        type("Rogue", (base,), {hook: function, "INTERVAL": 1.0})
    assert isinstance(info.value, InvalidTask)
    assert "plain function" in str(info.value) and "async task class" in str(info.value)


def test_an_async_hook_inherited_from_a_mixin_is_refused_too() -> None:
    class AsyncLoop:
        async def run_loop(self) -> None:
            return None

    with pytest.raises(InvalidTask, match=r"Rogue\.run_loop\(\) is an async def"):
        type("Rogue", (AsyncLoop, Task), {})


def test_async_methods_that_are_not_hooks_are_allowed() -> None:
    class Helper(Task):
        LOOPLESS = True

        async def execute(self) -> None:  # not a hook of a plain task
            return None

        async def fetch(self) -> None:
            return None

    assert Helper.LOOPLESS
