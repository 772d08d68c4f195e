"""One `Service` runs thread and async tasks: `serve` on the caller's loop, DEPS across kinds,
failures of async hooks, the stop with escalation, and what `serve` leaves behind (nothing)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from typing import Any, ClassVar

import pytest

from lifecycle import audit
from lifecycle.aio import AsyncTask
from lifecycle.errors import InitError, LifecycleError, StopError, StopTimeout
from lifecycle.outcome import summarize
from lifecycle.service import Service
from lifecycle.spec import ServiceState, TaskState
from lifecycle.task import SkipTask, Task
from tests.aio_support import asyncio_hygiene, serve  # noqa: F401  (autouse)


class Base(Task):
    """A thread task the async ones require."""

    def run_loop(self) -> None:
        self.stop_event.wait()


class Middle(AsyncTask):
    """An async task between two thread tasks."""

    DEPS = (Base,)
    workers = 2

    async def init_task(self) -> None:
        self.loop_seen = asyncio.get_running_loop()
        self.base_state = self.service.tasks.state_of(Base)

    async def run_loop(self) -> None:
        await self.stop_event.wait()

    async def on_stop(self) -> None:
        # Staged stop: the thread task that requires this one has ended by now.
        self.top_state_at_stop = self.service.tasks.state_of(Top)
        await asyncio.sleep(0)


class Top(Task):
    """A thread task requiring an async one."""

    DEPS = (Middle,)

    def run_loop(self) -> None:
        self.stop_event.wait()


class Finisher(AsyncTask):
    """Asks the service to stop once it runs, then waits to be stopped."""

    DEPS = (Top,)

    async def run_loop(self) -> None:
        self.service.shutdown("finisher is done")
        await self.stop_event.wait()


class Mixed(Service):
    TASKS = (Finisher,)


def test_a_service_runs_thread_and_async_tasks_with_deps_across_kinds_both_ways() -> None:
    service = Mixed()
    code, left = serve(service)
    assert code == 0 and left == set()
    assert service.state == ServiceState.STOPPED
    records = service.journal.records
    inits = [r.subject for r in records if r.kind == "task" and r.trigger == "init"]
    starts = [r.subject for r in records if r.kind == "task" and r.trigger == "start"]
    assert inits == ["Base", "Middle", "Top", "Finisher"]
    stops = [r.subject for r in records if r.kind == "task" and r.trigger == "stop"]
    assert starts == ["Base", "Middle", "Top", "Finisher"]
    assert stops == ["Finisher", "Top", "Middle", "Base"]
    middle = service.tasks.require(Middle)
    assert middle.base_state == TaskState.INITIALIZED  # init in order, across kinds
    assert middle.top_state_at_stop == TaskState.STOPPED
    assert all(not thread.is_alive() for task in service.tasks for thread in task.threads)


def test_the_journal_of_a_mixed_run_audits_clean_and_summarizes() -> None:
    service = Mixed()
    assert serve(service)[0] == 0
    assert audit.check(service.journal) == []
    summary = summarize(service.journal.records, service.tasks.order, service=service.name)
    assert {s.name: s.state for s in summary} == dict.fromkeys(
        ["Base", "Middle", "Top", "Finisher"], "stopped"
    )


def test_serve_runs_the_async_hooks_on_the_callers_loop_beside_its_own_tasks() -> None:
    ticks: list[int] = []

    async def meanwhile(service: Service) -> None:
        # The caller's own coroutine keeps running while the service is served.
        for i in range(3):
            ticks.append(i)
            await asyncio.sleep(0)

    async def main() -> tuple[int, asyncio.AbstractEventLoop, Service]:
        service = Mixed()
        served = asyncio.create_task(service.serve())
        await meanwhile(service)
        return await served, asyncio.get_running_loop(), service

    code, loop, service = asyncio.run(main())
    assert code == 0 and ticks == [0, 1, 2]
    assert service.tasks.require(Middle).loop_seen is loop


def test_service_run_serves_a_service_with_async_tasks_on_a_loop_of_its_own() -> None:
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    service = Mixed()
    assert service.run() == 0
    assert service.state == ServiceState.STOPPED
    # The loop's signal handlers are gone, the previous ones back.
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # nothing left running on this thread


def test_serve_called_twice_is_refused_and_changes_nothing() -> None:
    async def main() -> None:
        service = Mixed()
        served = asyncio.create_task(service.serve())
        await asyncio.sleep(0)
        with pytest.raises(LifecycleError, match="already started or served"):
            await service.serve()
        assert await served == 0
        with pytest.raises(LifecycleError, match="already started or served"):
            await service.serve()
        assert service.state == ServiceState.STOPPED

    asyncio.run(main())


def test_cancelling_serve_stops_the_service_then_raises_cancelled_error() -> None:
    class Idle(AsyncTask):
        async def run_loop(self) -> None:
            self.service.running.set()
            await self.stop_event.wait()

    class Waiting(Service):
        TASKS = (Base, Idle)

        def __init__(self) -> None:
            super().__init__()
            self.running = threading.Event()

    async def main() -> Waiting:
        service = Waiting()
        served = asyncio.create_task(service.serve())
        while not service.running.is_set():  # the test's own wait, not the library's
            await asyncio.sleep(0.001)
        served.cancel()
        with pytest.raises(asyncio.CancelledError):
            await served
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return service

    service = asyncio.run(main())
    assert service.state == ServiceState.STOPPED
    stop = next(r for r in service.journal.records if r.kind == "service" and r.trigger == "stop")
    assert stop.cause == "serve() was cancelled"


def test_an_async_task_without_a_loop_fails_init_saying_how_to_run_it() -> None:
    service = Mixed()
    with pytest.raises(InitError):
        service.start()
    assert service.state == ServiceState.FAILED
    assert "no event loop" in str(service.failure)


# -- failures ------------------------------------------------------------------------------


def _failing(exc: BaseException, where: str = "run_loop") -> type[Service]:
    class Failing(AsyncTask):
        async def run_loop(self) -> None:
            if where == "run_loop":
                raise exc
            await self.stop_event.wait()

        async def init_task(self) -> None:
            if where == "init_task":
                raise exc

        async def on_stop(self) -> None:
            if where == "on_stop":
                raise exc

    class Dependent(Task):
        DEPS = (Failing,)

        def run_loop(self) -> None:
            self.stop_event.wait()

    class Stopper(AsyncTask):
        async def run_loop(self) -> None:
            self.service.shutdown("stopping")
            await self.stop_event.wait()

    class FailingService(Service):
        TASKS = (Dependent, *((Stopper,) if where == "on_stop" else ()))

    return FailingService


@pytest.mark.parametrize(
    "exc",
    [RuntimeError("boom"), SystemExit(3), KeyboardInterrupt()],
    ids=["exception", "SystemExit", "KeyboardInterrupt"],
)
def test_anything_raised_by_an_async_run_loop_fails_its_task_and_the_service(
    exc: BaseException,
) -> None:
    service = _failing(exc)()
    code, left = serve(service)
    assert code == 1 and left == set()
    assert service.tasks.state_of("Failing") == TaskState.FAILED
    assert service.tasks.state_of("Dependent") == TaskState.STOPPED
    assert service.failure is exc
    assert f"task 'Failing' failed: {type(exc).__name__}" in (service.shutdown_reason or "")


@pytest.mark.parametrize(
    "error",
    [ValueError("bad config"), SystemExit(2), KeyboardInterrupt()],
    ids=["exception", "SystemExit", "KeyboardInterrupt"],
)
def test_an_async_init_task_that_raises_fails_the_start_with_init_error(
    error: BaseException,
) -> None:
    service = _failing(error, "init_task")()
    code, left = serve(service)
    assert code == 1 and left == set()
    assert service.failure is error
    assert service.tasks.state_of("Failing") == TaskState.FAILED
    assert service.tasks.state_of("Dependent") == TaskState.SKIPPED


def test_skip_task_from_an_async_init_skips_the_thread_tasks_that_require_it() -> None:
    service = _failing(SkipTask("not today"), "init_task")()

    async def meanwhile(service: Service) -> None:
        service.shutdown("nothing to run")

    code, left = serve(service, meanwhile)
    assert code == 0 and left == set()
    assert service.tasks.state_of("Failing") == TaskState.SKIPPED
    assert service.tasks.state_of("Dependent") == TaskState.SKIPPED


def test_an_async_on_stop_that_raises_fails_the_stop_with_stop_error() -> None:
    error = RuntimeError("could not flush")
    service = _failing(error, "on_stop")()
    code, left = serve(service)
    assert code == 1 and left == set()
    assert any(isinstance(e, StopError) for e in service.errors)
    assert service.tasks.state_of("Failing") == TaskState.FAILED


@pytest.mark.parametrize("how", ["raised by hand", "from a future someone else cancelled"])
def test_a_cancelled_error_the_engine_did_not_cause_is_a_failure(how: str) -> None:
    class SelfCancelling(AsyncTask):
        async def run_loop(self) -> None:
            if how == "raised by hand":
                raise asyncio.CancelledError
            future = asyncio.get_running_loop().create_future()
            future.cancel()
            await future

    class Cancelling(Service):
        TASKS = (Base, SelfCancelling)

    service = Cancelling()
    code, left = serve(service)
    assert code == 1 and left == set()
    assert service.tasks.state_of("SelfCancelling") == TaskState.FAILED
    assert isinstance(service.failure, asyncio.CancelledError)


# -- the stop with escalation --------------------------------------------------------------


class Deaf(AsyncTask):
    """Never looks at its stop_event: only the cancellation after the grace ends it."""

    STOP_GRACE = 0.05

    async def run_loop(self) -> None:
        self.service.shutdown("test over")
        await asyncio.sleep(3600)


def test_a_run_loop_still_going_after_the_stop_grace_is_cancelled_and_stops_cleanly() -> None:
    class DeafService(Service):
        TASKS = (Base, Deaf)

    service = DeafService()
    code, left = serve(service)
    assert code == 0 and left == set()
    finish = next(r for r in service.journal.records if r.subject == "Deaf" and r.dest == "stopped")
    assert "stop grace" in (finish.cause or "") and "cancelled" in (finish.cause or "")
    assert audit.check(service.journal) == []


def test_the_stop_grace_is_an_option_of_each_async_task() -> None:
    class DeafService(Service):
        TASKS = (Deaf,)

    service = DeafService.from_argv(["--Deaf-stop-grace", "0"])
    assert service.run() == 0
    finish = next(r for r in service.journal.records if r.subject == "Deaf" and r.dest == "stopped")
    assert "0 s after stop_event was set" in (finish.cause or "")


def test_the_default_stop_grace_is_half_the_time_left_until_the_deadline() -> None:
    class Measured(AsyncTask):
        async def run_loop(self) -> None:
            self.service.shutdown("measure")
            await self.stop_event.wait()
            self.grace = self._grace()
            self.left = self.service.stop_deadline - time.monotonic()

    class MeasuredService(Service):
        TASKS = (Measured,)

    service = MeasuredService({"stop_timeout": 8.0})
    assert serve(service)[0] == 0
    task = service.tasks.require(Measured)
    assert 0 < task.grace <= 4.0 and task.grace >= task.left / 2


class Swallower(AsyncTask):
    """Swallows the grace's cancellation and keeps going until it is cancelled again."""

    STOP_GRACE = 0.01
    swallowed: ClassVar[list[str]] = []

    async def run_loop(self) -> None:
        self.service.shutdown("test over")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.swallowed.append("first")
        await asyncio.sleep(3600)  # the engine cancels it again once the service gave up


