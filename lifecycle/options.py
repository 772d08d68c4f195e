"""Command-line options declared on task and service classes (sparts' model, on argparse).

Declare an option as a class attribute::

    class Fetcher(Task):
        url = option(help="where to fetch from")
        retries = option(type=int, default=3)
        interval = option(type=float, default=lambda cls: cls.INTERVAL)

An option that takes a value may declare what a valid value is: bounds (``gt``, ``ge``, ``lt``,
``le``), a ``check`` callable, and, for floats, finiteness (on by default: a duration of
``nan`` or ``inf`` is never what a user meant)::

        interval = option(type=float, gt=0)              # --Fetcher-interval 0 is refused
        workers = option(type=int, ge=1, le=64)
        name = option(check=lambda v: None if v.isidentifier() else "must be an identifier")

A value that breaks them is refused when the command line is parsed: `UsageError` naming the
flag (``argument --Fetcher-interval: must be > 0, not 0.0``).

A task's flag is ``--{prefix}-{name}``, where the prefix is the class's ``OPT_PREFIX`` or its
name (``_`` becomes ``-``): ``--Fetcher-url``. A service's flag is ``--{name}``. The option's
name is the attribute name unless given, with ``_`` written as ``-``. A callable ``default``
is called with the class the option is read through, so a subclass can change it with a class
attribute.

Reading the attribute on an instance gives, in order: a value set with ``set_option``; the
parsed value from the options of the owner's source (a service's ``options``; for a task, its
service's); the default. Values come from one argparse parser per service, which
`build_parser` assembles from the service's options and those of every task it may run.

Errors: `OptionError` for a bad declaration (a default that breaks the option's own rules
included, when the parser is built), `OptionConflict` when two options map to one flag,
`UnknownOption` for a name nothing declares, `UsageError` for a command line that does not
parse or holds a value the option refuses, `HelpRequested` when the command line asks for
``--help``.
"""

from __future__ import annotations

import argparse
import math
import operator
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NoReturn, overload

import attrs

from lifecycle.errors import (
    HelpRequested,
    OptionConflict,
    OptionError,
    UnknownOption,
    UsageError,
)

