"""The health flags of ``lifecycle run`` and ``Service.main``, parsed in process."""

from __future__ import annotations

import pytest

from tests.health_services import Starting


def test_service_main_takes_the_health_address_and_refuses_a_bad_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert Starting.main(["--health-address", "localhost"]) == 2
    err = capsys.readouterr().err
    assert "bad health address 'localhost'" in err


def test_service_main_help_lists_the_health_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert Starting.main(["--help"]) == 0
    assert "--health-address HOST:PORT" in capsys.readouterr().out


def test_a_service_may_not_declare_the_health_address_for_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from lifecycle.options import option
    from lifecycle.service import Service

    class Clashing(Service):
        health_address_option = option(name="health-address", default="")

    assert Clashing.main([]) == 2
    assert "--health-address" in capsys.readouterr().err