def test_a_task_that_swallows_cancellation_past_the_deadline_is_named_in_stop_timeout() -> None:
    class SwallowingService(Service):
        TASKS = (Base, Swallower)

    Swallower.swallowed.clear()  # a class-level record: the test may run twice in a process
    service = SwallowingService({"stop_timeout": 0.2})
    code, left = serve(service)
    assert code == 1 and left == set()
    assert Swallower.swallowed == ["first"]
    assert isinstance(service.failure, StopTimeout)
    assert "Swallower" in str(service.failure)
    assert service.abandoned == []
    # Its second cancellation (after the service ended) was awaited: the task ended too.
    assert service.tasks.state_of("Swallower") == TaskState.STOPPED
    assert service.tasks.state_of("Base") == TaskState.STOPPED


def test_a_coroutine_that_ignores_every_cancellation_is_abandoned_not_waited_for() -> None:
    released = asyncio.Event()

    class Unkillable(AsyncTask):
        STOP_GRACE = 0.01

        async def run_loop(self) -> None:
            self.service.shutdown("test over")
            while not released.is_set():
                try:
                    await released.wait()
                except asyncio.CancelledError:
                    continue

    class UnkillableService(Service):
        TASKS = (Unkillable,)

    async def main() -> tuple[int, Service]:
        service = UnkillableService({"stop_timeout": 0.1})
        code = await service.serve()  # returns: the coroutine is abandoned, not awaited
        assert [run.get_name() for run in service.abandoned] == ["Unkillable.run_loop"]
        released.set()
        await asyncio.wait(service.abandoned)
        return code, service

    code, service = asyncio.run(main())
    assert code == 1
    assert isinstance(service.failure, StopTimeout) and "Unkillable" in str(service.failure)


