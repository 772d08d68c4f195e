"""What a task's finish record says when its run loop returned before any stop request: that,
and, for a queue task, how many queued items it dropped."""

from __future__ import annotations

import threading
from typing import Any

from lifecycle.collection import Tasks
from lifecycle.context import ExecuteContext
from lifecycle.errors import TaskStopped
from lifecycle.journal import Journal
from lifecycle.spec import TaskState
from lifecycle.task import RETURNED_EARLY
from lifecycle.tasks import QueueTask
from lifecycle.tasks.queue import dropped_cause
from tests.fakes import FakeService, stop

WAIT = 10.0  # a bound for what happens at once; never reached when the code is right


def test_a_queue_task_whose_workers_quit_unasked_says_so_and_what_it_dropped() -> None:
    entered, release = threading.Event(), threading.Event()

    class QuitsItself(QueueTask):
        def execute(self, item: Any, context: ExecuteContext) -> Any:
            if item == "gate":
                entered.set()
                release.wait(WAIT)
                self.stop_event.set()  # its own decision to quit: no stop was requested
            return item

    journal = Journal()
    service = FakeService()
    tasks = Tasks([QuitsItself], journal=journal)
    tasks.create(service)
    tasks.init()
    tasks.start()
    task = tasks.QuitsItself
    try:
        gate = task.submit("gate")
        assert entered.wait(WAIT)
        waiting = [task.submit(i) for i in range(2)]
        release.set()
        assert gate.result(WAIT) == "gate"
        assert all(isinstance(f.exception(WAIT), TaskStopped) for f in waiting)
        assert task.join(WAIT) is True
        assert task.state == TaskState.STOPPED and task.failure is None
    finally:
        release.set()
        stop(tasks)
    (finish,) = [r for r in journal.records if r.subject == "QuitsItself" and r.trigger == "finish"]
    assert finish.source == "running"
    assert finish.cause == f"{RETURNED_EARLY}; {dropped_cause(2)}"
    assert service.reasons == []  # nothing failed: nothing to ask
