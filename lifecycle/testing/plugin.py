"""The pytest plugin of `lifecycle` (entry point ``pytest11``: ``lifecycle``).

Fixtures:

* ``lifecycle_journal``: a fresh `Journal`, audited with `lifecycle.audit.check`. Records
  that break a rule fail the test itself (checked right after the test body, with
  ``partial=True``: a run may still be going); the end-of-run rules (every subject ended) are
  checked at teardown, after the fixtures that use the journal stopped what they started, and
  a violation there is a teardown error. Either way the message lists the audit's findings.
* ``running_service``: a factory, ``running_service(ServiceClass, options=None, *,
  journal=None, timeout=10.0)``: makes the service, starts it on a background thread (a
  service with async tasks is run there by `Service.run`, on an event loop of that thread's
  own), waits (at most ``timeout`` seconds, woken by its journal) until it is running and
  returns it. At teardown each service is asked to shut down and waited for (bounded by its
  stop deadline); the test errors if one did not end ``stopped``, if a thread started since
  it was made is still alive, if it abandoned coroutines that ignore cancellation, or if its
  journal does not audit clean.

Loaded in every pytest run of an environment where the package is installed, so importing it
is cheap: beyond the package itself (what ``import lifecycle`` costs), the modules a fixture
needs are imported when it is used, and hypothesis never.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lifecycle.journal import Journal
    from lifecycle.service import Service

__all__ = ["lifecycle_journal", "running_service"]

#: What a test item keeps: the violations already reported for its ``lifecycle_journal``.
_REPORTED = pytest.StashKey[set[str]]()
#: Seconds granted, after a service ended, to the threads it left to finish returning.
THREAD_GRACE = 1.0


@pytest.fixture
def lifecycle_journal(request: pytest.FixtureRequest) -> Iterator[Journal]:
    """A fresh `lifecycle.Journal`; the test fails if what it records does not audit clean."""
    from lifecycle.journal import Journal

    journal = Journal()
    yield journal
    reported = request.node.stash.get(_REPORTED, set())
    found = [v for v in _violations(journal, partial=False) if v not in reported]
    if found:
        pytest.fail(_audit_message("at the end of the test", found), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Audit a test's ``lifecycle_journal`` right after its body, so that an illegal record
    fails the test itself (not only its teardown)."""
    result = yield  # a test that raised raises here: its own failure comes first
    funcargs: Mapping[str, Any] = getattr(item, "funcargs", {})
    journal = funcargs.get("lifecycle_journal")
    if journal is not None:
        found = _violations(journal, partial=True)
        if found:
            item.stash[_REPORTED] = set(found)
            raise AssertionError(_audit_message("after the test body", found))
    return result


def _violations(journal: Journal, *, partial: bool) -> list[str]:
    from lifecycle.audit import check

    return [str(v) for v in check(journal, partial=partial)]


def _audit_message(when: str, found: list[str]) -> str:
    lines = "\n".join(f"  {v}" for v in found)
    return f"lifecycle_journal does not audit clean {when} ({len(found)} violations):\n{lines}"


@pytest.fixture
def running_service() -> Iterator[Callable[..., Service]]:
    """A factory: ``running_service(ServiceClass, options=None, *, journal=None,
    timeout=10.0)`` returns the service, started on a background thread and running.

    Raises `StateTimeout` if it is not running within ``timeout`` seconds, and the start's own
    error (an `InitError`, ...) if it failed to start. Each service made is shut down and
    checked at teardown (see the module docstring). A service with async tasks runs on its
    own loop: its tasks' state may be read from the test, and waited for with
    `wait_for_state`, but their coroutines run on that loop's thread.
    """
    started: list[_Started] = []

    def start(
        service_class: type[Service],
        options: Mapping[str, Any] | None = None,
        *,
        journal: Journal | None = None,
        timeout: float = 10.0,
    ) -> Service:
        from lifecycle.journal import Journal
        from lifecycle.service import Service

        if not (isinstance(service_class, type) and issubclass(service_class, Service)):
            raise TypeError(f"running_service needs a Service subclass, not {service_class!r}")
        entry = _Started(service_class(options, journal=journal or Journal()))
        started.append(entry)
        entry.start(timeout)
        return entry.service

    yield start
    problems = [p for entry in reversed(started) for p in entry.stop()]
    if problems:
        pytest.fail("running_service:\n" + "\n".join(f"  {p}" for p in problems), pytrace=False)


