"""The pytest plugin, run the way users run it: inside pytest's own `pytester`.

The plugin is registered through the ``pytest11`` entry point, so the inner runs load it as
any project's test run would: nothing here names it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parent.parent / "README.md"

SERVICES = '''
import threading
from lifecycle import Service, Task

class Waiter(Task):
    def run_loop(self):
        self.stop_event.wait()

class App(Service):
    TASKS = (Waiter,)

class Broken(Task):
    LOOPLESS = True
    def init_task(self):
        raise RuntimeError("no database")

class BrokenApp(Service):
    TASKS = (Broken,)

NEVER = threading.Event()

class Leaky(Task):
    LOOPLESS = True
    def init_task(self):
        threading.Thread(target=NEVER.wait, args=(30,), name="leaked", daemon=True).start()

class LeakyApp(Service):
    TASKS = (Leaky,)

import asyncio
from lifecycle.aio import AsyncTask

class Pump(AsyncTask):
    DEPS = (Waiter,)
    async def run_loop(self):
        await self.stop_event.wait()

class AsyncApp(Service):
    TASKS = (Pump,)

class BrokenPump(AsyncTask):
    LOOPLESS = True
    async def init_task(self):
        raise RuntimeError("no broker")

class BrokenAsyncApp(Service):
    TASKS = (BrokenPump,)

class Stubborn(AsyncTask):
    STOP_GRACE = 0.05
    async def run_loop(self):
        for _ in range(200):  # ignores stop_event and swallows its cancellation for a while
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                pass

class StubbornApp(Service):
    TASKS = (Stubborn,)
'''


@pytest.fixture
def services(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(apps=SERVICES)
    pytester.syspathinsert()
    return pytester


def test_the_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [e for e in entry_points(group="pytest11") if e.name == "lifecycle"]
    assert found.value == "lifecycle.testing.plugin"


def test_importing_the_plugin_imports_neither_hypothesis_nor_the_kit() -> None:
    code = (
        "import sys, lifecycle.testing.plugin, lifecycle.testing; "
        "print(sorted(m for m in ('hypothesis', 'lifecycle.testing.tasks') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]"


def test_a_journal_with_an_illegal_record_fails_the_test_and_a_clean_one_passes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from lifecycle import Tasks

        def test_clean(lifecycle_journal):
            tasks = Tasks(journal=lifecycle_journal)
            tasks.create()
            tasks.init()
            tasks.stop()

        def test_illegal(lifecycle_journal):
            # A record the task table has no edge for: registered straight to running.
            lifecycle_journal.record("task", "Ghost", "start", "registered", "running", True)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_illegal*",
            "*lifecycle_journal does not audit clean after the test body (1 violations):*",
            "*seq 1: illegal-edge: Ghost: *",
        ]
    )
    assert "test_clean FAILED" not in result.stdout.str()


def test_a_subject_left_unfinished_fails_the_teardown_with_the_audit_findings(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from lifecycle import Tasks

        def test_leaves_it_running(lifecycle_journal):
            Tasks(journal=lifecycle_journal).create()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*lifecycle_journal does not audit clean at the end of the test*", "*not-terminal*"]
    )


def test_running_service_starts_the_service_and_stops_it_cleanly(services: pytest.Pytester) -> None:
    services.makepyfile(
        """
        from lifecycle import ServiceState
        from apps import App

        def test_it(running_service):
            app = running_service(App)
            assert app.state == ServiceState.RUNNING
            assert app.tasks.Waiter.running
            pytest_app.append(app)

        pytest_app = []

        def test_afterwards():
            (app,) = pytest_app
            assert app.state == ServiceState.STOPPED and app.exit_code == 0
            assert not any(t.is_alive() for t in app.tasks.Waiter.threads)
        """
    )
    result = services.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_running_service_raises_the_start_error_of_a_service_that_cannot_start(
    services: pytest.Pytester,
) -> None:
    services.makepyfile(
        """
        import pytest
        from lifecycle import InitError
        from apps import BrokenApp

        def test_it(running_service):
            with pytest.raises(InitError) as info:
                running_service(BrokenApp)
            assert "no database" in str(info.value.__cause__)
        """
    )
    result = services.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_running_service_fails_the_teardown_of_a_service_that_leaves_a_thread(
    services: pytest.Pytester,
) -> None:
    services.makepyfile(
        """
        from apps import NEVER, LeakyApp

        def test_it(running_service):
            running_service(LeakyApp)

        def teardown_module():
            NEVER.set()
        """
    )
    result = services.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*service 'LeakyApp' left threads running: leaked*"])


def test_running_service_runs_a_service_with_async_tasks_on_a_loop_and_stops_it_cleanly(
    services: pytest.Pytester,
) -> None:
    services.makepyfile(
        """
        import threading
        from lifecycle import ServiceState
        from lifecycle.testing import wait_for_state
        from apps import AsyncApp

        def test_it(running_service):
            before = set(threading.enumerate())
            app = running_service(AsyncApp)
            assert app.state == ServiceState.RUNNING
            assert app.tasks.Pump.running and app.tasks.Waiter.running
            assert app.tasks.Pump.loop is not None and app.tasks.Pump.loop.is_running()
            assert wait_for_state(app.tasks.Pump, "running", 5) == "running"
            pytest_app.append((app, set(threading.enumerate()) - before))

        pytest_app = []

        def test_afterwards():
            ((app, started),) = pytest_app
            assert app.state == ServiceState.STOPPED and app.exit_code == 0
            assert app.tasks.Pump.loop.is_closed()
            assert started and not any(t.is_alive() for t in started)
        """
    )
    result = services.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_running_service_raises_the_start_error_of_an_async_service_that_cannot_start(
    services: pytest.Pytester,
) -> None:
    services.makepyfile(
        """
        import pytest
        from lifecycle import InitError
        from apps import BrokenAsyncApp

        def test_it(running_service):
            with pytest.raises(InitError) as info:
                running_service(BrokenAsyncApp)
            assert "no broker" in str(info.value.__cause__)
        """
    )
    result = services.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_running_service_fails_the_teardown_of_an_async_service_that_abandons_a_coroutine(
    services: pytest.Pytester,
) -> None:
    services.makepyfile(
        """
        from apps import StubbornApp

        def test_it(running_service):
            running_service(StubbornApp, {"stop_timeout": 0.2})
        """
    )
    result = services.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*service 'StubbornApp' ended failed, not stopped*",
            "*service 'StubbornApp' abandoned coroutines that ignore cancellation: "
            "Stubborn.run_loop*",
        ]
    )


def test_the_readme_running_service_example_passes(pytester: pytest.Pytester) -> None:
    text = README.read_text(encoding="utf-8")
    app = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    section = text.split("\n## Testing your tasks\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    example = [b for b in blocks if "running_service" in b]
    assert example, "the README shows running_service"
    pytester.makepyfile(test_readme_plugin=app.split('if __name__ == "__main__":')[0] + example[0])
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
