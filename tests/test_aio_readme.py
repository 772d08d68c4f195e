"""The README's async example runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

from lifecycle.spec import TaskState
from tests.aio_support import asyncio_hygiene  # noqa: F401  (autouse)

README = Path(__file__).resolve().parent.parent / "README.md"


def _async_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Async tasks", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return block


def test_the_readme_async_example_serves_both_kinds_on_the_callers_loop() -> None:
    module = ModuleType("readme_async_example")
    exec(compile(_async_example(), str(README), "exec"), module.__dict__)
    service_holder: list[Any] = []

    class Watched(module.Crawler):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            service_holder.append(self)

    module.Crawler = Watched
    assert module.asyncio.run(module.main()) == 0
    (service,) = service_holder
    assert service.tasks.by_state() == {TaskState.STOPPED: ["Feed", "Fetcher"]}
    stops = [r.subject for r in service.journal.records if r.trigger == "stop" and r.kind == "task"]
    assert stops == ["Fetcher", "Feed"]
