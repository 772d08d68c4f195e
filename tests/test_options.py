"""Options: flags, prefixes, defaults, callable defaults, conflicts, --tasks."""

from __future__ import annotations

import argparse
import gc
import math
import weakref

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
from lifecycle.options import gives_any, option
from lifecycle.service import Service
from lifecycle.task import Task
from tests.services import Kinds


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


# -- what a valid value is ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--Tick-interval", "0"),
        ("--Tick-interval", "-1"),
        ("--Tick-interval", "nan"),
        ("--Tick-interval", "inf"),
        ("--Tick-interval", "-inf"),
        ("--Inbox-workers", "0"),
        ("--Inbox-workers", "-2"),
        ("--Inbox-max-items", "-1"),
        ("--stop-timeout", "-1"),
        ("--stop-timeout", "nan"),
        ("--stop-timeout", "inf"),
    ],
)
def test_an_out_of_range_value_is_a_usage_error_naming_the_flag_at_parse_time(
    flag: str, value: str
) -> None:
    with pytest.raises(UsageError) as info:
        Kinds.argument_parser().parse_args([f"{flag}={value}"])
    assert info.value.message.startswith(f"argument {flag}: must be ")
    assert value.lstrip("-") in info.value.message


@given(st.floats())
def test_an_interval_parses_exactly_when_it_is_finite_and_positive(value: float) -> None:
    parser = Kinds.argument_parser()
    if math.isfinite(value) and value > 0:
        assert parser.parse_args([f"--Tick-interval={value!r}"]).Tick_interval == value
    else:
        with pytest.raises(UsageError, match="--Tick-interval"):
            parser.parse_args([f"--Tick-interval={value!r}"])


@given(st.integers(-5, 5))
def test_worker_counts_parse_exactly_when_at_least_one(value: int) -> None:
    parser = Kinds.argument_parser()
    if value >= 1:
        assert parser.parse_args([f"--Inbox-workers={value}"]).Inbox_workers == value
    else:
        with pytest.raises(UsageError, match="argument --Inbox-workers: must be >= 1"):
            parser.parse_args([f"--Inbox-workers={value}"])


def test_bounds_finiteness_and_check_say_what_is_wrong() -> None:
    between = option(type=int, gt=0, le=10)
    assert between.bounds == "> 0 and <= 10"
    assert between.problem(5) is None and between.problem(10) is None
    assert between.problem(0) == "must be > 0 and <= 10, not 0"
    assert between.problem(11) == "must be > 0 and <= 10, not 11"
    assert between.problem("x") == "must be > 0 and <= 10, not 'x'"
    below = option(type=float, lt=1.5, ge=-1)
    assert below.problem(-1.0) is None and below.problem(1.5) == "must be >= -1 and < 1.5, not 1.5"
    plain = option(type=float)
    assert plain.problem(1e308) is None
    assert plain.problem(math.nan) == "must be a finite number, not nan"
    assert plain.problem(-math.inf) == "must be a finite number, not -inf"
    assert option(type=float, finite=False, ge=0).problem(math.inf) is None
    even = option(type=int, check=lambda v: None if v % 2 == 0 else "must be even")
    assert even.problem(4) is None and even.problem(3) == "must be even"

    def no_dots(value: str) -> None:
        if "." in value:
            raise ValueError(f"must not contain a dot, not {value!r}")

    assert option(check=no_dots).problem("a.b") == "must not contain a dot, not 'a.b'"


def test_a_refused_value_from_check_is_a_usage_error_naming_the_flag() -> None:
    class Named(Task):
        LOOPLESS = True
        label = option(check=lambda v: None if v.isidentifier() else "must be an identifier")

    class Holder(Service):
        TASKS = (Named,)

    with pytest.raises(UsageError, match="argument --Named-label: must be an identifier"):
        Holder.from_argv(["--Named-label", "two words"])
    assert Holder.from_argv(["--Named-label", "ok"]).options["Named_label"] == "ok"


def test_unconvertible_text_keeps_the_type_named_in_the_message() -> None:
    with pytest.raises(UsageError, match="argument --Tick-interval: invalid float value: 'soon'"):
        Kinds.argument_parser().parse_args(["--Tick-interval", "soon"])


def test_every_value_of_a_list_option_is_checked() -> None:
    class Ports(Service):
        ports = option(type=int, nargs="+", ge=1, le=65535)

    assert Ports.from_argv(["--ports", "80", "443"]).ports == [80, 443]
    with pytest.raises(UsageError, match="argument --ports: must be >= 1 and <= 65535, not 0"):
        Ports.from_argv(["--ports", "80", "0"])


def test_a_default_that_breaks_its_own_rules_is_an_option_error_naming_the_flag() -> None:
    class Lazy(Task):
        LOOPLESS = True
        retries = option(type=int, ge=1, default=0)

    class Holder(Service):
        TASKS = (Lazy,)

    with pytest.raises(OptionError, match=r"--Lazy-retries: the default at .*Lazy\.retries must"):
        Holder.argument_parser()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gt": "0"}, "gt must be a number"),
        ({"le": math.nan}, "le must be a number"),
        ({"ge": True}, "ge must be a number"),
        ({"gt": 0, "ge": 0}, "give gt or ge, not both"),
        ({"lt": 1, "le": 1}, "give lt or le, not both"),
        ({"check": "positive"}, "check must be callable"),
        ({"action": "store_true", "check": bool}, "takes no value"),
        ({"action": "count", "ge": 0}, "takes no value"),
    ],
)
def test_malformed_value_rules_are_option_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        option(**kwargs)  # type: ignore[arg-type]


def test_reading_options_keeps_no_class_made_on_the_fly_alive() -> None:
    made = type("OnTheFly", (Task,), {"LOOPLESS": True})
    instance = made()
    instance.get_option("restart")  # reads and remembers the class's options and their keys
    gone = weakref.ref(made)
    del made, instance
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("as_namespace", [False, True])
def test_gives_any_says_whether_a_source_sets_one_of_the_options(as_namespace: bool) -> None:
    class Probe(Task):
        LOOPLESS = True

    def source(values: dict[str, object]) -> object:
        return argparse.Namespace(**values) if as_namespace else values

    names = ("restart", "restart-delay")
    assert not gives_any(source({}), Probe, names)
    assert not gives_any(source({"Probe_restart": None, "Other_restart": "always"}), Probe, names)
    assert gives_any(source({"Probe_restart_delay": 0.5}), Probe, names)
    with pytest.raises(UnknownOption):
        gives_any(source({}), Probe, ("no-such-option",))