__all__ = [
    "BoundOption",
    "OptionParser",
    "bound_options",
    "build_parser",
    "option",
    "option_prefix",
    "read_option",
    "write_option",
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_ACTIONS = frozenset(
    {
        "store",
        "store_const",
        "store_true",
        "store_false",
        "append",
        "append_const",
        "count",
        "extend",
    }
)
#: Instance attribute holding values given with ``set_option`` (name -> value).
OVERRIDES = "_option_overrides"

_MISSING = object()
#: The actions whose option takes a value (the ones ``type`` and the value checks apply to).
_TAKES_VALUE = (None, "store", "append", "extend")
#: The bounds an option may declare: keyword, how it reads in a message, the test it makes.
_BOUNDS: tuple[tuple[str, str, Callable[[Any, Any], Any]], ...] = (
    ("gt", ">", operator.gt),
    ("ge", ">=", operator.ge),
    ("lt", "<", operator.lt),
    ("le", "<=", operator.le),
)

#: A ``check``: the problem with a value (None: it is fine), or raise `ValueError` saying it.
Check = Callable[[Any], "str | None"]


class option:
    """A command-line option declared on a task or service class (a data descriptor).

    ``name``: the option's name (default: the attribute name); ``type``, ``help``, ``action``,
    ``nargs``, ``metavar``, ``choices``: as in `argparse.ArgumentParser.add_argument`;
    ``default``: the value when the flag is absent, or a callable called with the class.

    What a valid value is (for options that take one; each value of a list option):

    * ``gt``, ``ge``, ``lt``, ``le``: bounds (greater than, at least, less than, at most);
    * ``finite`` (default True): a float value must be finite (no ``nan``, ``inf``, ``-inf``);
      pass False for an option where ``inf`` means something (such as "no limit");
    * ``check``: called with the converted value; returns None when the value is fine, or a
      message saying what is wrong (``"must be a power of two"``), or raises `ValueError`
      with that message.

    `problem` applies them; the parser applies them to every value on the command line (a
    refusal is a `UsageError` naming the flag) and `build_parser` to the default (a refusal
    is an `OptionError`: the declaration contradicts itself). Values set with `write_option`
    or given in a service's ``options`` mapping are not checked here.

    Raises `OptionError` for a malformed declaration (bad name, unknown action, a ``type`` or
    ``check`` that is not callable, a bound that is not a number, both ``gt`` and ``ge`` (or
    ``lt`` and ``le``), value rules on an option that takes no value). Thread-safety: reading
    is safe from any thread; `write_option` is a plain attribute store.
    """

    def __init__(
        self,
        name: str | None = None,
        type: Callable[[str], Any] = str,
        default: Any = None,
        help: str | None = None,
        action: str | None = None,
        nargs: int | str | None = None,
        metavar: str | None = None,
        choices: Iterable[Any] | None = None,
        *,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        finite: bool = True,
        check: Check | None = None,
    ) -> None:
        label = name if name is not None else "<unnamed>"
        if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
            raise OptionError(
                repr(name), "a name is letters, digits, '-' and '_', starting with a letter/digit"
            )
        if not callable(type):
            raise OptionError(label, f"type must be callable (like int or float), not {type!r}")
        if action is not None and action not in _ACTIONS:
            raise OptionError(
                label, f"unknown action {action!r}; use one of {', '.join(sorted(_ACTIONS))}"
            )
        bounds = {"gt": gt, "ge": ge, "lt": lt, "le": le}
        for key, bound in bounds.items():
            if bound is not None and (
                isinstance(bound, bool)
                or not isinstance(bound, int | float)
                or math.isnan(bound)
            ):
                raise OptionError(label, f"{key} must be a number, not {bound!r}")
        for strict, inclusive in (("gt", "ge"), ("lt", "le")):
            if bounds[strict] is not None and bounds[inclusive] is not None:
                raise OptionError(label, f"give {strict} or {inclusive}, not both")
        if check is not None and not callable(check):
            raise OptionError(label, f"check must be callable, not {check!r}")
        ruled = check is not None or any(bound is not None for bound in bounds.values())
        if action not in _TAKES_VALUE and ruled:
            raise OptionError(label, f"action {action!r} takes no value: nothing to check")
        self.name = None if name is None else name.replace("_", "-")
        self.attr: str | None = None
        self.type = type
        self.default = default
        self.help = help
        self.action = action
        self.nargs = nargs
        self.metavar = metavar
        self.choices = None if choices is None else tuple(choices)
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.finite = finite
        self.check = check

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attr = attr
        if self.name is None:
            if not _NAME.match(attr):
                raise OptionError(attr, f"attribute {attr!r} is not a usable option name")
            self.name = attr.replace("_", "-")

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> option: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> Any: ...

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return read_option(instance, self)

    def __set__(self, instance: object, value: Any) -> None:
        write_option(instance, self, value)

    # -- valid values ------------------------------------------------------------------------

    @property
    def bounds(self) -> str:
        """The declared bounds as text (``"> 0"``, ``">= 1 and <= 64"``; ``""`` for none)."""
        return " and ".join(
            f"{symbol} {bound:g}" if isinstance(bound, float) else f"{symbol} {bound}"
            for key, symbol, _ in _BOUNDS
            if (bound := getattr(self, key)) is not None
        )

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (converted, as ``type`` returns it), or None if nothing.

        The message completes the flag's name: ``must be > 0, not 0.0``. Applies ``finite``
        (to floats), the bounds, then ``check``. Raises what ``check`` raises, other than
        `ValueError` (whose message is the problem).
        """
        nonfinite = self.finite and isinstance(value, float) and not math.isfinite(value)
        try:
            out_of_bounds = not all(
                holds(value, bound)
                for key, _, holds in _BOUNDS
                if (bound := getattr(self, key)) is not None
            )
        except TypeError:  # not comparable with a number: out of bounds too
            out_of_bounds = True
        if nonfinite or out_of_bounds:
            wanted = " ".join(
                part
                for part in ("a finite number" if nonfinite else "", self.bounds)
                if part
            )
            return f"must be {wanted}, not {value!r}"
        if self.check is not None:
            try:
                found = self.check(value)
            except ValueError as exc:
                return str(exc) or f"{value!r} is refused by {_type_name(self.check)}"
            if found is not None:
                return str(found)
        return None

    def convert(self, text: str) -> Any:
        """``text`` from the command line as this option's value: ``type``, then `problem`.

        Raises `argparse.ArgumentTypeError` with the problem (argparse names the flag), and
        what ``type`` raises for text it cannot convert.
        """
        value = self.type(text)
        problem = self.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value

    # -- derived -----------------------------------------------------------------------------

    @property
    def key(self) -> str:
        """The option's name as an identifier (``-`` written as ``_``)."""
        return self._require_name().replace("-", "_")

    def _require_name(self) -> str:
        if self.name is None:
            raise OptionError("<unnamed>", "declared outside a class body; give it a name")
        return self.name

    def flag(self, owner: type) -> str:
        """The flag of this option on ``owner`` (``--prefix-name`` or ``--name``)."""
        prefix = option_prefix(owner)
        name = self._require_name()
        return f"--{prefix}-{name}" if prefix else f"--{name}"

    def dest(self, owner: type) -> str:
        """The key of this option's value in a parsed-options mapping (worked out once per
        class and name: each option read needs it, and the class's prefix does not change)."""
        name = self._require_name()
        dests = _DESTS.get(owner)
        if dests is None:
            dests = _DESTS[owner] = {}
        found = dests.get(name)
        if found is None:
            found = dests[name] = self.flag(owner)[2:].replace("-", "_")
        return found

    def default_for(self, owner: type) -> Any:
        """The value when the flag is absent, as argparse would produce it for ``owner``."""
        value = self.default(owner) if callable(self.default) else self.default
        if value is None:
            if self.action == "store_true":
                return False
            if self.action == "store_false":
                return True
            return None
        if (
            isinstance(value, str)
            and self.type is not str
            and self.action in (None, "store")
            and self.nargs in (None, "?")
        ):
            # argparse converts a string default through ``type``; do the same without argv.
            try:
                return self.type(value)
            except (TypeError, ValueError) as exc:
                raise OptionError(
                    self.flag(owner), f"default {value!r} is not a valid {_type_name(self.type)}"
                ) from exc
        return value

    def argparse_kwargs(self, owner: type) -> dict[str, Any]:
        """The keyword arguments of ``add_argument`` for this option on ``owner``."""
        kwargs: dict[str, Any] = {"dest": self.dest(owner)}
        default = self.default(owner) if callable(self.default) else self.default
        if default is not None:
            kwargs["default"] = default
        if self.action is not None:
            kwargs["action"] = self.action
        takes_value = self.action in _TAKES_VALUE
        if takes_value:
            kwargs["type"] = _Converter(self)
            if self.nargs is not None:
                kwargs["nargs"] = self.nargs
            if self.choices is not None:
                kwargs["choices"] = self.choices
            kwargs["metavar"] = self.metavar if self.metavar is not None else self.key.upper()
        if self.help is not None:
            kwargs["help"] = self.help
        return kwargs

    def __repr__(self) -> str:
        return f"option({self.name!r}, type={_type_name(self.type)}, default={self.default!r})"


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", repr(kind))


class _Converter:
    """The ``type`` argparse calls for an option: `option.convert`, under the name of the
    option's ``type``, so that argparse's own message for unconvertible text reads
    ``invalid float value: 'soon'``."""

    def __init__(self, declared: option) -> None:
        self.option = declared
        self.__name__ = _type_name(declared.type)

    def __call__(self, text: str) -> Any:
        return self.option.convert(text)


def option_prefix(owner: type) -> str | None:
    """The flag prefix of a class: its ``option_prefix()`` if it has one (tasks), else None."""
    prefix_of = getattr(owner, "option_prefix", None)
    if prefix_of is None:
        return None
    prefix = prefix_of()
    return None if prefix is None else str(prefix)


def declared_options(owner: type) -> Mapping[str, option]:
    """The options of ``owner`` by option name, inherited ones included (subclasses win).

    Read from the class once and kept for it (options are declared in class bodies; every
    option read looks them up, so a walk of the MRO per read would cost each task's create
    and stop several times over). Raises `OptionConflict` for two attributes of one class
    declaring the same option name. Thread-safe.
    """
    found = _DECLARED.get(owner)
    if found is None:
        found = MappingProxyType(_declared_options(owner))
        _DECLARED[owner] = found
    return found


#: `option.dest` per class and option name; weak, as `_DECLARED`.
_DESTS: weakref.WeakKeyDictionary[type, dict[str, str]] = weakref.WeakKeyDictionary()
#: `declared_options` per class; weak, so that classes made on the fly are not kept alive.
_DECLARED: weakref.WeakKeyDictionary[type, Mapping[str, option]] = weakref.WeakKeyDictionary()


def _declared_options(owner: type) -> dict[str, option]:
    found: dict[str, option] = {}
    for klass in reversed(owner.__mro__):
        here: dict[str, str] = {}
        for attr, value in vars(klass).items():
            if isinstance(value, option):
                name = value._require_name()
                if name in here:
                    where = f"{klass.__module__}.{klass.__qualname__}"
                    raise OptionConflict(name, f"{where}.{here[name]}", f"{where}.{attr}")
                here[name] = attr
                found[name] = value
    return found


@attrs.frozen
class BoundOption:
    """One option as it appears on one class: its flag, dest and declaration."""

    owner: type
    option: option

    @property
    def flag(self) -> str:
        return str(self.option.flag(self.owner))

    @property
    def dest(self) -> str:
        return str(self.option.dest(self.owner))

    @property
    def where(self) -> str:
        """``module.Class.attribute`` of the declaration."""
        return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.option.attr}"


