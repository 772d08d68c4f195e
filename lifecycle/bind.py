"""Bind a `MachineSpec` to a class of your own: its instances become strict subjects.

::

    @bind(DOOR, journal=Journal())
    class Door:
        def on_enter_open(self) -> None: ...

    door = Door()
    door.open()            # or door.fire("open"); door.state is DoorState.OPEN
    door.can("lock")       # False: the table has no lock from open
    door.allowed()         # ("close",)

Each instance gets ``state`` (read-only), one method per trigger, ``fire(trigger)``,
``can(trigger)`` and ``allowed()``; every fired and refused trigger is journaled (``journal=None``:
nothing is recorded). The dispatch table is the engine's (`lifecycle.engine.dispatch_table`, read
back from the spec's one shared `transitions` machine); an instance holds only its state, its
lock and, once journaled, its subject name, all made at its first trigger: binding is O(1) per
object and runs none of the class's code.

Hooks are methods found by name, as in ``transitions`` and ``python-statemachine``, and guards
are named at bind time (``cond`` / ``unless``). One rule keeps the journal truthful: whatever runs
*before* the state changes may veto the move, whatever runs *after* cannot undo it.

1. ``cond`` guards (each must return true), then ``unless`` guards (each must return false);
2. ``before_<trigger>()``;
3. ``on_exit_<source>()``;
4. the move: the state changes and an ``ok`` record is journaled;
5. ``on_enter_<dest>()``;
6. ``after_<trigger>()``.

A guard that returns the wrong answer, or a step 1-3 that raises, vetoes: the state is unchanged,
a refused record (``ok=False``) is journaled with a cause starting with `VETO_CAUSE_PREFIX` and
naming the hook, and the caller gets `TransitionVetoed` (its ``__cause__`` is what the hook
raised). A `BaseException` that is not an `Exception` (`KeyboardInterrupt`, `SystemExit`) is
journaled the same way and then re-raised as it is. A step 5-6 that raises leaves the move in
place (its record is already ``ok``); the error reaches the caller unchanged, with a note saying
that the move stands, and the hooks after it do not run.

Thread-safety: as `lifecycle.engine.Lifecycle`: each instance has a re-entrant lock (`lock_of`),
held for the whole trigger, hooks included, so a hook must not wait for another thread that
fires at the same object. A hook may fire further triggers on its own object (the lock is
re-entrant): from steps 5-6 they simply follow the move; from steps 1-3 a move made by the hook
vetoes the trigger being decided (its source is gone), which is journaled as such.

Misuse is refused when the class is made, with `BindingError`: a trigger method, ``state``,
``fire``, ``can`` or ``allowed`` that would replace an attribute of the class (or of a base), a
hook name whose state or trigger is not in the spec (``on_enter_opne``: a typo), an
``on_<trigger>`` method (there is no such hook: use ``before_`` or ``after_``), a hook that is not
callable or is an ``async def``, and a guard naming no method. Subclasses of a bound class are
checked and compiled the same way when they are made (their ``__init_subclass__``, if they
define one, must call ``super().__init_subclass__()``).

Copies and pickles carry the state, not the lock or the subject name: a copy is a new subject
(journaled under a new name) that starts where the original was.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import operator
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, Protocol, TypeVar

from lifecycle.engine import dispatch_table
from lifecycle.errors import IllegalTransition, LifecycleError, safe_str
from lifecycle.journal import VETO_CAUSE_PREFIX, Journal, describe_cause, is_veto_cause
from lifecycle.spec import MachineSpec

__all__ = [
    "VETO_CAUSE_PREFIX",
    "Binding",
    "BindingError",
    "Guard",
    "TransitionVetoed",
    "Trigger",
    "bind",
    "binding_of",
    "is_veto_cause",
    "lock_of",
]


#: Per-instance storage. Plain attributes (or slots of these names): no wrapper object per
#: instance, and the hot path reads them with one attribute lookup each.
_STATE = "_lifecycle_state"
_LOCK = "_lifecycle_lock"
_SUBJECT = "_lifecycle_subject"
_PRIVATE = (_STATE, _LOCK, _SUBJECT)
#: What a bound class gets besides its trigger methods.
_API = ("state", "fire", "can", "allowed")
#: Class attributes: the binding (inherited) and each class's own compiled triggers.
_BINDING = "__lifecycle__"
_FIRES = "__lifecycle_fires__"

#: The prefixes of state hooks and of trigger hooks.
_STATE_HOOKS = ("on_enter_", "on_exit_")
_TRIGGER_HOOKS = ("before_", "after_")

C = TypeVar("C", bound=type)

#: A guard: a method name, or a callable taking the instance.
Guard = str | Callable[[Any], object]


class BindingError(LifecycleError, TypeError):
    """A class cannot be bound as asked (raised when the class is made).

    Attributes: ``cls`` (the class's qualified name) and ``problem`` (what is wrong).
    """

    def __init__(self, cls: str, problem: str) -> None:
        self.cls = cls
        self.problem = problem
        super().__init__(f"cannot bind {cls}: {problem}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.cls, self.problem))


class TransitionVetoed(LifecycleError):
    """A legal trigger was refused by the subject's own guard or hook; nothing was changed.

    A sibling of `IllegalTransition` (which means the table has no such edge): here the edge
    exists and ``hook`` (e.g. ``"Door.before_open"`` or ``"cond Door.has_key"``) refused it,
    for ``reason``. The exception the hook raised, if any, is the ``__cause__``. Attributes:
    ``subject``, ``kind`` (the machine), ``state`` (unchanged), ``trigger``, ``dest`` (where it
    would have gone), ``hook``, ``reason``.
    """

    def __init__(
        self, subject: str, kind: str, state: str, trigger: str, dest: str, hook: str, reason: str
    ) -> None:
        self.subject = subject
        self.kind = kind
        self.state = state
        self.trigger = trigger
        self.dest = dest
        self.hook = hook
        self.reason = reason
        super().__init__(
            f"{kind} {subject!r} did not {trigger!r} from {state} to {dest}: "
            f"vetoed by {hook} ({reason})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.subject, self.kind, self.state, self.trigger, self.dest, self.hook, self.reason),
        )


class Trigger(Protocol):
    """The type of a trigger method, for annotations on a bound class (``open: Trigger``)."""

    def __call__(self, cause: BaseException | str | None = None) -> Any: ...


class Binding:
    """What `bind` made of a class: its spec, journal, guards and how subjects are named.

    Shared by the bound class and its subclasses (``cls.__lifecycle__``); immutable.
    """

    __slots__ = (
        "guards", "initial", "journal", "kind", "spec", "subject_of", "table", "trigger_methods"
    )

    spec: MachineSpec
    journal: Journal | None
    kind: str
    initial: Any
    table: Mapping[tuple[str, str], Any]
    #: trigger → its guards, ``cond`` ones first: (label, call, the answer that lets it pass).
    guards: Mapping[str, tuple[tuple[str, Callable[[Any], object], bool], ...]]
    subject_of: Callable[[Any], str]
    trigger_methods: bool

    def __init__(
        self,
        spec: MachineSpec,
        journal: Journal | None,
        guards: Mapping[str, tuple[tuple[str, Callable[[Any], object], bool], ...]],
        subject_of: Callable[[Any], str],
        trigger_methods: bool,
    ) -> None:
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "journal", journal)
        object.__setattr__(self, "kind", spec.name)
        object.__setattr__(self, "initial", spec.state(spec.initial))
        object.__setattr__(self, "table", dispatch_table(spec))
        object.__setattr__(self, "guards", guards)
        object.__setattr__(self, "subject_of", subject_of)
        object.__setattr__(self, "trigger_methods", trigger_methods)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Binding is immutable (cannot set {name!r})")

    def __repr__(self) -> str:
        return f"<Binding {self.spec.name} journal={'yes' if self.journal else 'no'}>"


# -- the decorator ---------------------------------------------------------------------------


def bind(
    spec: MachineSpec,
    *,
    journal: Journal | None = None,
    subject: str | Callable[[Any], str] | None = None,
    cond: Mapping[str, Guard | Sequence[Guard]] | None = None,
    unless: Mapping[str, Guard | Sequence[Guard]] | None = None,
    trigger_methods: bool = True,
) -> Callable[[C], C]:
    """A class decorator making each instance a strict subject of ``spec`` (see the module doc).

    ``journal``: where every fired and refused trigger is recorded (None: nowhere).
    ``subject``: how a record names an instance: the name of an attribute (read with ``str``
    at each record), a callable taking the instance, or None for ``ClassName-N`` (N unique in
    the process, given at the instance's first record). ``cond`` / ``unless``: trigger → guard
    or guards (a method name, or a callable taking the instance) that must return true / false
    for the trigger to proceed. ``trigger_methods=False`` installs no method per trigger (use
    ``fire``), for a class whose own methods have those names.

    Raises `BindingError` (when the class is made) for any misuse listed in the module doc,
    and for a ``cond`` / ``unless`` naming a trigger the spec does not have.
    """
    if not isinstance(spec, MachineSpec):
        raise BindingError("a class", f"bind() takes a MachineSpec, not {type(spec).__name__}")
    if journal is not None and not isinstance(journal, Journal):
        raise BindingError("a class", f"journal must be a Journal or None, not {journal!r}")

    def decorate(cls: C) -> C:
        if not isinstance(cls, type):
            raise BindingError(safe_str(cls), "bind() decorates a class")
        name = cls.__qualname__
        guards = _guards(name, spec, cond or {}, unless or {})
        binding = Binding(spec, journal, guards, _namer(name, subject), trigger_methods)
        _check_storage(cls)
        _check_clashes(cls, binding, inherited=True)
        if journal is not None:
            journal.describe_machine(spec)  # before its first record, as the journal requires
        type.__setattr__(cls, _BINDING, binding)
        _install_subclass_hook(cls)
        _install_getstate(cls)
        _compile(cls, binding)
        return cls

    return decorate


def binding_of(obj: object) -> Binding:
    """The `Binding` of a bound class or instance; raises `BindingError` for anything else."""
    cls = obj if isinstance(obj, type) else type(obj)
    binding = getattr(cls, _BINDING, None)
    if not isinstance(binding, Binding):
        raise BindingError(cls.__qualname__, "it is not a bound class (use @bind(spec))")
    return binding


def lock_of(obj: object) -> threading.RLock:
    """The re-entrant lock that every trigger of the bound instance ``obj`` holds.

    Hold it to make a check and a trigger atomic (``with lock_of(door): if door.can(...)``).
    """
    binding = binding_of(obj)
    try:
        lock: threading.RLock = getattr(obj, _LOCK)
    except AttributeError:
        lock = _adopt(obj, binding.initial)
    return lock


# -- class-time checks -----------------------------------------------------------------------


def _guards(
    cls: str,
    spec: MachineSpec,
    cond: Mapping[str, Guard | Sequence[Guard]],
    unless: Mapping[str, Guard | Sequence[Guard]],
) -> dict[str, tuple[tuple[str, Callable[[Any], object], bool], ...]]:
    """trigger → ((label, call, wanted), ...): cond guards (wanted True) then unless guards."""
    found: dict[str, list[tuple[str, Callable[[Any], object], bool]]] = {}
    for option, table, wanted in (("cond", cond, True), ("unless", unless, False)):
        if not isinstance(table, Mapping):
            raise BindingError(cls, f"{option} must map triggers to guards, not {table!r}")
        for trigger, given in table.items():
            if trigger not in spec.triggers:
                raise BindingError(
                    cls,
                    f"{option} names trigger {trigger!r}, which the {spec.name} spec does not "
                    f"have (its triggers: {', '.join(spec.triggers)})",
                )
            items: Iterable[Guard] = (
                (given,) if isinstance(given, str) or callable(given) else given
            )
            for guard in items:
                call: Callable[[Any], object]
                if isinstance(guard, str):
                    label, call = f"{option} {cls}.{guard}", operator.methodcaller(guard)
                elif callable(guard):
                    label = f"{option} {getattr(guard, '__qualname__', safe_str(guard))}"
                    call = guard
                else:
                    raise BindingError(
                        cls, f"a guard of {trigger!r} must be a method name or a callable"
                    )
                found.setdefault(trigger, []).append((label, call, wanted))
    return {trigger: tuple(items) for trigger, items in found.items()}


def _namer(cls: str, subject: str | Callable[[Any], str] | None) -> Callable[[Any], str]:
    if subject is None:
        return _default_subject
    if isinstance(subject, str):
        if not subject.isidentifier():
            raise BindingError(cls, f"subject={subject!r} is not an attribute name")
        attribute = subject
        return lambda obj: safe_str(getattr(obj, attribute))
    if callable(subject):
        return lambda obj: safe_str(subject(obj))
    raise BindingError(cls, f"subject must be an attribute name, a callable or None: {subject!r}")


#: Default subject names are unique in the process, so two classes, or one class's instances
#: made and dropped over time, never share a name in a journal (``id()`` would be reused).
_numbers = itertools.count(1)


def _default_subject(obj: Any) -> str:
    try:
        name: str = getattr(obj, _SUBJECT)
    except AttributeError:
        name = _new_subject(obj)
    return name


def _new_subject(obj: Any) -> str:
    """Give ``obj`` its default subject name (it has none yet; its lock is held)."""
    name = f"{type(obj).__name__}-{next(_numbers)}"
    object.__setattr__(obj, _SUBJECT, name)
    return name


def _check_storage(cls: type) -> None:
    """Instances need a ``__dict__``, or slots for the per-instance attributes."""
    if any("__dict__" in vars(k) for k in cls.__mro__ if k is not object) or all(
        _is_slot(cls, name) for name in _PRIVATE
    ):
        return
    raise BindingError(
        cls.__qualname__,
        "its instances have neither a __dict__ nor the slots "
        f"{', '.join(repr(n) for n in _PRIVATE)}: add those to its __slots__",
    )


def _is_slot(cls: type, name: str) -> bool:
    return any(inspect.ismemberdescriptor(vars(k).get(name)) for k in cls.__mro__)


def _installed(binding: Binding) -> tuple[str, ...]:
    return (*_API, *(binding.spec.triggers if binding.trigger_methods else ()))


def _check_clashes(cls: type, binding: Binding, inherited: bool) -> None:
    """Refuse to replace an attribute the class (``inherited``: or a base) already has."""
    name = cls.__qualname__
    for attribute in (*_installed(binding), *_PRIVATE, _FIRES):
        owners = cls.__mro__ if inherited else (cls,)
        owner = next((k for k in owners if attribute in vars(k)), None)
        if owner is None or (attribute in _PRIVATE and _is_slot(cls, attribute)):
            continue
        if getattr(owner, _BINDING, None) is not None and owner is not cls:
            problem = f"{owner.__qualname__} is already bound; a class is bound once"
        elif attribute in binding.spec.triggers:
            problem = (
                f"trigger {attribute!r} would replace {owner.__qualname__}.{attribute}; rename "
                "it, or bind with trigger_methods=False and call fire()"
            )
        else:
            problem = f"{attribute!r} would replace {owner.__qualname__}.{attribute}; rename it"
        raise BindingError(name, problem)


def _check_hooks(cls: type, binding: Binding) -> None:
    """Every method named like a hook must be one, for a state or trigger of the spec."""
    spec = binding.spec
    states = {s.value for s in spec.states}
    triggers = set(spec.triggers)
    installed = set(_installed(binding))
    for attribute in dir(cls):
        if attribute in installed:
            continue
        known: set[str] | None = None
        for prefix in _STATE_HOOKS:
            if attribute.startswith(prefix):
                known, what, suffix = states, "state", attribute[len(prefix) :]
                break
        else:
            for prefix in _TRIGGER_HOOKS:
                if attribute.startswith(prefix):
                    known, what, suffix = triggers, "trigger", attribute[len(prefix) :]
                    break
        if known is None:
            if attribute.startswith("on_") and attribute[3:] in triggers:
                raise BindingError(
                    cls.__qualname__,
                    f"{attribute}: there is no on_<trigger> hook; name it before_{attribute[3:]} "
                    f"(runs before the move and may veto it) or after_{attribute[3:]}",
                )
            continue
        if suffix not in known:
            raise BindingError(
                cls.__qualname__,
                f"{attribute} is named like a hook, but {suffix!r} is not a {what} of the "
                f"{spec.name} spec ({what}s: {', '.join(sorted(known))}); fix the typo or "
                "rename the method",
            )
        hook = inspect.getattr_static(cls, attribute)
        function = getattr(hook, "__func__", hook)
        if not callable(getattr(cls, attribute)):
            raise BindingError(cls.__qualname__, f"hook {attribute} is not callable")
        if inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
            raise BindingError(
                cls.__qualname__, f"hook {attribute} is an async def; hooks are called directly"
            )
    for trigger, guards in binding.guards.items():
        for label, call, _ in guards:
            if isinstance(call, operator.methodcaller):
                method = label.rsplit(".", 1)[1]
                if not callable(getattr(cls, method, None)):
                    raise BindingError(
                        cls.__qualname__,
                        f"guard {method!r} of {trigger!r} is not a method of the class",
                    )


def _install_subclass_hook(cls: type) -> None:
    """Check and compile each subclass when it is made (its own hooks, no clashes)."""
    own = vars(cls).get("__init_subclass__")

    def __init_subclass__(sub: type[Any], /, **kwargs: Any) -> None:
        if own is not None:
            own.__get__(None, sub)(**kwargs)
        else:
            super(cls, sub).__init_subclass__(**kwargs)  # type: ignore[arg-type]
        binding = binding_of(sub)
        _check_clashes(sub, binding, inherited=False)
        _compile(sub, binding)

    type.__setattr__(cls, "__init_subclass__", classmethod(__init_subclass__))


def _install_getstate(cls: type) -> None:
    """Copies and pickles carry the state, never the lock or the subject name."""
    if getattr(cls, "__getstate__", None) is not object.__getstate__:
        return  # the class's own: it decides what is carried

    def __getstate__(self: Any) -> Any:
        state = object.__getstate__(self)
        if isinstance(state, dict):
            return {k: v for k, v in state.items() if k not in (_LOCK, _SUBJECT)}
        if isinstance(state, tuple) and len(state) == 2:
            attrs, slots = state
            if isinstance(slots, dict):
                slots = {k: v for k, v in slots.items() if k not in (_LOCK, _SUBJECT)} or None
            if isinstance(attrs, dict):
                attrs = {k: v for k, v in attrs.items() if k not in (_LOCK, _SUBJECT)} or None
            return (attrs, slots)
        return state

    type.__setattr__(cls, "__getstate__", __getstate__)


# -- compiling a class's triggers ------------------------------------------------------------


class _Step:
    """The hooks of one (source, trigger) in one class, by name (looked up on the instance)."""

    __slots__ = ("after", "before", "guards")

    def __init__(
        self,
        guards: tuple[tuple[str, Callable[[Any], object], bool], ...],
        before: tuple[str, ...],
        after: tuple[str, ...],
    ) -> None:
        self.guards = guards
        self.before = before
        self.after = after


def _compile(cls: type, binding: Binding) -> None:
    """Check ``cls``'s hooks and give it one function per trigger (and the methods)."""
    _check_hooks(cls, binding)
    spec = binding.spec
    fires: dict[str, Callable[..., Any]] = {}
    for trigger in spec.triggers:
        moves = {s: d for (s, t), d in binding.table.items() if t == trigger}
        steps: dict[Any, _Step] = {}
        for source, dest in moves.items():
            before = tuple(
                n for n in (f"before_{trigger}", f"on_exit_{source}") if hasattr(cls, n)
            )
            after = tuple(n for n in (f"on_enter_{dest}", f"after_{trigger}") if hasattr(cls, n))
            guards = binding.guards.get(trigger, ())
            if guards or before or after:
                steps[source] = _Step(guards, before, after)
        function = (
            _plain_trigger(trigger, moves, binding)
            if not steps and _default_setattr(cls)
            else _hooked_trigger(trigger, moves, steps, binding)
        )
        function.__name__ = trigger
        function.__qualname__ = f"{cls.__qualname__}.{trigger}"
        function.__doc__ = f"Fire {trigger!r} (the {spec.name} spec): see `lifecycle.bind`."
        fires[trigger] = function
        if binding.trigger_methods:
            type.__setattr__(cls, trigger, function)
    type.__setattr__(cls, _FIRES, fires)
    if _BINDING in vars(cls):  # the API is inherited by subclasses as it is
        initial = binding.initial
        type.__setattr__(cls, "state", property(_state_getter(initial), doc=_STATE_DOC))
        type.__setattr__(cls, "fire", _fire)
        type.__setattr__(cls, "can", _can)
        type.__setattr__(cls, "allowed", _allowed)


def _default_setattr(cls: type) -> bool:
    """Whether instances store attributes with ``object``'s own ``__setattr__``."""
    return not any("__setattr__" in vars(k) for k in cls.__mro__ if k is not object)


_STATE_DOC = "The current state, a member of the spec's state enum (read-only)."

#: Makes the per-instance lock once: the first trigger of two threads at a new object must not
#: give it two locks. Held only while an object gets its lock, never during a trigger.
_ADOPTING = threading.Lock()


def _adopt(obj: Any, initial: Any) -> threading.RLock:
    """Give ``obj`` its state (if it has none yet) and then its lock; return the lock."""
    with _ADOPTING:
        lock: threading.RLock | None = getattr(obj, _LOCK, None)
        if lock is None:
            if getattr(obj, _STATE, None) is None:
                object.__setattr__(obj, _STATE, initial)
            lock = threading.RLock()
            # The state is set before the lock is published: whoever holds the lock reads it.
            object.__setattr__(obj, _LOCK, lock)
    return lock


def _state_getter(initial: Any) -> Callable[[Any], Any]:
    def state(self: Any) -> Any:
        return getattr(self, _STATE, initial)

    return state


def _plain_trigger(
    trigger: str, moves: dict[Any, Any], binding: Binding
) -> Callable[..., Any]:
    """A trigger without hooks, for a class with the default ``__setattr__``: lock, one dict
    lookup, one store, the record. (The lock is taken with ``acquire``/``release``: cheaper
    than ``with`` on this hot path.)"""
    initial = binding.initial
    journal = binding.journal
    subject_of = binding.subject_of

    if journal is None:

        def fire_trigger(self: Any, cause: BaseException | str | None = None) -> Any:
            try:
                lock = self._lifecycle_lock
            except AttributeError:
                lock = _adopt(self, initial)
            lock.acquire()
            try:
                source = self._lifecycle_state
                dest = moves.get(source)
                if dest is None:
                    _refuse(self, binding, trigger, source, cause)
                self._lifecycle_state = dest
            finally:
                lock.release()
            return dest

        return fire_trigger

    # Each move with its edge id in the journal: the record needs no lookup of its edge.
    table = journal.moves(binding.spec)
    journaled = {source: table[(source, trigger)] for source in moves}
    record_move = journal.record_move
    default_subject = subject_of is _default_subject

    def fire_journaled(self: Any, cause: BaseException | str | None = None) -> Any:
        try:
            lock = self._lifecycle_lock
        except AttributeError:
            lock = _adopt(self, initial)
        lock.acquire()
        try:
            source = self._lifecycle_state
            move = journaled.get(source)
            if move is None:
                _refuse(self, binding, trigger, source, cause)
            # The subject before the move: if naming raises, nothing moved. A default name
            # is read here without `_default_subject`'s call.
            if default_subject:
                # ``getattr`` with a default: no exception at the instance's first record.
                subject = getattr(self, _SUBJECT, None) or _new_subject(self)
            else:
                subject = subject_of(self)
            dest, edge = move
            self._lifecycle_state = dest
            record_move(edge, subject, cause)
        finally:
            lock.release()
        return dest

    return fire_journaled


def _hooked_trigger(
    trigger: str, moves: dict[Any, Any], steps: dict[Any, _Step], binding: Binding
) -> Callable[..., Any]:
    """Any other trigger: guards or hooks in this class, or a class with its own
    ``__setattr__`` (the state is stored past it): the veto phase, the move, the after phase."""
    initial = binding.initial
    kind = binding.kind
    journal = binding.journal
    setattr_ = object.__setattr__

    def fire_trigger(self: Any, cause: BaseException | str | None = None) -> Any:
        try:
            lock = self._lifecycle_lock
        except AttributeError:
            lock = _adopt(self, initial)
        with lock:
            source = self._lifecycle_state
            dest = moves.get(source)
            if dest is None:
                _refuse(self, binding, trigger, source, cause)
            step = steps.get(source)
            if step is not None:
                _veto_phase(self, binding, trigger, source, dest, step)
            if journal is None:
                setattr_(self, _STATE, dest)
            else:
                subject = binding.subject_of(self)
                setattr_(self, _STATE, dest)
                journal.record(kind, subject, trigger, source, dest, True, cause)
            if step is not None and step.after:
                _after_phase(self, binding, trigger, source, dest, step)
        return dest

    return fire_trigger


def _veto_phase(
    obj: Any, binding: Binding, trigger: str, source: Any, dest: Any, step: _Step
) -> None:
    """Run the guards and the before hooks; on a veto, journal it and raise."""
    owner = type(obj).__qualname__
    for label, call, wanted in step.guards:
        try:
            verdict = bool(call(obj))
        except BaseException as exc:  # user code: any failure is a veto with its cause
            _veto(obj, binding, trigger, source, dest, label, exc)
        if verdict is not wanted:
            _veto(obj, binding, trigger, source, dest, label, f"returned {verdict}")
    for name in step.before:
        try:
            getattr(obj, name)()
        except BaseException as exc:  # user code: any failure is a veto with its cause
            _veto(obj, binding, trigger, source, dest, f"{owner}.{name}", exc)
    if getattr(obj, _STATE) is not source:
        moved = getattr(obj, _STATE)
        _veto(
            obj,
            binding,
            trigger,
            source,
            dest,
            f"{owner}.{'/'.join(step.before) or 'a guard'}",
            f"it moved the subject to {moved} while {trigger!r} was being decided",
        )


def _after_phase(
    obj: Any, binding: Binding, trigger: str, source: Any, dest: Any, step: _Step
) -> None:
    for name in step.after:
        try:
            getattr(obj, name)()
        except BaseException as exc:
            # An exception that takes no notes still reaches the caller.
            with contextlib.suppress(BaseException):
                exc.add_note(
                    f"raised by {type(obj).__qualname__}.{name} after {binding.kind} "
                    f"{_safe_subject(obj, binding)!r} moved {source} -> {dest} on {trigger!r}; "
                    "the move stands (journaled)"
                )
            raise


def _safe_subject(obj: Any, binding: Binding) -> str:
    try:
        return binding.subject_of(obj)
    except BaseException:  # naming must never hide the error being reported
        return f"<{type(obj).__qualname__}>"


def _veto(
    obj: Any,
    binding: Binding,
    trigger: str,
    source: Any,
    dest: Any,
    hook: str,
    why: BaseException | str,
) -> NoReturn:
    """Journal a refused record for a veto and raise (`TransitionVetoed`, or ``why`` itself
    when it is a `BaseException` that is not an `Exception`)."""
    subject = _safe_subject(obj, binding)
    now = getattr(obj, _STATE, source)
    if isinstance(why, BaseException):
        reason = f"{type(why).__name__}: {safe_str(why)}" if safe_str(why) else type(why).__name__
        text = f"{VETO_CAUSE_PREFIX}{hook}: {describe_cause(why)}"
    else:
        reason = why
        text = f"{VETO_CAUSE_PREFIX}{hook}: {why}"
    journal = binding.journal
    if journal is not None:
        journal.record(binding.kind, subject, trigger, now, None, False, text)
    if isinstance(why, BaseException) and not isinstance(why, Exception):
        raise why
    error = TransitionVetoed(subject, binding.kind, str(now), trigger, str(dest), hook, reason)
    if isinstance(why, BaseException):
        raise error from why
    raise error


def _refuse(obj: Any, binding: Binding, trigger: str, source: Any, cause: object) -> NoReturn:
    """Journal a refused record for an edge the table lacks and raise `IllegalTransition`."""
    subject = binding.subject_of(obj)
    journal = binding.journal
    if journal is not None:
        journal.record(
            binding.kind,
            subject,
            trigger,
            source,
            None,
            False,
            cause if isinstance(cause, BaseException | str) else None,
        )
    raise IllegalTransition(subject, binding.kind, source, trigger, binding.spec.allowed(source))


# -- the instance API ------------------------------------------------------------------------


def _fire(self: Any, trigger: str, cause: BaseException | str | None = None) -> Any:
    """Fire ``trigger`` by name and return the new state.

    Raises `IllegalTransition` when the current state has no such edge (a refused record is
    journaled), `TransitionVetoed` when a guard or a before hook refused it.
    """
    function = type(self).__lifecycle_fires__.get(trigger)
    if function is None:
        binding = binding_of(self)
        with lock_of(self):
            _refuse(self, binding, trigger, getattr(self, _STATE), cause)
    return function(self, cause)


def _can(self: Any, trigger: str) -> bool:
    """Whether the table has ``trigger`` from the current state (guards are not run; hold
    `lock_of` to act on the answer)."""
    binding: Binding = type(self).__lifecycle__
    return (getattr(self, _STATE, binding.initial), trigger) in binding.table


def _allowed(self: Any) -> tuple[str, ...]:
    """The triggers the table accepts from the current state, in declaration order."""
    binding: Binding = type(self).__lifecycle__
    return binding.spec.allowed(getattr(self, _STATE, binding.initial))
