"""`lifecycle.testing.check_tasks`: the conformance check of users' tasks.

Well-behaved tasks (the demo's) pass; each broken promise fails with a message that names the
task, when the stop was asked for and what to fix, and the kit itself neither crashes nor
hangs on them. The tasks that never stop here wait on the test's ``release`` event, set at
the end of each test, so that nothing they leave behind outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from lifecycle import DependencyCycle, InvalidTask, OptionError, Service, SkipTask, Task
from lifecycle.aio import AsyncPeriodicTask, AsyncQueueTask, AsyncTask
from lifecycle.demo import DemoService, Mailer, Pinger, Producer
from lifecycle.testing import StopGraceWarning, check_tasks
from lifecycle.testing.tasks import PHASES, SHRINK_RUNS, Scenario, _Example, _Finding, _Runner
from tests.fakes import WAIT

README = Path(__file__).resolve().parent.parent / "README.md"
#: Short: each example that meets a task that does not stop costs this much.
STOP = 0.3


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test: frees the hooks a task blocks in on purpose."""
    event = threading.Event()
    yield event
    event.set()


def failure_of(*classes: type[Task], **kwargs: object) -> str:
    with pytest.raises(AssertionError) as info:
        check_tasks(*classes, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


# -- passing ---------------------------------------------------------------------------------------


def test_the_demo_tasks_keep_every_promise() -> None:
    check_tasks(*DemoService.TASKS, service=DemoService)


def test_the_demo_async_task_keeps_every_promise_beside_its_thread_dependency() -> None:
    # Pinger (async) requires Heartbeat (a thread task): faults go into the thread task, the
    # neighbour that sits above Pinger is an async task.
    check_tasks(Pinger, service=DemoService, max_examples=15)


def test_a_task_whose_dependencies_are_pulled_in_passes_with_faults_injected_into_them() -> None:
    # Producer finds its Mailer by class (tasks.require(Mailer)): the kit injects faults into
    # instances, so the classes registered are the user's own and that still works.
    check_tasks(Producer, service=DemoService, max_examples=10)


def test_the_dependencies_get_faults_and_the_stop_comes_in_every_phase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Scenario, str]] = []
    run = _Example.run

    def recording(self: _Example) -> list[object]:
        found = run(self)
        seen.append((self.scenario, self.service.state.value))
        return found  # type: ignore[return-value]

    monkeypatch.setattr(_Example, "run", recording)
    check_tasks(Producer, service=DemoService, max_examples=40)
    phases = {scenario.phase for scenario, _ in seen}
    assert phases == {"while running", "before init", "during init", "while starting", "twice"}
    faults = {fault for scenario, _ in seen for _, fault in scenario.faults}
    assert faults == {"none", "skips", "fails", "stops slowly"}
    assert {scenario.neighbour for scenario, _ in seen} == {"none", "beside", "Producer"}
    # A dependency that fails at init fails the service: the kit expects it of that fault.
    assert any(
        state == "failed" and ("Mailer", "fails") in scenario.faults for scenario, state in seen
    )


# -- failing, with a message a user can act on -----------------------------------------------------


def test_a_task_that_ignores_stop_event_fails_naming_the_task_the_phase_and_the_fix(
    release: threading.Event,
) -> None:
    class Poller(Task):
        def run_loop(self) -> None:
            release.wait(WAIT)  # never looks at stop_event

    message = failure_of(Poller, stop_timeout=STOP)
    first = message.splitlines()[0]
    assert first.startswith(
        "Poller did not stop within 0.3 s after stop was requested while running; "
        "its run_loop does not watch stop_event (thread 'Poller' is still at "
    )
    assert f"{Path(__file__).name}:" in first and first.endswith(", in run_loop)")
    assert "scenario (the smallest found): stop requested once every task was running; " \
        "no fault injected" in message


def test_a_periodic_task_stuck_in_execute_is_named_with_that_hook(
    release: threading.Event,
) -> None:
    from lifecycle.tasks import PeriodicTask

    class Ticker(PeriodicTask):
        INTERVAL = 0.01

        def execute(self) -> None:
            release.wait(WAIT)

    first = failure_of(Ticker, stop_timeout=STOP).splitlines()[0]
    assert first.startswith("Ticker did not stop within 0.3 s after stop was requested")
    assert "its execute did not return" in first and first.endswith(", in execute)")


def test_a_task_whose_on_stop_raises_is_reported_with_the_hook_and_the_error() -> None:
    class Closer(Task):
        LOOPLESS = True

        def on_stop(self) -> None:
            raise RuntimeError("cannot close the socket")

    first = failure_of(Closer).splitlines()[0]
    assert first.startswith(
        "Closer failed while stopping: its on_stop raised RuntimeError: cannot close the socket "
        f"(at {__file__}:"
    )
    assert first.endswith("a task's code must not raise: it fails the task and stops the service")