def bound_options(owners: Iterable[type]) -> list[BoundOption]:
    """Every option of every class in ``owners``, in order; a class listed twice counts once."""
    seen: set[type] = set()
    bound: list[BoundOption] = []
    for owner in owners:
        if owner in seen:
            continue
        seen.add(owner)
        bound.extend(BoundOption(owner, opt) for opt in declared_options(owner).values())
    return bound


def _lookup(owner: object, name: str) -> option:
    options = declared_options(type(owner))
    key = name.replace("_", "-")
    found = options.get(key)
    if found is None:
        raise UnknownOption(type(owner).__qualname__, name, sorted(options))
    return found


def read_option(instance: object, opt: option | str) -> Any:
    """The value of ``opt`` (an option or its name) on ``instance``.

    Looks in the values set with `write_option`, then in the instance's option source (its
    ``option_source()``: a mapping or a namespace of parsed values keyed by dest), then falls
    back to the default. Raises `UnknownOption` for a name the class does not declare.
    """
    declared = opt if isinstance(opt, option) else _lookup(instance, opt)
    key = declared._require_name()
    overrides = getattr(instance, "__dict__", {}).get(OVERRIDES)
    if overrides and key in overrides:
        return overrides[key]
    owner = type(instance)
    source_of = getattr(instance, "option_source", None)
    source = source_of() if callable(source_of) else None
    if source is not None:
        dest = declared.dest(owner)
        if isinstance(source, Mapping):
            value = source.get(dest, _MISSING)
        else:
            value = getattr(source, dest, _MISSING)
        if value is not _MISSING:
            return value
    return declared.default_for(owner)