def test_a_hook_that_blocks_the_loop_delays_serve_until_it_returns_and_is_named() -> None:
    # A coroutine that blocks (time.sleep) cannot be interrupted: no other coroutine, not
    # even the cancellation, runs meanwhile. The driver thread still keeps the deadline, so
    # the service ends failed naming the task; serve() returns once the loop is free again.
    class Blocking(AsyncTask):
        async def run_loop(self) -> None:
            self.service.shutdown("test over")
            await self.stop_event.wait()
            time.sleep(0.8)

    class BlockingService(Service):
        TASKS = (Base, Blocking)

    service = BlockingService({"stop_timeout": 0.05})
    code, left = serve(service)
    assert code == 1 and left == set()
    assert isinstance(service.failure, StopTimeout) and "Blocking" in str(service.failure)
    assert service.tasks.state_of("Blocking") == TaskState.STOPPED  # it did end, late


def test_a_hung_async_init_task_is_cancelled_at_the_deadline_and_the_start_fails() -> None:
    class Hung(AsyncTask):
        LOOPLESS = True

        async def init_task(self) -> None:
            self.service.shutdown("give up on init")
            await asyncio.sleep(3600)

    class HungService(Service):
        TASKS = (Base, Hung)

    service = HungService({"stop_timeout": 0.1})
    code, left = serve(service)
    assert code == 1 and left == set()
    assert isinstance(service.failure, StopTimeout)
    assert "Hung" in str(service.failure)
    assert service.tasks.state_of("Hung") == TaskState.FAILED
    assert all(not thread.is_alive() for task in service.tasks for thread in task.threads)


