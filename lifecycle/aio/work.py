"""What the async task kinds that take work (`AsyncPeriodicTask`, `AsyncQueueTask`) share:
when a task accepts work handed to it from any thread."""

from __future__ import annotations

from lifecycle.engine import Lifecycle
from lifecycle.spec import TaskState

__all__ = ["refusing_work"]


def refusing_work(lifecycle: Lifecycle | None, opened: bool, closed: bool) -> str | None:
    """The state to name in `TaskNotRunning` when a task may not take work now; None when it
    may.

    A task run by a collection takes work while it is running and its queue is not closed. A
    task driven by hand (no collection, so no ``lifecycle``: a test awaiting its hooks) takes
    work once its first `run_loop` began (``opened``) until it closed. Reads only: thread-safe.
    """
    if lifecycle is None:
        if closed:
            return "stopped"
        return None if opened else "unbound"
    state = lifecycle.state
    if closed or state is not TaskState.RUNNING:
        return "closed" if state is TaskState.RUNNING else str(state)
    return None
