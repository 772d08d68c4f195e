"""The README's code runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

from lifecycle import ServiceState, TaskState

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_example_service_runs_and_stops_cleanly() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no python example"
    module = ModuleType("readme_example")
    exec(compile(blocks[0], str(README), "exec"), module.__dict__)
    service = module.App.from_argv(["--Poller-interval", "0.01"])
    service.start()  # returns once every task is running
    try:
        assert service.tasks.state_of("Poller") == TaskState.RUNNING
    finally:
        service.shutdown("test over")
        assert service.wait(10)
    assert service.state == ServiceState.STOPPED
    assert service.exit_code == 0
    assert service.tasks.by_state() == {TaskState.STOPPED: ["Database", "Poller"]}
