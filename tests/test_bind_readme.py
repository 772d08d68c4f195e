"""The README's "Your own machines" example runs as written."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

README = Path(__file__).resolve().parent.parent / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_the_your_own_machines_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", _section("Your own machines"), re.S)
    assert blocks, "the section has no python example"
    module = ModuleType("readme_machines")
    exec(compile(blocks[0], str(README), "exec"), module.__dict__)
    door = module.door
    assert door.state == "locked"
    assert [r.subject for r in module.journal.records] == ["front"] * 5

