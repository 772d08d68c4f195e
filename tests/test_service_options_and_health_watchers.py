"""`Service`'s command line (its parser, ``--tasks`` listing, `from_argv`, `main`,
`stop_bound`, `get_option`) and its task-health watchers, pinned through the public API."""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import pytest

from lifecycle.errors import HelpRequested, OptionError, UnknownOption, UsageError
from lifecycle.journal import Journal
from lifecycle.service import LATE_STOP_GRACE, Service
from lifecycle.task import Task

WAIT = 30.0


class Database(Task):
    LOOPLESS = True


class Web(Task):
    DEPS = (Database,)

    def run_loop(self) -> None:
        self.stop_event.wait()


class Shop(Service):
    """Sells things.

    The rest of this docstring is not the description.
    """

    TASKS = (Web,)


# -- options ---------------------------------------------------------------------------------


def test_get_option_reads_the_services_own_option_and_names_an_unknown_one() -> None:
    assert Shop({"stop_timeout": 2.5}).get_option("stop-timeout") == 2.5
    assert Shop().get_option("stop-timeout") == 30.0
    with pytest.raises(UnknownOption) as raised:
        Shop().get_option("no-such-option")
    assert raised.value.name == "no-such-option"


@pytest.mark.parametrize("bad", [True, "5", -1.0, math.inf, math.nan])
def test_stop_bound_refuses_a_timeout_that_is_not_seconds_at_least_zero(bad: Any) -> None:
    with pytest.raises(OptionError) as raised:
        Shop.stop_bound(bad)
    assert raised.value.option == "--stop-timeout"
    assert repr(bad) in raised.value.problem


def test_stop_bound_of_a_thread_service_is_the_timeout_plus_one_grace() -> None:
    assert Shop.stop_bound(0) == LATE_STOP_GRACE
    assert Shop.stop_bound(7) == 7 + LATE_STOP_GRACE


# -- the command line ------------------------------------------------------------------------


def test_the_parser_takes_the_program_name_and_the_first_paragraph_of_the_docstring() -> None:
    parser = Shop.argument_parser("shopd")
    assert parser.prog == "shopd"
    assert parser.description == "Sells things."
    text = parser.format_help()
    assert "--tasks [NAME ...]" in text
    assert "run only these tasks (and what they require)" in text


def test_a_service_without_a_docstring_has_no_description() -> None:
    class Bare(Service):
        TASKS = (Web,)

    assert Bare.argument_parser().description is None


def test_the_task_listing_names_each_task_and_only_the_requirements_it_has() -> None:
    assert Shop.task_listing() == "tasks of Shop:\n  Database\n  Web  (requires Database)"


def test_from_argv_keeps_the_journal_given_and_reads_sys_argv_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    journal = Journal()
    assert Shop.from_argv(["--stop-timeout", "4"], journal=journal).journal is journal
    monkeypatch.setattr(sys, "argv", ["shopd", "--stop-timeout", "3"])
    assert Shop.from_argv().stop_timeout == 3.0


def test_from_argv_usage_errors_carry_the_problem_and_the_usage_of_the_program() -> None:
    with pytest.raises(UsageError) as unknown:
        Shop.from_argv(["--tasks", "Nope"], prog="shopd")
    assert "unknown task 'Nope'" in unknown.value.message
    assert "Database" in unknown.value.message and "Web" in unknown.value.message
    assert unknown.value.usage.startswith("usage: shopd")

    class Strict(Service):
        TASKS = (Web,)

    with pytest.raises(UsageError) as bad:
        Strict.from_argv(["--stop-timeout", "inf"], prog="strictd")
    assert "--stop-timeout" in bad.value.message and "inf" in bad.value.message
    assert bad.value.usage.startswith("usage: strictd")


def test_tasks_with_no_name_asks_for_the_listing() -> None:
    with pytest.raises(HelpRequested) as raised:
        Shop.from_argv(["--tasks"])
    assert raised.value.text == Shop.task_listing()


def test_main_runs_the_command_line_it_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    assert Shop.main(["--help"]) == 0
    assert "Sells things." in capsys.readouterr().out
    assert Shop.main(["--no-such-flag"]) == 2
    assert "--no-such-flag" in capsys.readouterr().err


# -- health watchers -------------------------------------------------------------------------


class Beating(Task):
    def run_loop(self) -> None:
        self.stop_event.wait()


class Beats(Service):
    TASKS = (Beating,)


def test_health_watchers_hear_the_task_and_what_it_said_until_unwatched() -> None:
    service = Beats()
    service.start()
    try:
        first: list[tuple[Any, str]] = []
        second: list[tuple[Any, str]] = []
        unwatch_first = service.watch_task_health(lambda t, what: first.append((t, what)))
        service.watch_task_health(lambda t, what: second.append((t, what)))
        (task,) = service.tasks.tasks
        task.heartbeat()
        unwatch_first()
        task.set_ready(False, "warming up")
        assert first == [(task, "heartbeat")]
        assert second == [(task, "heartbeat"), (task, "ready")]
    finally:
        service.shutdown()
        assert service.wait(WAIT)


def test_a_health_watcher_that_raises_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(task: Task, what: str) -> None:
        raise RuntimeError("watcher bug")

    heard: list[str] = []
    service = Beats()
    service.start()
    try:
        service.watch_task_health(broken)
        service.watch_task_health(lambda t, what: heard.append(what))
        caplog.set_level(logging.ERROR, logger="lifecycle.service")
        (task,) = service.tasks.tasks
        task.heartbeat()
    finally:
        service.shutdown()
        assert service.wait(WAIT)
    assert heard == ["heartbeat"]
    (record,) = [r for r in caplog.records if r.name == "lifecycle.service"]
    assert repr(broken) in record.getMessage() and "raised" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == "watcher bug"


def test_still_running_names_the_started_tasks_that_have_not_ended() -> None:
    service = Shop()
    assert service.still_running() == []
    service.start()
    try:
        # Database is LOOPLESS, yet it is running until it is stopped.
        assert service.still_running() == ["Database", "Web"]
    finally:
        service.shutdown()
        assert service.wait(WAIT)
    assert service.still_running() == []