def test_a_task_that_starts_a_thread_and_never_joins_it_is_reported(
    release: threading.Event,
) -> None:
    class Spawner(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            threading.Thread(target=self.serve, name="spawned", daemon=True).start()

        def serve(self) -> None:
            release.wait(WAIT)

    first = failure_of(Spawner).splitlines()[0]
    assert first == (
        "Spawner left a thread running after the tasks ended: 'spawned' (running "
        f"{Spawner.serve.__qualname__}); join the threads a task starts (in on_stop, or before "
        "run_loop returns)"
    )


def test_system_exit_from_init_task_is_a_reported_failure_not_a_crash_of_the_kit() -> None:
    class Quitter(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            raise SystemExit(3)

    first = failure_of(Quitter).splitlines()[0]
    assert first.startswith("Quitter failed during init: its init_task raised SystemExit: 3 (at ")
    assert "raise SkipTask from init_task to opt out" in first
    assert "SystemExit included: it is the task's failure, not an exit" in first


def test_a_task_that_skips_itself_is_no_failure() -> None:
    class Optional(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            raise SkipTask("not configured")

    check_tasks(Optional, max_examples=5)


def test_an_init_task_that_hangs_does_not_hang_the_kit(release: threading.Event) -> None:
    class Connector(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            release.wait(WAIT)

    message = failure_of(Connector, stop_timeout=0.1, start_timeout=0.2, max_examples=1)
    assert message.startswith("Connector's init_task did not return within 0.2 s")


def test_a_task_that_stops_too_slowly_says_how_long_it_took(release: threading.Event) -> None:
    class Sluggish(Task):
        def run_loop(self) -> None:
            self.stop_event.wait(WAIT)
            release.wait(2 * STOP)  # returns, but late

    first = failure_of(Sluggish, stop_timeout=STOP, max_examples=1).splitlines()[0]
    assert first.startswith("Sluggish did not stop within 0.3 s after stop was requested")


def test_a_failure_caused_only_by_an_injected_dependency_fault_names_that_fault() -> None:
    class Db(Task):
        LOOPLESS = True

    class Reporter(Task):
        WANTS = (Db,)  # soft: Reporter still inits when Db fails, and dereferences it
        LOOPLESS = True

        def init_task(self) -> None:
            db = self.service.tasks.require(Db)
            if db.state.value != "initialized":
                raise RuntimeError(f"Db is {db.state.value}")

    message = failure_of(Reporter, max_examples=30)
    first, scenario = message.splitlines()[:2]
    assert first.startswith("Reporter failed during init: its init_task raised RuntimeError: Db ")
    assert "Db skips (injected)" in scenario or "Db fails (injected)" in scenario


# -- cost: a failure is reproduced from memory, and shrinking is bounded ------------------------


def test_a_failing_scenario_runs_once_and_shrinking_runs_at_most_a_few_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs: list[Scenario] = []

    class Failing:
        """Stands for a run of tasks that breaks a promise in every scenario."""

        def __init__(self, plan: object, scenario: Scenario) -> None:
            self.scenario = scenario

        def run(self) -> list[_Finding]:
            runs.append(self.scenario)
            return [_Finding(0, "broken")]

    monkeypatch.setattr("lifecycle.testing.tasks._Example", Failing)
    runner = _Runner(None)  # type: ignore[arg-type]
    scenario = Scenario("while running", "T", (), "none")
    for _ in range(3):  # hypothesis replays a failure: it is not run again
        with pytest.raises(AssertionError, match="broken"):
            runner.run(scenario)
    assert runs == [scenario]
    failed = 0
    for i in range(2 * SHRINK_RUNS):
        try:
            runner.run(Scenario("twice", f"T{i}", (), "none"))
        except AssertionError:
            failed += 1
    # Past the budget, scenarios are not run and count as passing: what is reported was seen.
    assert len(runs) == 1 + SHRINK_RUNS and failed == SHRINK_RUNS


# -- bad arguments ------------------------------------------------------------------------------


def test_bad_arguments_are_refused_with_typed_errors() -> None:
    class Fine(Task):
        LOOPLESS = True

    with pytest.raises(TypeError, match="at least one task class"):
        check_tasks()
    with pytest.raises(ValueError, match="stop_timeout must be finite seconds > 0"):
        check_tasks(Fine, stop_timeout=0)
    with pytest.raises(TypeError, match="start_timeout must be seconds"):
        check_tasks(Fine, start_timeout="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_examples must be an int >= 1"):
        check_tasks(Fine, max_examples=0)
    with pytest.raises(TypeError, match="service must be a Service subclass"):
        check_tasks(Fine, service=object)  # type: ignore[arg-type]
    with pytest.raises(InvalidTask, match="is not a Task subclass"):
        check_tasks(int)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="not an option of Service"):
        check_tasks(Fine, options={"colour": "blue"})


def test_classes_that_cannot_be_registered_raise_what_registration_raises() -> None:
    class A(Task):
        LOOPLESS = True

    class B(Task):
        LOOPLESS = True
        WANTS = (A,)

    A.WANTS = (B,)
    with pytest.raises(DependencyCycle):
        check_tasks(A)


def test_the_classes_are_left_as_the_user_wrote_them() -> None:
    before = dict(vars(Mailer))
    check_tasks(Producer, service=DemoService, max_examples=10)
    assert dict(vars(Mailer)) == before


# -- the README's example ---------------------------------------------------------------------


def _readme_block(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, f"README section {heading!r} has no python example"
    return str(blocks[0])


def test_the_readme_example_catches_the_poller_that_ignores_stop_event() -> None:
    module = ModuleType("readme_testing_example")
    exec(compile(_readme_block("Testing your tasks"), str(README), "exec"), module.__dict__)
    with pytest.raises(AssertionError) as info:
        module.test_poller_keeps_the_lifecycle_promises()
    first = str(info.value).splitlines()[0]
    section = README.read_text(encoding="utf-8").split("\n## Testing your tasks\n", 1)[1]
    shown = re.search(r"```text\n(.*?)\n", section)
    assert shown is not None, "the README shows the failure message in a text block"
    assert first.startswith(shown.group(1).split(" (thread")[0])


def test_a_task_can_be_checked_inside_its_own_service() -> None:
    class Needy(Task):
        LOOPLESS = True

        def init_task(self) -> None:
            self.region = self.service.region  # an attribute only its service has

    class Regional(Service):
        region = "eu"

    check_tasks(Needy, service=Regional, max_examples=5)


def test_the_readme_service_tasks_keep_every_promise() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    module = ModuleType("readme_example")
    exec(compile(blocks[0], str(README), "exec"), module.__dict__)
    check_tasks(*module.App.TASKS, service=module.App, options={"Poller_interval": 0.01})


# -- async tasks --------------------------------------------------------------------------------


def test_a_chain_of_dependencies_across_kinds_keeps_every_promise() -> None:
    class Feed(Task):  # thread <- async <- thread <- async
        def run_loop(self) -> None:
            self.stop_event.wait()

    class Fetcher(AsyncTask):
        DEPS = (Feed,)

        async def init_task(self) -> None:
            self.feed = self.service.tasks.require(Feed)

        async def run_loop(self) -> None:
            await self.stop_event.wait()

        async def on_stop(self) -> None:
            await asyncio.sleep(0)

    class Indexer(Task):
        DEPS = (Fetcher,)

        def run_loop(self) -> None:
            self.stop_event.wait()

    class Reporter(AsyncTask):
        DEPS = (Indexer,)
        LOOPLESS = True

    before = set(threading.enumerate())
    check_tasks(Fetcher, Reporter, max_examples=30)
    assert set(threading.enumerate()) <= before  # no thread, and so no loop, is left


def test_async_dependencies_get_async_faults_and_async_tasks_an_async_neighbour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Store(AsyncTask):
        async def init_task(self) -> None:
            pass

        async def run_loop(self) -> None:
            await self.stop_event.wait()

    class Cache(AsyncTask):
        DEPS = (Store,)
        LOOPLESS = True

    seen: list[tuple[Scenario, str, list[str]]] = []
    run = _Example.run

    def recording(self: _Example) -> list[object]:
        found = run(self)
        neighbour = self.tasks.get("SlowNeighbour")
        kinds = [type(neighbour).__mro__[1].__name__] if neighbour is not None else []
        seen.append((self.scenario, self.service.state.value, kinds))
        return found  # type: ignore[return-value]

    monkeypatch.setattr(_Example, "run", recording)
    check_tasks(Cache, max_examples=40)
    assert {scenario.phase for scenario, _, _ in seen} == set(PHASES)
    assert {fault for scenario, _, _ in seen for _, fault in scenario.faults} == {
        "none", "skips", "fails", "stops slowly"
    }
    # The injected coroutine faults took effect: a failing Store fails the service.
    assert any(s == "failed" and ("Store", "fails") in sc.faults for sc, s, _ in seen)
    neighbours = [(sc, kinds) for sc, _, kinds in seen if sc.neighbour != "none"]
    assert neighbours
    assert all(sc.async_neighbour and kinds == ["AsyncTask"] for sc, kinds in neighbours)
    assert "an async neighbour task" in neighbours[0][0].describe()


def test_async_periodic_and_queue_tasks_keep_every_promise() -> None:
    class Tick(AsyncPeriodicTask):
        INTERVAL = 0.01

        async def execute(self) -> int:
            return self.iterations

    class Mail(AsyncQueueTask):
        async def execute(self, item: object, context: object) -> object:
            return item

    check_tasks(Tick, Mail, max_examples=10)


def test_an_async_task_that_ignores_stop_event_and_swallows_cancellation_is_named() -> None:
    class Stubborn(AsyncTask):
        async def run_loop(self) -> None:
            while True:  # never looks at stop_event, and takes no cancellation
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(WAIT)

    before = set(threading.enumerate())
    message = failure_of(Stubborn, stop_timeout=STOP)
    first = message.splitlines()[0]
    assert first.startswith(
        "Stubborn did not stop within 0.3 s after stop was requested while running; its "
        "run_loop does not watch stop_event and swallows cancellation (coroutine "
        "'Stubborn.run_loop' is still at "
    )
    assert f"{Path(__file__).name}:" in first and first.endswith(", in run_loop)")
    assert "scenario (the smallest found): stop requested once every task was running; " \
        "no fault injected" in message
    assert set(threading.enumerate()) <= before  # the kit closed its loops: no thread is left


def test_an_async_task_that_ignores_stop_event_is_named_even_if_cancelling_ends_it() -> None:
    class Sleeper(AsyncTask):
        async def run_loop(self) -> None:
            await asyncio.sleep(WAIT)  # never looks at stop_event; the default grace is long

    first = failure_of(Sleeper, stop_timeout=STOP, max_examples=1).splitlines()[0]
    assert first.startswith(
        "Sleeper did not stop within 0.3 s after stop was requested while running; its "
        "run_loop does not watch stop_event (coroutine 'Sleeper.run_loop' was at "
    )
    assert first.endswith(", in run_loop; it ended only when cancelled)")


def test_an_async_task_stopped_in_time_only_by_its_stop_grace_passes_with_a_warning() -> None:
    class Sleeper(AsyncTask):
        STOP_GRACE = 0.0  # cancelled at once: within stop_timeout

        async def run_loop(self) -> None:
            await asyncio.sleep(WAIT)

    with pytest.warns(StopGraceWarning) as caught:
        check_tasks(Sleeper, stop_timeout=STOP, max_examples=5)
    assert len(caught) == 1  # once per task, not per example
    assert caught[0].filename == __file__  # it points at the check_tasks call
    assert str(caught[0].message).startswith(
        "Sleeper stopped within 0.3 s only because its run_loop was cancelled (run_loop still "
        "running 0 s after stop_event was set (the stop grace): cancelled); it does not return "
        "once stop_event is set"
    )


def test_an_async_task_that_watches_stop_event_gets_no_warning() -> None:
    class Watcher(AsyncTask):
        STOP_GRACE = 0.0

        async def run_loop(self) -> None:
            await self.stop_event.wait()

    with warnings.catch_warnings():
        warnings.simplefilter("error", StopGraceWarning)
        check_tasks(Watcher, max_examples=5)


def test_an_asyncio_task_left_pending_by_an_async_task_is_reported() -> None:
    class Leaker(AsyncTask):
        LOOPLESS = True

        async def init_task(self) -> None:
            self.background = asyncio.get_running_loop().create_task(self.tick(), name="ticker")

        async def tick(self) -> None:
            await asyncio.sleep(WAIT)

    first = failure_of(Leaker, max_examples=1).splitlines()[0]
    assert first == (
        "Leaker left an asyncio task pending after the tasks ended: 'ticker' (running "
        f"{Leaker.tick.__qualname__}); await or cancel the asyncio tasks a task starts (in "
        "on_stop, or before run_loop returns)"
    )


def test_an_async_init_task_that_hangs_does_not_hang_the_kit() -> None:
    class Connector(AsyncTask):
        LOOPLESS = True

        async def init_task(self) -> None:
            await asyncio.sleep(WAIT)

    message = failure_of(Connector, stop_timeout=0.1, start_timeout=0.2, max_examples=1)
    assert message.splitlines()[0] == (
        "Connector's init_task did not return within 0.2 s (a hook that blocks must give up "
        "on its own, or watch a deadline)"
    )
    assert "also found" not in message  # the engine's give-up is not the task's own error


def test_an_async_hook_that_raises_is_reported_with_the_hook_and_the_error() -> None:
    class Closer(AsyncTask):
        LOOPLESS = True

        async def on_stop(self) -> None:
            raise RuntimeError("cannot close the socket")

    first = failure_of(Closer).splitlines()[0]
    assert first.startswith(
        "Closer failed while stopping: its on_stop raised RuntimeError: cannot close the socket "
        f"(at {__file__}:"
    )
