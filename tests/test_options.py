"""Options: flags, prefixes, defaults, callable defaults, conflicts, --tasks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.errors import (
    HelpRequested,
    OptionConflict,
    OptionError,
    UnknownOption,
    UsageError,
)
from lifecycle.options import option
from lifecycle.service import Service
from lifecycle.task import Task


class Fetch_Task(Task):
    LOOPLESS = True
    INTERVAL = 2.0
    url = option(help="where to fetch from")
    max_tries = option(type=int, default=3)
    interval = option(type=float, default=lambda cls: cls.INTERVAL)
    verbose = option(action="store_true")
    mode = option(choices=["fast", "slow"], default="fast")


class Slow(Fetch_Task):
    INTERVAL = 9.0
    OPT_PREFIX = "slow"


class Needy(Task):
    LOOPLESS = True
    DEPS = (Fetch_Task,)


class Svc(Service):
    TASKS = (Needy, Slow)
    port = option(type=int, default=8080)


def test_task_flags_use_the_class_name_with_underscores_as_dashes() -> None:
    assert Fetch_Task.url.flag(Fetch_Task) == "--Fetch-Task-url"
    assert Fetch_Task.max_tries.flag(Fetch_Task) == "--Fetch-Task-max-tries"


def test_opt_prefix_replaces_the_class_name() -> None:
    assert Slow.interval.flag(Slow) == "--slow-interval"


def test_service_flags_have_no_prefix() -> None:
    assert Svc.port.flag(Svc) == "--port"
    assert Svc.stop_timeout.flag(Svc) == "--stop-timeout"


def test_defaults_apply_when_no_argv_was_given() -> None:
    task = Fetch_Task()
    assert task.url is None
    assert task.max_tries == 3
    assert task.verbose is False
    assert task.mode == "fast"
    assert Svc().port == 8080


def test_a_callable_default_receives_the_class_it_is_read_through() -> None:
    assert Fetch_Task().interval == 2.0
    assert Slow().interval == 9.0
    seen = []

    class Probe(Task):
        LOOPLESS = True
        x = option(default=lambda cls: seen.append(cls) or "v")

    class SubProbe(Probe):
        pass

    assert SubProbe().x == "v"
    assert seen == [SubProbe]


def test_parsed_values_reach_the_tasks_the_service_creates() -> None:
    service = Svc.from_argv(
        ["--port", "1", "--Fetch-Task-max-tries", "7", "--slow-interval", "0.5", "--slow-verbose"]
    )
    assert service.port == 1
    service.tasks.create(service)
    assert service.tasks.Fetch_Task.max_tries == 7
    assert service.tasks.Fetch_Task.interval == 2.0
    assert service.tasks.Slow.interval == 0.5
    assert service.tasks.Slow.verbose is True


def test_get_option_and_set_option_work_per_instance() -> None:
    one, two = Fetch_Task(), Fetch_Task()
    one.set_option("max-tries", 10)
    assert one.get_option("max_tries") == 10
    assert two.max_tries == 3
    two.url = "http://example.invalid"
    assert two.get_option("url") == "http://example.invalid"
    with pytest.raises(UnknownOption, match="max-tries"):
        one.get_option("nope")
    with pytest.raises(UnknownOption):
        one.set_option("nope", 1)


def test_a_bad_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="invalid int value"):
        Svc.from_argv(["--port", "eighty"])
    with pytest.raises(UsageError, match="invalid choice"):
        Svc.from_argv(["--Fetch-Task-mode", "medium"])
    with pytest.raises(UsageError, match="unrecognized"):
        Svc.from_argv(["--no-such-flag"])
    with pytest.raises(UsageError, match="stop-timeout"):
        Svc.from_argv(["--stop-timeout", "-1"])


def test_help_is_raised_not_printed() -> None:
    with pytest.raises(HelpRequested) as info:
        Svc.from_argv(["--help"])
    assert "--Fetch-Task-url" in info.value.text
    assert "--slow-interval" in info.value.text


def test_two_options_on_one_flag_conflict() -> None:
    class Other(Task):
        LOOPLESS = True
        OPT_PREFIX = "slow"
        interval = option()

    class Clash(Service):
        TASKS = (Slow, Other)

    with pytest.raises(OptionConflict) as info:
        Clash.from_argv([])
    assert info.value.flag == "--slow-interval"
    assert "Other.interval" in str(info.value)


def test_a_service_option_may_not_take_the_tasks_flag() -> None:
    class Bad(Service):
        tasks_ = option(name="tasks")

    with pytest.raises(OptionConflict, match="--tasks"):
        Bad.argument_parser()


def test_one_class_may_not_declare_one_name_twice() -> None:
    class Twice(Task):
        LOOPLESS = True
        a = option(name="x")
        b = option(name="x")

    with pytest.raises(OptionConflict, match="Twice"):
        Twice().get_option("x")


@pytest.mark.parametrize(
    "kwargs",
    [{"type": 5}, {"action": "bogus"}, {"name": "has space"}, {"name": "-x"}],
)
def test_a_malformed_declaration_is_an_option_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(OptionError):
        option(**kwargs)  # type: ignore[arg-type]


def test_tasks_with_no_name_lists_them() -> None:
    with pytest.raises(HelpRequested) as info:
        Svc.from_argv(["--tasks"])
    text = info.value.text
    assert "Needy  (requires Fetch_Task)" in text
    assert "Slow" in text


def test_tasks_selects_some_and_brings_their_deps() -> None:
    service = Svc.from_argv(["--tasks", "Needy"])
    assert [c.__name__ for c in service.tasks.task_classes] == ["Fetch_Task", "Needy"]
    assert Svc.from_argv([]).tasks.task_classes == Svc.available_tasks()


def test_an_unknown_task_name_is_a_usage_error_listing_the_available_ones() -> None:
    with pytest.raises(UsageError) as info:
        Svc.from_argv(["--tasks", "Needy", "Ghost"])
    assert "'Ghost'" in info.value.message
    assert "Fetch_Task, Needy, Slow" in info.value.message


names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@given(prefix=names, name=names, value=st.integers(-(10**6), 10**6))
def test_any_prefix_and_name_give_the_documented_flag_and_round_trip(
    prefix: str, name: str, value: int
) -> None:
    task = type(
        "T", (Task,), {"LOOPLESS": True, "OPT_PREFIX": prefix, "v": option(name=name, type=int)}
    )
    service_cls = type("S", (Service,), {"TASKS": (task,)})
    flag = f"--{prefix.replace('_', '-')}-{name.replace('_', '-')}"
    assert task.v.flag(task) == flag
    service = service_cls.from_argv([flag, str(value)])
    service.tasks.create(service)
    assert service.tasks.T.v == value
