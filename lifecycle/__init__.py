"""lifecycle: a strict, state-machine lifecycle engine for the background tasks of services."""

from lifecycle.collection import REGISTERED, Tasks
from lifecycle.context import ExecuteContext
from lifecycle.engine import Lifecycle
from lifecycle.errors import (
    DependencyCycle,
    DuplicateTask,
    ForcedShutdown,
    HelpRequested,
    IllegalTransition,
    InitError,
    InvalidItem,
    InvalidSpec,
    InvalidTask,
    JournalWriteError,
    LifecycleError,
    OptionConflict,
    OptionError,
    QueueFull,
    RegistrationClosed,
    StopError,
    StopTimeout,
    TaskNotRunning,
    TaskStopped,
    UnknownOption,
    UnknownTask,
    UsageError,
)
from lifecycle.journal import Journal, JournalFormatError, Transition, read_journal
from lifecycle.options import option
from lifecycle.service import Service
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
    "ForcedShutdown",
    "HelpRequested",
    "IllegalTransition",
    "InitError",
    "InvalidItem",
    "InvalidSpec",
    "InvalidTask",
    "Journal",
    "JournalFormatError",
    "JournalWriteError",
    "Lifecycle",
    "LifecycleError",
    "MachineSpec",
    "OptionConflict",
    "OptionError",
    "PeriodicTask",
    "PriorityQueueTask",
    "QueueFull",
    "QueueTask",
    "RegistrationClosed",
    "Service",
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
    "UnknownOption",
    "UnknownTask",
    "UsageError",
    "option",
    "read_journal",
]