class _Started:
    """One service the factory made: its start thread, and what it must be checked for."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.before = set(threading.enumerate())
        self.error: BaseException | None = None  # why it failed to start (it was raised)
        self.raised: BaseException | None = None  # what `run` raised
        # A service with async tasks needs a loop: `run` makes one on this thread, runs the
        # service there until it has stopped, and closes it (no signal handlers off the main
        # thread). A thread service is only started here: the stop is the teardown's `wait`.
        self.served = service.has_async_tasks
        self.thread = threading.Thread(
            target=self._run if self.served else self._start,
            name=f"running_service:{service.name}",
            daemon=True,
        )

    def _start(self) -> None:
        try:
            self.service.start()
        except BaseException as exc:  # raised in the test's thread by `start`
            self.error = exc

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:  # raised by `start`, or reported at teardown
            self.raised = exc

    def start_error(self) -> BaseException | None:
        """What the start raised: under `run`, which reports a failed start by its exit code,
        the error the service recorded (the `InitError`, ...)."""
        if not self.served:
            return self.error
        errors = self.service.errors
        return self.raised or (errors[0] if errors else self.service.failure)

    def start(self, timeout: float) -> None:
        from lifecycle.spec import ServiceState
        from lifecycle.testing.waiting import StateUnreachable, wait_for_state

        self.thread.start()
        try:
            wait_for_state(self.service, ServiceState.RUNNING, timeout)
            return
        except StateUnreachable as exc:
            unreachable = exc
        self.thread.join(timeout)  # it failed to start: raise the start's own error
        self.error = self.start_error()  # the service is not checked for ending failed
        raise self.error if self.error is not None else unreachable

    def stop(self) -> list[str]:
        """Shut the service down, wait for it, and say what is wrong (empty: nothing)."""
        from lifecycle.spec import ServiceState

        service = self.service
        name = service.name
        service.shutdown("running_service: the test is over")
        if self.served:
            # `run` carries the stop out on its thread, bounded by the stop deadline and
            # `serve`'s short graces; the loop is closed when it returns.
            self.thread.join(float(service.stop_timeout) + 2.0 + THREAD_GRACE)
        elif service.state != ServiceState.NEW:
            service.wait()  # bounded by the service's stop deadline
        self.thread.join(THREAD_GRACE)  # it returns once the service ended, or it hangs
        problems: list[str] = []
        if self.thread.is_alive():
            hook = "run" if self.served else "start"
            problems.append(f"service {name!r}: its {hook}() has not returned (a hook hangs)")
        if self.raised is not None and self.raised is not self.error:
            problems.append(f"service {name!r}: its run() raised {self.raised!r}")
        if service.state != ServiceState.STOPPED and self.error is None:
            problems.append(
                f"service {name!r} ended {service.state}, not stopped: {service.failure!r}"
            )
        deadline = time.monotonic() + THREAD_GRACE
        left = [t for t in threading.enumerate() if t not in self.before and t is not self.thread]
        for thread in left:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in left if t.is_alive()]
        if alive:
            problems.append(f"service {name!r} left threads running: {', '.join(alive)}")
        if service.abandoned:
            coroutines = ", ".join(sorted(run.get_name() for run in service.abandoned))
            problems.append(
                f"service {name!r} abandoned coroutines that ignore cancellation: {coroutines}"
            )
        problems += [f"service {name!r}: journal: {v}" for v in _violations(service.journal,
                                                                              partial=False)]
        return problems
