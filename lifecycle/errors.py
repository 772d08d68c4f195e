"""The typed errors of `lifecycle`.

Every error is a `LifecycleError`; each carries the attributes a caller needs to act on it, and
a message that names the subject and what to do. Errors that also mean "bad argument" or "not
found" inherit the matching built-in (`ValueError`, `TypeError`, `LookupError`) so that generic
handlers keep working.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence

__all__ = [
    "BadReference",
    "DependencyCycle",
    "DuplicateTask",
    "ForcedShutdown",
    "HelpRequested",
    "IllegalTransition",
    "InitError",
    "InvalidItem",
    "InvalidSpec",
    "InvalidTask",
    "JournalWriteError",
    "LifecycleError",
    "LifecycleInterrupt",
    "OptionConflict",
    "OptionError",
    "QueueFull",
    "RegistrationClosed",
    "RestartLimitExceeded",
    "StopError",
    "StopTimeout",
    "TaskErrorGroup",
    "TaskExit",
    "TaskNotRunning",
    "TaskStopped",
    "UnknownOption",
    "UnknownTask",
    "UsageError",
    "safe_repr",
    "safe_str",
]

#: Messages quote user objects through this: a huge item must not make a huge message.
_SHORT = reprlib.Repr()
_SHORT.maxstring = 200
_SHORT.maxother = 200


def safe_repr(obj: object) -> str:
    """``repr(obj)``, shortened, or a placeholder naming its type if that raises.

    Messages quote user objects (queued items, exceptions, names) through this, so that an
    object whose ``__repr__`` raises or never ends cannot break a stop or lose an error.
    """
    try:
        return _SHORT.repr(obj)
    except BaseException:  # user code: any failure gets the placeholder
        return f"<{_type_name(obj)} object (repr() raised)>"


def safe_str(obj: object) -> str:
    """``str(obj)``, or a placeholder naming its type if that raises (see `safe_repr`)."""
    try:
        return str(obj)
    except BaseException:  # user code: any failure gets the placeholder
        return f"<{_type_name(obj)} object (str() raised)>"


def _type_name(obj: object) -> str:
    try:
        return type(obj).__qualname__
    except BaseException:  # a metaclass can make even this raise
        return "unknown"


class LifecycleError(Exception):
    """Base class of every error raised by `lifecycle`."""


class InvalidSpec(LifecycleError, ValueError):
    """A state-machine table is malformed.

    Attributes: ``spec`` (the table's name) and ``problem`` (what is wrong).
    """

    def __init__(self, spec: str, problem: str) -> None:
        self.spec = spec
        self.problem = problem
        super().__init__(f"invalid {spec} spec: {problem}")


class IllegalTransition(LifecycleError):
    """A trigger was fired in a state whose table has no such edge; nothing was changed.

    Attributes: ``subject`` (who), ``kind`` (which machine), ``state`` (the current state),
    ``trigger`` (what was asked) and ``allowed`` (the triggers the current state accepts).
    """

    def __init__(
        self, subject: str, kind: str, state: str, trigger: str, allowed: Sequence[str]
    ) -> None:
        self.subject = subject
        self.kind = kind
        self.state = state
        self.trigger = trigger
        self.allowed = tuple(allowed)
        accepts = ", ".join(self.allowed) if self.allowed else "nothing (terminal state)"
        super().__init__(
            f"{kind} {subject!r} cannot {trigger!r} while {state}; {state} accepts: {accepts}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.subject, self.kind, self.state, self.trigger, self.allowed))


class JournalWriteError(LifecycleError, OSError):
    """A journal file could not be written (opened, written, flushed or closed).

    Attributes: ``path`` (the file) and ``error`` (the `OSError` behind it, also the
    ``__cause__``); ``errno`` and ``strerror`` are the OS error's. The records stay in memory.
    """

    def __init__(self, path: str, error: OSError) -> None:
        super().__init__(error.errno, error.strerror)
        self.filename = path
        self.path = path
        self.error = error
        self.__cause__ = error

    def __str__(self) -> str:
        return f"journal {self.path!r} could not be written: {self.error}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.error))


class InvalidTask(LifecycleError, TypeError):
    """Something that is not a usable task class was given where one is required.

    Attributes: ``task`` (the offending object) and ``problem``.
    """

    def __init__(self, task: object, problem: str) -> None:
        self.task = task
        self.problem = problem
        super().__init__(f"{safe_repr(task)}: {problem}")


class DuplicateTask(LifecycleError, ValueError):
    """Two different task classes share one name.

    Attributes: ``name`` and the qualified names ``existing`` and ``new``.
    """

    def __init__(self, name: str, existing: str, new: str) -> None:
        self.name = name
        self.existing = existing
        self.new = new
        super().__init__(
            f"task name {name!r} is taken by {existing}; cannot also register {new} "
            "(rename one of the classes)"
        )


class DependencyCycle(LifecycleError, ValueError):
    """Task dependencies form a cycle.

    Attribute ``cycle``: the names along the cycle, the first repeated at the end
    (``("A", "B", "A")``).
    """

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__("dependency cycle: " + " -> ".join(self.cycle))


class UnknownTask(LifecycleError, LookupError):
    """A task was looked up by a name or class that is not registered.

    Attributes: ``name`` and ``known`` (the registered names).
    """

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        listed = ", ".join(self.known) if self.known else "none"
        super().__init__(f"no task named {name!r}; registered: {listed}")

    def __str__(self) -> str:
        # LookupError's KeyError-style repr quoting does not apply; keep the plain message.
        return str(self.args[0])


class BadReference(LifecycleError, LookupError):
    """A ``MODULE:NAME`` reference that does not name an importable object.

    Attributes: ``reference`` and ``problem``.
    """

    def __init__(self, reference: str, problem: str) -> None:
        self.reference = reference
        self.problem = problem
        super().__init__(f"{reference}: {problem}")

    def __str__(self) -> str:
        return str(self.args[0])


class RegistrationClosed(IllegalTransition):
    """A collection's task set was changed after its tasks were created.

    An `IllegalTransition` like every call made in the wrong state: ``trigger`` is
    ``"register"`` or ``"unregister"``, ``state`` the collection's state and ``allowed`` is
    empty. Also ``collection`` (its name) and ``action`` (what was refused).
    """

    def __init__(self, collection: str, state: str, action: str, trigger: str = "register") -> None:
        self.collection = collection
        self.action = action
        super().__init__(collection, "collection", state, trigger, ())
        self.args = (
            f"cannot {action}: collection {collection!r} is {state}; "
            "tasks can only be registered or unregistered before create()",
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.collection, self.state, self.action, self.trigger))


class TaskErrorGroup(ExceptionGroup[Exception], LifecycleError):
    """Errors of several tasks in one phase, as an `ExceptionGroup`.

    ``failed`` maps each task's name to its error, in the order they happened.
    """

    #: What the tasks failed to do, for the message.
    phase: str = "run"
    failed: Mapping[str, Exception]

    def __new__(cls, failed: Mapping[str, Exception]) -> TaskErrorGroup:
        self = super().__new__(cls, cls._message(failed), list(failed.values()))
        self.failed = dict(failed)
        return self

    def __init__(self, failed: Mapping[str, Exception]) -> None:
        super().__init__(self._message(failed), list(failed.values()))

    @classmethod
    def _message(cls, failed: Mapping[str, Exception]) -> str:
        return f"tasks failed to {cls.phase}: {', '.join(failed)}"

    def derive(self, excs: Sequence[Exception]) -> ExceptionGroup[Exception]:  # type: ignore[override]
        # A subgroup from split() or except* no longer names every failed task: keep it plain.
        return ExceptionGroup(self.message, list(excs))


class InitError(TaskErrorGroup):
    """Tasks failed while the collection was created or initialized; ``__cause__`` is the
    first root cause."""

    phase = "initialize"


class StopError(TaskErrorGroup):
    """Tasks raised while being stopped; every task was still asked to stop."""

    phase = "stop"


class StopTimeout(LifecycleError, TimeoutError):
    """Tasks were still running when a stop deadline passed.

    Attributes: ``tasks`` (the names still running) and ``timeout`` (seconds).
    """

    def __init__(self, tasks: Sequence[str], timeout: float) -> None:
        self.tasks = tuple(tasks)
        self.timeout = timeout
        super().__init__(
            f"tasks still running {timeout:g}s after stop was requested: {', '.join(self.tasks)}"
        )



class RestartLimitExceeded(LifecycleError):
    """A task crashed once more after its restart limit was used up: it failed for good, and
    its service fails with this error (exit code 1).

    Attributes: ``task`` (its name), ``restarts`` (how many restarts it had within the
    window), ``burst`` and ``seconds`` (its ``RESTART_LIMIT``). The crash that found the limit
    used up is the ``__cause__`` (None for a run loop that returned early).
    """

    def __init__(self, task: str, restarts: int, burst: int, seconds: float) -> None:
        self.task = task
        self.restarts = restarts
        self.burst = burst
        self.seconds = seconds
        super().__init__(
            f"task {task!r} crashed again after {restarts} restart"
            f"{'' if restarts == 1 else 's'} within {seconds:g}s "
            f"(RESTART_LIMIT = ({burst}, {seconds:g})): it is not restarted again"
        )


class TaskExit(LifecycleError):
    """A task's code raised a `BaseException` that is not an `Exception` (`SystemExit`,
    `KeyboardInterrupt`, ...). It is that task's failure, not the program's exit.

    Stands for it where only an `Exception` fits (inside `InitError`). Attributes: ``task``
    (its name) and ``exception`` (what was raised, also the ``__cause__``).
    """

    def __init__(self, task: str, exception: BaseException) -> None:
        self.task = task
        self.exception = exception
        super().__init__(
            f"task {task!r} raised {type(exception).__name__}({safe_str(exception)})"
        )
        self.__cause__ = exception


class LifecycleInterrupt(BaseException):
    """Raised by the engine into user code it stops waiting for (a stop deadline that passed
    during init, a second signal). Not an `Exception`, and never a task's own failure: the
    collection leaves every task terminal and lets it through. ``reason`` is the error that
    ends the run (`StopTimeout` or `ForcedShutdown`).
    """

    def __init__(self, reason: LifecycleError) -> None:
        super().__init__(reason)
        self.reason = reason


class TaskNotRunning(LifecycleError):
    """Work was handed to a task that is not running (not started yet, stopping or ended).

    Attributes: ``task`` (its name) and ``state`` (its state, or ``"unbound"`` before a
    collection created it).
    """

    def __init__(self, task: str, state: str, action: str) -> None:
        self.task = task
        self.state = state
        super().__init__(
            f"cannot {action}: task {task!r} is {state}, not running; "
            "it accepts work only between start() and stop()"
        )


class TaskStopped(LifecycleError):
    """A task ended before a piece of work handed to it ran; the work was not done.

    Attributes: ``task`` (its name), ``item`` (the queued item, or None for a periodic run)
    and ``attempt`` (the attempt that never ran, counting from 1).
    """

    def __init__(
        self, task: str, item: object = None, attempt: int = 1, why: str = "stopped"
    ) -> None:
        self.task = task
        self.item = item
        self.attempt = attempt
        what = "the next run" if item is None else f"item {safe_repr(item)} (attempt {attempt})"
        super().__init__(f"task {task!r} {why} before {what} ran")



class InvalidItem(LifecycleError, TypeError):
    """An item a queue task cannot hold (unorderable for a priority queue, unhashable for a
    unique queue). Attributes: ``task`` (its name), ``item`` and ``problem``.
    """

    def __init__(self, task: str, item: object, problem: str) -> None:
        self.task = task
        self.item = item
        self.problem = problem
        super().__init__(f"task {task!r} cannot queue {safe_repr(item)}: {problem}")

class QueueFull(LifecycleError):
    """A bounded queue task stayed full for the whole time a submitter could wait.

    Attributes: ``task`` (its name), ``max_items`` (the bound) and ``timeout`` (seconds waited).
    """

    def __init__(self, task: str, max_items: int, timeout: float) -> None:
        self.task = task
        self.max_items = max_items
        self.timeout = timeout
        super().__init__(
            f"queue of task {task!r} is full ({max_items} items) and stayed full for "
            f"{timeout:g}s; retry later, raise its max-items, or pass a longer timeout"
        )

class ForcedShutdown(LifecycleError):
    """A second signal arrived while the service was stopping; it gave up waiting.

    Attributes: ``tasks`` (the names still running) and ``signal`` (the signal's name).
    """

    def __init__(self, tasks: Sequence[str], signal: str) -> None:
        self.tasks = tuple(tasks)
        self.signal = signal
        running = ", ".join(self.tasks) if self.tasks else "none"
        super().__init__(
            f"forced exit on a second {signal} while stopping; still running: {running}"
        )


class OptionError(LifecycleError, ValueError):
    """An option is declared or used wrongly. ``option`` names it (its flag where known)."""

    def __init__(self, option: str, problem: str) -> None:
        self.option = option
        self.problem = problem
        super().__init__(f"option {option}: {problem}")


class OptionConflict(OptionError):
    """Two declared options map to the same command-line flag.

    Attributes: ``flag``, and ``first`` and ``second``, the two declarations
    (``module.Class.attribute``).
    """

    def __init__(self, flag: str, first: str, second: str) -> None:
        self.flag = flag
        self.first = first
        self.second = second
        super().__init__(
            flag,
            f"declared by both {first} and {second}; "
            "rename one, or set OPT_PREFIX to tell them apart",
        )


class UnknownOption(OptionError, LookupError):
    """An option was looked up by a name that is not declared. ``known`` lists the names."""

    def __init__(self, owner: str, name: str, known: Sequence[str]) -> None:
        self.owner = owner
        self.name = name
        self.known = tuple(known)
        listed = ", ".join(self.known) if self.known else "none"
        super().__init__(name, f"{owner} declares no such option; it declares: {listed}")

    def __str__(self) -> str:
        return str(self.args[0])


class UsageError(OptionError):
    """A command line could not be parsed (the CLI exits 2).

    Attributes: ``message`` (what was wrong) and ``usage`` (the usage text to show with it).
    """

    def __init__(self, message: str, usage: str = "") -> None:
        self.message = message
        self.usage = usage
        super().__init__("command line", message)
        self.args = (message,)

    def __str__(self) -> str:
        return self.message


class HelpRequested(LifecycleError):
    """The command line asked for information (``--help``, or ``--tasks`` with no name).

    Not a failure: the caller shows ``text`` and exits 0. Raised instead of printing, because
    library code never prints.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(text)