def test_workers_run_concurrently_on_the_loop() -> None:
    class Pair(AsyncTask):
        workers = 2

        async def init_task(self) -> None:
            self.arrived = 0
            self.both = asyncio.Event()

        async def run_loop(self) -> None:
            self.arrived += 1
            if self.arrived == 2:
                self.both.set()
                self.service.shutdown("both workers ran")
            await self.both.wait()  # only returns if the other worker runs meanwhile
            await self.stop_event.wait()

    class PairService(Service):
        TASKS = (Pair,)

    service = PairService({"stop_timeout": 5.0})
    code, left = serve(service)
    assert code == 0 and left == set()
    assert service.tasks.require(Pair).arrived == 2



# -- the blocked-loop detector -------------------------------------------------------------


def test_lifecycle_run_watches_the_loop_for_blocking_and_the_library_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lifecycle.cli import main
    from lifecycle.service import BLOCKING_THRESHOLD

    seen: list[float | None] = []
    serve_itself = Service.serve

    async def watched(self: Service, **kwargs: bool) -> int:
        seen.append(self.blocking_threshold)
        return await serve_itself(self, **kwargs)

    monkeypatch.setattr(Service, "serve", watched)
    assert main(["run", "--quiet", "tests.aio_services:AsyncSelfStopping"]) == 0
    assert Mixed().run() == 0
    assert seen == [BLOCKING_THRESHOLD, None]