def gives_any(source: object, owner: type, names: Iterable[str]) -> bool:
    """Whether ``source`` (an option source: a mapping or a namespace of parsed values keyed
    by dest) holds a value other than None for any of the options ``names`` of ``owner``.

    The cheap question behind "can these options override the class's defaults here": the
    flags' defaults are None. Raises `UnknownOption` for a name ``owner`` does not declare.
    """
    declared = declared_options(owner)
    mapping = source if isinstance(source, Mapping) else None
    for name in names:
        found = declared.get(name)
        if found is None:
            raise UnknownOption(owner.__qualname__, name, sorted(declared))
        dest = found.dest(owner)
        value = mapping.get(dest) if mapping is not None else getattr(source, dest, None)
        if value is not None:
            return True
    return False


def write_option(instance: object, opt: option | str, value: Any) -> None:
    """Set ``opt`` (an option or its name) on this instance only; raises `UnknownOption`."""
    declared = opt if isinstance(opt, option) else _lookup(instance, opt)
    overrides = instance.__dict__.setdefault(OVERRIDES, {})
    overrides[declared._require_name()] = value


class OptionParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` that raises instead of printing and exiting.

    A bad command line raises `UsageError` (with the usage text); ``--help`` raises
    `HelpRequested` with the help text. Abbreviated flags are not accepted, so a new option can
    never change what an existing command line means.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("add_help", False)
        super().__init__(*args, **kwargs)
        self.add_argument("-h", "--help", action=_HelpAction, help="show this help and exit")

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status == 0:
            raise HelpRequested(message or "")
        raise UsageError(message or f"exit status {status}", self.format_usage())


class _HelpAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        raise HelpRequested(parser.format_help())


def build_parser(
    groups: Iterable[tuple[str, Iterable[type]]],
    *,
    prog: str | None = None,
    description: str | None = None,
    reserved: Mapping[str, str] | None = None,
) -> OptionParser:
    """One parser holding the options of every class in ``groups`` (title, classes).

    ``reserved`` maps flags already taken (such as ``--tasks``) to what takes them. Raises
    `OptionConflict` when two options map to the same flag, and `OptionError` when argparse
    refuses a declaration (naming the flag and the class).
    """
    parser = OptionParser(prog=prog, description=description)
    taken: dict[str, str] = {"--help": "the built-in --help", **(reserved or {})}
    declarations: dict[str, option] = {}
    for title, owners in groups:
        bound = bound_options(owners)
        if not bound:
            continue
        group = parser.add_argument_group(title)
        for item in bound:
            flag = item.flag
            if flag in taken:
                if declarations.get(flag) is item.option:
                    # One declaration inherited by two classes with one prefix (a base
                    # class's option, such as a task's restart policy): one flag serves both.
                    continue
                raise OptionConflict(flag, taken[flag], item.where)
            taken[flag] = item.where
            declarations[flag] = item.option
            _check_default(item)
            try:
                group.add_argument(flag, **item.option.argparse_kwargs(item.owner))
            except (TypeError, ValueError, argparse.ArgumentError) as exc:
                raise OptionError(
                    flag, f"argparse refused the declaration at {item.where}: {exc}"
                ) from exc
    return parser


def _check_default(item: BoundOption) -> None:
    """Raise `OptionError` when the default of a single-valued option breaks its own rules."""
    declared = item.option
    if declared.action not in (None, "store") or declared.nargs not in (None, "?"):
        return
    value = declared.default_for(item.owner)
    problem = None if value is None else declared.problem(value)
    if problem is not None:
        raise OptionError(item.flag, f"the default at {item.where} {problem}")
