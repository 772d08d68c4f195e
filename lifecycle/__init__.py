"""lifecycle: a strict, state-machine lifecycle engine for the background tasks of services."""

from lifecycle.collection import REGISTERED, Tasks
from lifecycle.context import ExecuteContext
from lifecycle.engine import Lifecycle
from lifecycle.errors import (
    DependencyCycle,
    DuplicateTask,
    IllegalTransition,
    InitError,
    InvalidItem,
    InvalidSpec,
    InvalidTask,
    LifecycleError,
    QueueFull,
    RegistrationClosed,
    StopError,
    StopTimeout,
    TaskNotRunning,
    TaskStopped,
    UnknownTask,
)
from lifecycle.journal import Journal, JournalFormatError, Transition, read_journal
from lifecycle.spec import (
    COLLECTION,
    SERVICE,
    SPECS,
    TASK,
    CollectionState,
    Edge,
    MachineSpec,
    ServiceState,
    TaskState,
)
from lifecycle.task import SkipTask, Task, TryLater
from lifecycle.tasks import PeriodicTask, PriorityQueueTask, QueueTask, UniqueQueueTask

__version__ = "0.1.0"

__all__ = [
    "COLLECTION",
    "REGISTERED",
    "SERVICE",
    "SPECS",
    "TASK",
    "CollectionState",
    "DependencyCycle",
    "DuplicateTask",
    "Edge",
    "ExecuteContext",
    "IllegalTransition",
    "InitError",
    "InvalidItem",
    "InvalidSpec",
    "InvalidTask",
    "Journal",
    "JournalFormatError",
    "Lifecycle",
    "LifecycleError",
    "MachineSpec",
    "PeriodicTask",
    "PriorityQueueTask",
    "QueueFull",
    "QueueTask",
    "RegistrationClosed",
    "ServiceState",
    "SkipTask",
    "StopError",
    "StopTimeout",
    "Task",
    "TaskNotRunning",
    "TaskState",
    "TaskStopped",
    "Tasks",
    "Transition",
    "TryLater",
    "UniqueQueueTask",
    "UnknownTask",
    "read_journal",
]
