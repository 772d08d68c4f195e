"""A restarted async task's fresh instance awaits its ``init_task`` on the service's loop, in an
asyncio task named after the hook, and what that ``init_task`` raises decides its fate as at
create: nothing, it runs again; `SkipTask`, it ends skipped; anything else, it fails with that
cause (the restart happens on the supervisor's thread, not on the loop)."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

from lifecycle import Service, SkipTask
from lifecycle.aio import AsyncTask
from lifecycle.journal import Transition

WAIT = 30.0  # a bound on waits that only a broken engine reaches, never a timing assertion


class _Ends:
    """Wakes when the journal holds a record matching ``wanted`` (a listener, no polling)."""

    def __init__(self, service: Service, subject: str, triggers: set[str], count: int) -> None:
        self._left = count
        self._lock = threading.Lock()
        self.event = threading.Event()
        self._subject, self._triggers = subject, triggers
        service.journal.subscribe(self._see)

    def _see(self, rec: Transition) -> None:
        if rec.kind == "task" and rec.subject == self._subject and rec.trigger in self._triggers:
            with self._lock:
                self._left -= 1
                if self._left <= 0:
                    self.event.set()


class _CrashesOnceThenInits(AsyncTask):
    """Its first instance's run_loop raises; every instance's init_task records where it ran,
    and the second one's init_task then does what `second_init` says."""

    RESTART = "on-failure"
    RESTART_DELAY = 0.001
    made: ClassVar[list[int]]
    #: (instance number, thread ident, loop, asyncio task name) for each awaited init_task.
    inits: ClassVar[list[tuple[int, int, asyncio.AbstractEventLoop, str]]]
    second_init: ClassVar[BaseException | None] = None

    def __init__(self, service: object = None) -> None:
        super().__init__(service)
        self.made.append(len(self.made))
        self.number = len(self.made)

    async def init_task(self) -> None:
        current = asyncio.current_task()
        name = current.get_name() if current is not None else ""
        self.inits.append((self.number, threading.get_ident(), asyncio.get_running_loop(), name))
        if self.number == 2 and self.second_init is not None:
            raise self.second_init

    async def run_loop(self) -> None:
        if self.number == 1:
            raise RuntimeError("the first instance crashes")
        await self.stop_event.wait()


def _serve(second_init: BaseException | None) -> tuple[type[AsyncTask], Service]:
    cls = type(
        "Restarted",
        (_CrashesOnceThenInits,),
        {"made": [], "inits": [], "second_init": second_init},
    )

    class OneRestarting(Service):
        TASKS = (cls,)

    service = OneRestarting({"stop_timeout": 10.0})
    return cls, service


def _run(service: Service, ends: _Ends) -> list[int]:
    """Serve on a loop of a thread of its own until ``ends`` wakes, then shut down; the exit
    codes."""
    codes: list[int] = []
    served = threading.Thread(
        target=lambda: codes.append(asyncio.run(service.serve())), daemon=True
    )
    served.start()
    reached = ends.event.wait(WAIT)
    service.shutdown("the test is over")
    served.join(WAIT)
    assert reached, "the restarted instance never started, skipped or failed"
    assert not served.is_alive()
    return codes


def _outcomes(service: Service) -> list[str]:
    return [
        rec.trigger
        for rec in service.journal.records
        if rec.kind == "task" and rec.subject == "Restarted" and rec.ok
        and rec.trigger in {"start", "skip", "fail", "crash", "restart"}
    ]


def test_the_restarted_instance_awaits_init_task_on_the_loop_and_runs() -> None:
    cls, service = _serve(None)
    ends = _Ends(service, "Restarted", {"start"}, 2)
    assert _run(service, ends) == [0]
    inits = cls.inits  # type: ignore[attr-defined]
    assert [number for number, *_ in inits] == [1, 2]
    (_, first_thread, first_loop, first_name), (_, thread, loop, name) = inits
    # The same loop and its thread, for the instance made at create and the one restarted.
    assert (thread, loop) == (first_thread, first_loop)
    assert name == first_name == "Restarted.init_task"
    assert _outcomes(service).count("start") == 2


def test_a_skip_from_the_restarted_init_task_ends_the_task_skipped() -> None:
    cls, service = _serve(SkipTask("not this time"))
    ends = _Ends(service, "Restarted", {"skip"}, 1)
    _run(service, ends)
    assert [number for number, *_ in cls.inits] == [1, 2]  # type: ignore[attr-defined]
    assert service.tasks.Restarted.lifecycle.state == "skipped"
    skips = [r for r in service.journal.records if r.subject == "Restarted" and r.trigger == "skip"]
    assert len(skips) == 1 and "not this time" in str(skips[0].cause)


def test_a_failure_of_the_restarted_init_task_fails_the_task_with_that_cause() -> None:
    cls, service = _serve(ValueError("bad config on restart"))
    ends = _Ends(service, "Restarted", {"fail"}, 1)
    _run(service, ends)
    assert [number for number, *_ in cls.inits] == [1, 2]  # type: ignore[attr-defined]
    task = service.tasks.Restarted
    assert task.lifecycle.state == "failed"
    assert isinstance(task.failure, ValueError) and str(task.failure) == "bad config on restart"
