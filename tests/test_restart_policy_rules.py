"""The restart policy's rules at their edges: which values each field refuses, the backoff's
doubling and cap, which endings restart under each mode, the limit's window boundary, and the
header form's errors."""

from __future__ import annotations

import argparse
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.restart import (
    DEFAULT_DELAY,
    DEFAULT_DELAY_MAX,
    DEFAULT_LIMIT,
    RestartHistory,
    RestartPolicy,
    delay_problem,
    limit_problem,
    mode_problem,
    parse_limit,
    policy_of,
    seconds_ns,
)


@pytest.mark.parametrize("mode", ["never", "on-failure", "always"])
def test_each_restart_mode_is_accepted(mode: str) -> None:
    assert mode_problem(mode) is None


@pytest.mark.parametrize("mode", ["sometimes", "", "Always", None, 1, ("always",)])
def test_anything_but_a_restart_mode_is_refused_naming_the_value(mode: object) -> None:
    problem = mode_problem(mode)
    assert problem is not None and repr(mode) in problem


@pytest.mark.parametrize("delay", [0, 0.0, 0.5, 7])
def test_a_finite_delay_at_least_zero_is_accepted(delay: float) -> None:
    assert delay_problem(delay) is None


@pytest.mark.parametrize("delay", [True, False, "1", None, -0.001, math.inf, -math.inf, math.nan])
def test_a_delay_that_is_not_finite_seconds_at_least_zero_is_refused(delay: object) -> None:
    problem = delay_problem(delay)
    assert problem is not None and repr(delay) in problem


@pytest.mark.parametrize("limit", [(0, 1), (5, 10.0), [3, 0.5], (1, 1e9)])
def test_a_pair_of_burst_and_positive_seconds_is_a_limit(limit: object) -> None:
    assert limit_problem(limit) is None


@pytest.mark.parametrize(
    ("limit", "says"),
    [
        (5, "a pair"),
        ("ab", "a pair"),
        ((1,), "a pair"),
        ((1, 2, 3), "a pair"),
        ((-1, 10), "burst an int >= 0"),
        ((1.0, 10), "burst an int >= 0"),
        ((True, 10), "burst an int >= 0"),
        ((3, 0), "seconds a finite number > 0"),
        ((3, -1), "seconds a finite number > 0"),
        ((3, math.inf), "seconds a finite number > 0"),
        ((3, math.nan), "seconds a finite number > 0"),
        ((3, True), "seconds a finite number > 0"),
        ((3, "10"), "seconds a finite number > 0"),
    ],
)
def test_anything_else_is_refused_as_a_limit_saying_which_part(limit: object, says: str) -> None:
    problem = limit_problem(limit)
    assert problem is not None and says in problem and repr(limit) in problem


@pytest.mark.parametrize("text", ["3", "", "x/1", "1/y", "1.5/2", "/", "-1/5", "1/0", "1/inf"])
def test_parse_limit_refuses_what_is_not_burst_slash_positive_seconds(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_limit(text)


def test_parse_limit_says_the_expected_form_for_text_it_cannot_read() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected BURST/SECONDS") as raised:
        parse_limit("3")
    assert "'3'" in str(raised.value)


def test_the_default_policy_never_restarts_and_carries_systemds_defaults() -> None:
    policy = RestartPolicy()
    assert (policy.mode, policy.delay) == ("never", DEFAULT_DELAY)
    assert policy.delay_max == DEFAULT_DELAY_MAX
    assert (policy.burst, policy.window) == DEFAULT_LIMIT
    assert isinstance(policy.window, float)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"mode": "sometimes"}, "RESTART "),
        ({"delay": -1}, "RESTART_DELAY "),
        ({"delay_max": math.inf}, "RESTART_DELAY_MAX "),
        ({"delay": 2.0, "delay_max": 1.0}, "RESTART_DELAY_MAX must be >= RESTART_DELAY (2.0)"),
    ],
)
def test_a_policy_refuses_a_bad_field_naming_it(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=r"^" + named.replace("(", r"\(").replace(")", r"\)")):
        RestartPolicy(**fields)  # type: ignore[arg-type]


def test_checked_names_a_bad_limit_first() -> None:
    with pytest.raises(ValueError, match=r"^RESTART_LIMIT must be a pair"):
        RestartPolicy.checked("sometimes", -1, -1, 5)


