"""The restart policy: its values, validated where they are declared and parsed; the backoff;
the limit; what `lifecycle plan` says of it."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle import Service, Task
from lifecycle.cli import main
from lifecycle.errors import InvalidTask, UsageError
from lifecycle.plan import plan
from lifecycle.restart import RestartHistory, RestartPolicy, parse_limit, seconds_ns
from tests import restart_services as rs


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ("RESTART", "sometimes", "RESTART must be one of 'never', 'on-failure', 'always'"),
        ("RESTART", None, "RESTART must be one of"),
        ("RESTART_DELAY", -1, "RESTART_DELAY must be a finite number of seconds >= 0"),
        ("RESTART_DELAY", float("nan"), "RESTART_DELAY must be a finite number"),
        ("RESTART_DELAY", "1", "RESTART_DELAY must be a finite number"),
        ("RESTART_DELAY_MAX", float("inf"), "RESTART_DELAY_MAX must be a finite number"),
        ("RESTART_DELAY_MAX", 0.01, "RESTART_DELAY_MAX must be >= RESTART_DELAY"),
        ("RESTART_LIMIT", 5, "RESTART_LIMIT must be a pair (burst, seconds)"),
        ("RESTART_LIMIT", (1, 2, 3), "RESTART_LIMIT must be a pair"),
        ("RESTART_LIMIT", (-1, 10), "burst an int >= 0"),
        ("RESTART_LIMIT", (True, 10), "burst an int >= 0"),
        ("RESTART_LIMIT", (3, 0), "seconds a finite number > 0"),
    ],
)
def test_a_bad_restart_attribute_is_refused_when_the_class_is_made(
    attribute: str, value: object, message: str
) -> None:
    with pytest.raises(InvalidTask, match=message.replace("(", r"\(").replace(")", r"\)")):
        type("Bad", (Task,), {attribute: value, "RESTART_DELAY": 0.1, **{attribute: value}})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--UsesIt-restart", "sometimes"], "argument --UsesIt-restart: invalid choice"),
        (["--UsesIt-restart-delay", "-1"], "argument --UsesIt-restart-delay: must be >= 0"),
        (["--UsesIt-restart-delay-max", "nan"], "must be a finite number"),
        (["--UsesIt-restart-limit", "3"], "expected BURST/SECONDS"),
        (["--UsesIt-restart-limit", "3/0"], "seconds a finite number > 0"),
    ],
)
def test_a_bad_restart_flag_is_a_usage_error_at_parse_time(argv: list[str], message: str) -> None:
    class Svc(Service):
        TASKS = (rs.UsesIt,)

    with pytest.raises(UsageError, match=message):
        Svc.from_argv(argv)


def test_two_tasks_sharing_a_prefix_share_the_inherited_restart_flags() -> None:
    class One(Task):
        LOOPLESS = True
        OPT_PREFIX = "same"

    class Two(Task):
        LOOPLESS = True
        OPT_PREFIX = "same"
        RESTART = "always"

    class Svc(Service):
        TASKS = (One, Two)

    service = Svc.from_argv([])
    service.tasks.create(service)
    assert service.tasks.require("One").current_restart_policy().mode == "never"
    assert service.tasks.require("Two").current_restart_policy().mode == "always"
    service = Svc.from_argv(["--same-restart", "on-failure"])
    service.tasks.create(service)
    assert {t.current_restart_policy().mode for t in service.tasks} == {"on-failure"}


def test_parse_limit_reads_burst_slash_seconds() -> None:
    assert parse_limit("3/60") == (3, 60.0)
    assert parse_limit("0/0.5") == (0, 0.5)


@given(
    delay=st.floats(0, 5),
    extra=st.floats(0, 100),
    attempt=st.integers(0, 10_000),
    draw=st.floats(0, 1, exclude_max=True),
)
def test_the_backoff_never_undercuts_the_first_delay_nor_exceeds_the_cap(
    delay: float, extra: float, attempt: int, draw: float
) -> None:
    policy = RestartPolicy("on-failure", delay, delay + extra)
    cap = policy.backoff_cap(attempt)
    assert delay <= cap <= policy.delay_max
    assert delay <= policy.backoff(attempt, lambda: draw) <= cap
    # doubling per attempt, up to the maximum
    following = policy.backoff_cap(attempt + 1)
    assert following == policy.delay_max or following == cap * 2


def test_the_first_backoff_is_the_first_delay() -> None:
    policy = RestartPolicy("always", 0.25, 10.0)
    assert policy.backoff(0, lambda: 0.999) == 0.25
    assert policy.backoff_cap(1) == 0.5 and policy.backoff_cap(3) == 2.0
    assert policy.backoff_cap(100) == 10.0


def test_the_history_counts_restarts_within_the_window_only() -> None:
    policy = RestartPolicy("always", limit=(2, 1.0))
    history = RestartHistory()
    history.add(0)
    history.add(seconds_ns(0.5))
    assert history.recent(policy, seconds_ns(0.9)) == 2
    assert history.recent(policy, seconds_ns(1.2)) == 1  # the first left the window
    assert history.recent(policy, seconds_ns(1.5)) == 0


def test_a_policy_round_trips_through_the_header_form() -> None:
    policy = RestartPolicy("on-failure", 0.5, 4.0, (3, 60))
    assert RestartPolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    with pytest.raises(ValueError, match="no 'limit'"):
        RestartPolicy.from_dict({"policy": "always", "delay": 0, "delay_max": 1})


def test_plan_says_each_policy_and_what_a_restart_takes_down_and_brings_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = plan(rs.RestartsTwice)
    crashing = next(t for t in result.tasks if t.name == "CrashesTwice")
    assert crashing.restart.mode == "on-failure"
    assert crashing.restart_takes_down == ("UsesIt",)  # WANTS never propagates
    doc = crashing.to_dict()["restart"]
    assert doc["policy"] == "on-failure" and doc["takes_down"] == doc["brings_back"] == ["UsesIt"]
    assert "restart" not in next(t for t in result.tasks if t.name == "UsesIt").to_dict()
    assert main(["plan", "tests.restart_services:RestartsTwice"]) == 0
    out = capsys.readouterr().out
    assert (
        "  CrashesTwice: on-failure, backoff 0.001-0.004 s, at most 5 in 10 s; "
        "takes down UsesIt, brings back UsesIt" in out
    )
    assert "  UsesIt: never" in out


def test_a_restart_takes_down_the_chain_last_first_and_brings_it_back_in_order() -> None:
    class Base(Task):
        LOOPLESS = True
        RESTART = "always"

    class Middle(Task):
        LOOPLESS = True
        DEPS = (Base,)

    class Top(Task):
        LOOPLESS = True
        DEPS = (Middle,)

    base = next(t for t in plan(Top).tasks if t.name == "Base")
    assert base.restart_takes_down == ("Top", "Middle")
    assert base.restart_brings_back == ("Middle", "Top")
