"""lifecycle: a strict, state-machine lifecycle engine for the background tasks of services."""

from lifecycle.collection import REGISTERED, Tasks
from lifecycle.context import ExecuteContext
from lifecycle.engine import Lifecycle
from lifecycle.errors import (
    DependencyCycle,
    DuplicateTask,
    IllegalTransition,
    InitError,
    InvalidSpec,
    InvalidTask,
    LifecycleError,
    RegistrationClosed,
    StopError,
    StopTimeout,
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
    "InvalidSpec",
    "InvalidTask",
    "Journal",
    "JournalFormatError",
    "Lifecycle",
    "LifecycleError",
    "MachineSpec",
    "RegistrationClosed",
    "ServiceState",
    "SkipTask",
    "StopError",
    "StopTimeout",
    "Task",
    "TaskState",
    "Tasks",
    "Transition",
    "TryLater",
    "UnknownTask",
    "read_journal",
]