def test_a_delay_max_equal_to_the_delay_is_accepted() -> None:
    assert RestartPolicy(delay=1.0, delay_max=1.0).backoff_cap(5) == 1.0


@pytest.mark.parametrize(
    ("mode", "failed", "restarts"),
    [
        ("never", True, False),
        ("never", False, False),
        ("on-failure", True, True),
        ("on-failure", False, False),
        ("always", True, True),
        ("always", False, True),
    ],
)
def test_which_endings_restart_under_each_mode(mode: str, failed: bool, restarts: bool) -> None:
    assert RestartPolicy(mode=mode).restarts_after(failed) is restarts


def test_the_backoff_cap_doubles_per_recent_restart_up_to_the_maximum() -> None:
    policy = RestartPolicy(delay=0.1, delay_max=1.0)
    caps = [policy.backoff_cap(n) for n in range(6)]
    assert caps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.backoff_cap(10**9) == 1.0  # no overflow however many restarts
    assert RestartPolicy(delay=0.0, delay_max=5.0).backoff_cap(3) == 0.0


def test_the_backoff_spans_from_the_delay_to_the_cap_as_the_draw_goes() -> None:
    policy = RestartPolicy(delay=0.5, delay_max=10.0)
    assert policy.backoff(2, lambda: 0.0) == 0.5
    assert policy.backoff(2, lambda: 0.5) == pytest.approx(0.5 + (2.0 - 0.5) / 2)
    assert policy.backoff(2, lambda: 0.999) < 2.0


@pytest.mark.parametrize("delay", [5e-324, 1e-308, 1e-300])
def test_a_tiny_first_delay_still_has_a_backoff_up_to_the_maximum(delay: float) -> None:
    # The ratio of the maximum to such a delay overflows a float: the cap must not.
    policy = RestartPolicy(delay=delay, delay_max=2.0)
    assert policy.backoff_cap(0) == delay
    assert policy.backoff_cap(1) == 2 * delay
    assert policy.backoff_cap(5000) == 2.0
    assert delay <= policy.backoff(3, lambda: 0.5) <= 2.0


def test_the_backoff_cap_stays_at_a_maximum_near_the_largest_float() -> None:
    policy = RestartPolicy(delay=1.0, delay_max=1.5e308)
    assert policy.backoff_cap(10**6) == 1.5e308


@given(
    st.floats(0.0, 100.0),
    st.floats(0.0, 100.0),
    st.integers(0, 200),
    st.floats(0.0, 1.0, exclude_max=True),
)
def test_every_backoff_lies_between_the_delay_and_the_maximum(
    a: float, b: float, attempt: int, draw: float
) -> None:
    policy = RestartPolicy(delay=min(a, b), delay_max=max(a, b))
    assert policy.delay <= policy.backoff(attempt, lambda: draw) <= policy.delay_max


def test_the_header_form_names_what_is_missing_or_wrong() -> None:
    with pytest.raises(ValueError, match="expected a restart policy mapping"):
        RestartPolicy.from_dict(["never"])
    form = RestartPolicy().to_dict()
    del form["delay_max"]
    with pytest.raises(ValueError, match="the restart policy has no 'delay_max'"):
        RestartPolicy.from_dict(form)


def test_policy_of_accepts_a_list_as_the_limit_and_refuses_bad_values() -> None:
    assert policy_of("always", 0.1, 1.0, [3, 60]) == RestartPolicy("always", 0.1, 1.0, (3, 60.0))
    with pytest.raises(ValueError, match="RESTART_LIMIT"):
        policy_of("always", 0.1, 1.0, [3])
    with pytest.raises(ValueError, match="RESTART "):
        policy_of("sometimes", 0.1, 1.0, (3, 60))


def test_a_restart_exactly_one_window_ago_no_longer_counts() -> None:
    policy = RestartPolicy(limit=(3, 1.0))
    history = RestartHistory()
    history.add(0)
    history.add(10)
    assert history.recent(policy, seconds_ns(1.0) - 1) == 2
    assert history.recent(policy, seconds_ns(1.0)) == 1  # the one at 0 left the window
    assert history.recent(policy, seconds_ns(1.0) + 10) == 0
    assert len(history) == 0


def test_seconds_are_converted_to_nanoseconds_rounding_up() -> None:
    assert seconds_ns(1.5) == 1_500_000_000
    assert seconds_ns(1e-10) == 1
    assert seconds_ns(0) == 0
