"""The collection state machine of the core suite, on random mixes of thread and async tasks.

The same rules, oracle and invariants as `tests.test_collection_machine` (every driver call in
any order, the staged stop checked by the audit after every step), with a collection whose
tasks are threaded or async at random, the async ones with their own faults: a `run_loop` that
raises a `CancelledError` of its own (a crash), one that never looks at its `stop_event`
(cancelled after its stop grace: a clean stop), one that swallows that cancellation and then
returns, a slow `on_stop`. The loop runs on a thread of its own; the test thread drives the
collection, as `Service.serve`'s driver does. Added invariants: once every task ended, none of
the engine's asyncio tasks is pending, and at the end no asyncio task and no thread is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, ClassVar

import attrs
from hypothesis import event
from hypothesis import strategies as st

from lifecycle.aio import AsyncTask
from lifecycle.task import SkipTask, Task
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)
from tests.test_collection_machine import (
    WORKER_DEADLINE,
    WORKER_FAULTS,
    CollectionMachine,
    Plan,
    build,
    plans,
    rarely,
)

#: Faults of an async run_loop: those of a thread's, and the ones only coroutines have.
ASYNC_CRASHES = (*WORKER_FAULTS, "cancelled_elsewhere")
ASYNC_RUN_FAULTS = (
    "raise_now", "deaf", "cancelled_elsewhere", "swallow_cancel", "exit_now", "raise_after_stop"
)


@st.composite
def mixed_plans(draw: st.DrawFn, count: int, first: int = 0) -> list[Plan]:
    """The core suite's plans, each made async at random with the faults of async tasks."""
    result = []
    for plan in draw(plans(count, first)):
        if draw(st.booleans()):
            run = "ok" if plan.loopless else draw(rarely(list(ASYNC_RUN_FAULTS), among=8))
            stop = draw(rarely(["raise", "slow"], among=5))
            plan = attrs.evolve(plan, kind="async", run=run, stop=stop)
        result.append(plan)
    return result


class AsyncFaulty(AsyncTask):
    """The async twin of the core suite's `Faulty`."""

    PLAN: ClassVar[Plan]
    LOOPLESS = True
    STOP_GRACE = 0.02

    def __init__(self, service: Any = None) -> None:
        if self.PLAN.ctor == "raise":
            raise RuntimeError(f"{self.PLAN.name}: constructor fault")
        super().__init__(service)
        self.loops_lock = threading.Lock()
        self.loops = 0

    async def init_task(self) -> None:
        if self.PLAN.init == "skip":
            raise SkipTask(f"{self.PLAN.name}: skip fault")
        if self.PLAN.init == "raise":
            raise RuntimeError(f"{self.PLAN.name}: init fault")

    async def on_stop(self) -> None:
        if self.PLAN.stop == "raise":
            raise RuntimeError(f"{self.PLAN.name}: on_stop fault")
        if self.PLAN.stop == "slow":
            await asyncio.sleep(0.005)

    async def run_loop(self) -> None:
        with self.loops_lock:
            self.loops += 1
        try:
            await self._misbehave()
        finally:
            with self.loops_lock:
                self.loops -= 1

    async def _misbehave(self) -> None:
        run = self.PLAN.run
        if run == "raise_now":
            raise RuntimeError(f"{self.PLAN.name}: run_loop fault")
        if run == "exit_now":
            raise SystemExit(f"{self.PLAN.name}: run_loop exit")
        if run == "cancelled_elsewhere":
            raise asyncio.CancelledError(f"{self.PLAN.name}: not the engine's")
        if run == "deaf":
            await asyncio.sleep(WORKER_DEADLINE)  # cancelled after the stop grace
            return
        if run == "swallow_cancel":
            with contextlib.suppress(asyncio.CancelledError):  # swallowed: it returns later
                await asyncio.sleep(WORKER_DEADLINE)
            await asyncio.sleep(0.001)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), WORKER_DEADLINE)
        if run == "raise_after_stop":
            raise RuntimeError(f"{self.PLAN.name}: run_loop fault after stop")


class MixedCollectionMachine(CollectionMachine):
    CRASHES = ASYNC_CRASHES
    FAST_CRASHES = ("raise_now", "exit_now", "cancelled_elsewhere")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(
            target=self.loop.run_forever, name="machine-loop", daemon=True
        )
        self.loop_thread.start()
        self.tasks.loop = self.loop

    def draw_plans(self, data: st.DataObject, count: int, first: int, label: str) -> list[Plan]:
        return data.draw(mixed_plans(count, first), label=label)

    def build_class(self, plan: Plan) -> type[Task]:
        if plan.kind == "thread":
            return build(plan, self.classes)
        namespace = {
            "PLAN": plan,
            "DEPS": tuple(self.classes[i] for i in plan.deps),
            "WANTS": tuple(self.classes[i] for i in plan.wants),
            "LOOPLESS": plan.loopless,
            "workers": plan.workers,
            "__module__": __name__,
            "__qualname__": f"machine.{plan.name}",
        }
        return type(plan.name, (AsyncFaulty,), namespace)

    def on_loop(self, query: Any) -> Any:
        async def ask() -> Any:
            return query()

        return asyncio.run_coroutine_threadsafe(ask(), self.loop).result(WORKER_DEADLINE)

    def engine_runs_pending(self) -> list[str]:
        """The names of the engine's asyncio tasks not finished (asked on the loop)."""
        return self.on_loop(
            lambda: [
                run.get_name()
                for task in self.tasks.tasks
                if isinstance(task, AsyncTask)
                for run in task._pending_runs()
            ]
        )

    def no_worker_alive(self) -> bool:
        # Called once every task reported ended: no coroutine of theirs may be pending either.
        return super().no_worker_alive() and self.engine_runs_pending() == []

    def teardown(self) -> None:
        try:
            super().teardown()
            left = self.on_loop(lambda: asyncio.all_tasks() - {asyncio.current_task()})
            assert left == set()
            started = [self.plans[n] for n in self.tasks.start_order]
            kinds = sorted({p.kind for p in started})
            event(f"started kinds: {', '.join(kinds) or 'none'}")
            for fault in sorted({p.run for p in started if p.kind == "async"} - {"ok"}):
                event(f"async run_loop fault started: {fault}")
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.loop_thread.join(WORKER_DEADLINE)
            assert not self.loop_thread.is_alive()
            self.loop.close()


MixedCollectionMachine.TestCase.settings = CollectionMachine.TestCase.settings
TestMixedCollectionMachine = MixedCollectionMachine.TestCase