def test_a_service_watched_for_blocking_still_runs_and_stops() -> None:
    service = Mixed()
    service.blocking_threshold = 5.0
    code, left = serve(service)
    assert code == 0 and left == set()


def test_an_async_init_task_may_read_the_collection_while_the_driver_holds_it() -> None:
    # The driver thread holds the collection's lock through init; an async init_task runs on
    # the loop's thread, so a read that took that lock would wait for the driver, which waits
    # for the init_task.
    class Curious(AsyncTask):
        LOOPLESS = True

        async def init_task(self) -> None:
            self.order = self.service.tasks.order
            self.summary = [s.name for s in self.service.summary()]

    class CuriousService(Service):
        TASKS = (Base, Curious)

    async def meanwhile(service: Service) -> None:
        service.shutdown("read it")

    service = CuriousService({"stop_timeout": 5.0})
    code, left = serve(service, meanwhile)
    assert code == 0 and left == set()
    curious = service.tasks.require(Curious)
    assert curious.order == ("Base", "Curious") and curious.summary == ["Base", "Curious"]


def test_consecutive_async_inits_keep_the_order_and_the_verdicts_of_one_at_a_time() -> None:
    # Runs of async tasks are initialized on the loop in one hop; each verdict (init, skip
    # for a failed DEPS, fail) is still given in order, as for thread tasks.
    async def ok(self: AsyncTask) -> None:
        await asyncio.sleep(0)

    async def broken(self: AsyncTask) -> None:
        raise RuntimeError("A2 broke")

    def make(name: str, base: type, **body: Any) -> type:
        return type(name, (base,), {"LOOPLESS": True, "__module__": __name__, **body})

    a1 = make("A1", AsyncTask, init_task=ok)
    a2 = make("A2", AsyncTask, init_task=broken)
    a3 = make("A3", AsyncTask, init_task=ok, DEPS=(a2,))
    t = make("T", Task)
    a4 = make("A4", AsyncTask, init_task=ok)

    class Ordered(Service):
        TASKS = (a1, a2, a3, t, a4)

    service = Ordered()
    code, left = serve(service)
    assert code == 1 and left == set()
    verdicts = [
        (r.subject, r.trigger)
        for r in service.journal.records
        if r.kind == "task" and r.source == "created" and r.trigger in ("init", "skip", "fail")
    ]
    assert verdicts == [
        ("A1", "init"),
        ("A2", "fail"),
        ("A3", "skip"),
        ("T", "init"),
        ("A4", "init"),
    ]
    assert isinstance(service.failure, RuntimeError) and str(service.failure) == "A2 broke"


class _Quick(AsyncTask):
    """Asks its service to stop as soon as it runs."""

    async def run_loop(self) -> None:
        self.service.shutdown("done")
        await self.stop_event.wait()


class _QuickService(Service):
    TASKS = [_Quick]


def test_no_thread_of_the_service_outlives_serve() -> None:
    """serve() returns once its driver thread has ended, not merely once it said it was done
    (a check right after serve() returned saw the driver still alive, now and then)."""

    async def serve_and_look() -> list[str]:
        service = _QuickService()
        assert await service.serve(handle_signals=False) == 0
        return [t.name for t in threading.enumerate() if t.name.startswith(service.name)]

    for _ in range(200):
        assert asyncio.run(serve_and_look()) == []
