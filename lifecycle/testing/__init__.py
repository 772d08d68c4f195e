"""`lifecycle.testing`: the conformance kit for users' own tasks, and the pytest plugin.

* `check_machine(spec, factory=None, max_examples=...)` fires random legal and illegal triggers,
  from one and several threads, at objects bound to a machine, and checks them against its table
  and their journal.
* `check_tasks(*task_classes, stop_timeout=..., max_examples=...)` drives task classes (with
  the tasks their DEPS and WANTS pull in) through a service's whole lifecycle under scenarios
  hypothesis chooses, and raises `AssertionError` naming what broke a lifecycle promise;
  thread tasks and async tasks alike (`StopGraceWarning`: an async task stopped only by the
  engine's cancellation).
* `wait_for_state(subject, state, timeout)` waits, without polling, until a task, collection,
  service or `Lifecycle` is in a state; `StateTimeout`, `StateUnreachable` and
  `WaitOnLoopThread` (called on the event loop its subject runs on) are its errors.
* `lifecycle.testing.plugin` is the pytest plugin (loaded through the ``pytest11`` entry
  point): the ``lifecycle_journal`` and ``running_service`` fixtures.

The names are imported on first use: the plugin is loaded in every pytest run where the
package is installed, so importing this package stays cheap and never imports hypothesis
(which `check_tasks` needs: ``pip install 'lifecycle-engine[testing]'``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lifecycle.testing.machines import check_machine
    from lifecycle.testing.tasks import StopGraceWarning, check_tasks
    from lifecycle.testing.waiting import (
        StateTimeout,
        StateUnreachable,
        WaitOnLoopThread,
        wait_for_state,
    )

__all__ = [
    "StateTimeout",
    "StateUnreachable",
    "StopGraceWarning",
    "WaitOnLoopThread",
    "check_machine",
    "check_tasks",
    "wait_for_state",
]

#: Public name -> the module of this package that defines it, imported on first use.
_LAZY = {
    "check_tasks": "lifecycle.testing.tasks",
    "wait_for_state": "lifecycle.testing.waiting",
    "StateTimeout": "lifecycle.testing.waiting",
    "StateUnreachable": "lifecycle.testing.waiting",
    "WaitOnLoopThread": "lifecycle.testing.waiting",
    "StopGraceWarning": "lifecycle.testing.tasks",
    "check_machine": "lifecycle.testing.machines",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
