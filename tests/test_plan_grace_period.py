"""``lifecycle plan --grace-period``: does the stop fit in what a supervisor grants it?"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.cli import main
from lifecycle.plan import check_grace_period
from lifecycle.service import LATE_STOP_GRACE, Service
from tests.aio_services import Pump


def test_a_stop_that_fits_exits_0_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "tests.health_services:Starting", "--grace-period", "31"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "fits in the grace period of 31s" in out
    assert err == ""


def test_a_stop_that_may_outlast_the_grace_period_warns_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["plan", "tests.health_services:Starting", "--grace-period", "30"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "start order: SlowStart, SlowStop" in out  # the plan is still printed
    assert "warning: the stop may take 30.5s" in err


def test_stop_timeout_is_the_one_the_service_will_run_with(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "plan",
            "tests.health_services:Starting",
            "--grace-period",
            "10",
            "--stop-timeout",
            "5",
            "--json",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["grace_period"] == {
        "grace_period": 10.0,
        "stop_timeout": 5.0,
        "stop_bound": 5.0 + LATE_STOP_GRACE,
        "fits": True,
    }


@pytest.mark.parametrize("value", ["-1", "soon", "inf", "nan"])
def test_a_bad_grace_period_is_a_usage_error(value: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["plan", "tests.health_services:Starting", "--grace-period", value])
    assert exited.value.code == 2


def test_async_tasks_add_the_grace_of_their_cancellation() -> None:
    class Threads(Service):
        pass

    class Loops(Service):
        TASKS = (Pump,)

    assert Threads.stop_bound(10) == 10 + LATE_STOP_GRACE
    assert Loops.stop_bound(10) == 10 + 3 * LATE_STOP_GRACE
    assert Threads.stop_bound() == 30 + LATE_STOP_GRACE  # the class's --stop-timeout default


@given(
    grace=st.floats(0, 1e6, allow_nan=False),
    timeout=st.floats(0, 1e6, allow_nan=False),
)
def test_it_fits_exactly_when_the_bound_is_below_the_grace_period(
    grace: float, timeout: float
) -> None:
    bound = Service.stop_bound(timeout)
    assert check_grace_period(grace, timeout, bound).fits == (bound < grace)
    assert bound >= timeout


@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), "30", True])
def test_check_grace_period_refuses_what_is_not_seconds(value: object) -> None:
    with pytest.raises(ValueError, match="grace period"):
        check_grace_period(value, 1, 1.5)  # type: ignore[arg-type]
