"""The package's dependency direction: spec, then the engine, then tasks and the collection,
then the readers of journals (the audit, then the outcome), the service (whose summaries are
outcomes), the diagrams, the conformance kit (`lifecycle.testing`), then the command line.

Each module may import only modules of a lower layer. Only `cli` prints.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lifecycle"

#: Lowest first. A module may import only from earlier layers.
LAYERS: list[set[str]] = [
    {"errors"},
    {"spec", "graph", "loading", "options", "context", "seal", "futures", "restart"},
    {"specfile"},
    {"journal"},
    {"engine"},
    {"task", "stopping", "shutdown", "bind", "aio.blocking", "aio.work"},
    {"aio.task", "supervision"},
    {"collection"},
    {"tasks.periodic", "tasks.queue"},
    {"aio.periodic", "aio.queue"},
    {"tasks", "aio"},
    {"audit"},
    {"outcome"},
    {"health"},
    {"service", "plan"},
    {"diagrams", "demo"},
    {"timeline"},
    # The probe server and sd_notify report a running service's health.
    {"probes", "systemd"},
    # The conformance kit and its pytest plugin read the layers below: a wait on any lifecycle,
    # then the checks that run services and audit their journals.
    {"testing.waiting"},
    {"testing.tasks", "testing.plugin", "testing.machines"},
    {"testing"},
    {"__init__"},
    {"cli"},
    {"__main__"},
]

#: `Task.register()` adds to the module-level `REGISTERED` collection, as in sparts: a lazy
#: import inside that one method. `Service.main()` runs the service as a program, which prints
#: (help, the transitions, a failure, the summary), and only `cli` prints: it hands over to
#: `lifecycle.cli.service_main` with a lazy import inside that one method.
ALLOWED_UPWARD = {("task", "collection"), ("service", "cli")}


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    return name.removesuffix(".__init__")  # a package is named as it is imported


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lifecycle"):
            found.add(node.module.removeprefix("lifecycle").lstrip(".") or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lifecycle."):
                    found.add(alias.name.removeprefix("lifecycle."))
    return found


def _rank(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if module in layer:
            return rank
    raise LookupError(f"module {module!r} is in no layer of {__name__}.LAYERS: place it")


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_module_imports_only_lower_layers(path: Path) -> None:
    module = _module_name(path)
    own = _rank(module)
    upward = sorted(
        imported
        for imported in _imports(path)
        if _rank(imported) >= own
        and imported != module
        and (module, imported) not in ALLOWED_UPWARD
    )
    assert not upward, f"lifecycle.{module} imports from its own or a higher layer: {upward}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_only_the_command_line_prints(path: Path) -> None:
    if _module_name(path) == "cli":
        return
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prints = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert not prints, f"{path.name} calls print() on lines {prints}"
