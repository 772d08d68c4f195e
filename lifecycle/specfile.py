"""Machines declared in files, and references to machines: ``PATH`` or ``MODULE:NAME``.

A machine file holds one machine object in the layout ``lifecycle spec --json`` prints for
each machine (`MachineSpec.to_dict`)::

    name = "door"
    states = ["closed", "open", "locked"]
    initial = "closed"
    terminal = []

    [[transitions]]
    trigger = "open"
    sources = ["closed"]
    dest = "open"
    when = "someone opens it"

in TOML (a ``.toml`` file, read with `tomllib`) or JSON (a ``.json`` file; the whole
document ``lifecycle spec --spec REF --json`` prints, ``{"schema": 1, "machines": [...]}`` with
one machine, is read too). ``when`` may be left out (it defaults to ``""``); every other key
is required and no other key is allowed.
Nothing in a file is executed: it is data, turned into a new `enum.StrEnum` of its states
(member names derived from the values, values kept as written) and a `MachineSpec`, validated
as any spec is. `dump_spec` writes a spec back in either format, so that a printed spec loads
back as it was.

`resolve_spec` is the one place a reference to a machine is resolved, for the library and for
the ``--spec`` flags of ``lifecycle spec``, ``audit`` and ``diagram``.

Pure functions; safe to call from any thread.
"""

from __future__ import annotations

import enum
import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from typing import Any

from lifecycle.errors import BadReference, InvalidSpec
from lifecycle.loading import load
from lifecycle.spec import SPEC_SCHEMA_VERSION, Edge, MachineSpec

__all__ = [
    "MAX_SPEC_BYTES",
    "SPEC_SUFFIXES",
    "dump_spec",
    "load_spec",
    "resolve_spec",
    "spec_from_dict",
    "to_json",
    "to_toml",
]

#: The largest machine file `load_spec` reads, in bytes: far above any hand-written machine
#: (a thousand states with their transitions is a few hundred kB), and a bound on what a
#: hostile file can make a reader hold in memory.
MAX_SPEC_BYTES = 4 * 2**20

#: The file suffixes `load_spec` reads, and the format of each.
SPEC_SUFFIXES: Mapping[str, str] = {".toml": "toml", ".json": "json"}

#: The keys of a machine object, and whether each is required.
_KEYS = {"name": True, "states": True, "initial": True, "terminal": True, "transitions": True}
_EDGE_KEYS = {"trigger": True, "sources": True, "dest": True, "when": False}

#: A state name usable as an enum member's value, and, made upper case, as its name: a Python
#: identifier that does not start with an underscore (enum reserves those). Spaces, dots and
#: the like are refused, so that every state can be named in a diagram, a CLI flag and a TOML
#: key alike.
_STATE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


def load_spec(path: str | os.PathLike[str]) -> MachineSpec:
    """The machine declared in the file ``path`` (``.toml`` or ``.json``).

    Raises `InvalidSpec` whose ``spec`` names the file and whose ``problem`` says what is
    wrong, with the line where the parser reports one: a suffix other than ``.toml`` or
    ``.json`` (the format is chosen by the suffix, never guessed), a path that is not a regular
    file (a directory, a FIFO, a device: refused before anything is read from it), a file larger
    than `MAX_SPEC_BYTES`, a file that is not UTF-8 or not valid TOML/JSON, a missing or unknown
    key, a value of the wrong type, a duplicate state, a state name that is not usable as an
    enum member value, or a table that `MachineSpec` rejects (unknown state, unreachable
    state, ...).
    """
    shown = os.fspath(path)
    suffix = os.path.splitext(shown)[1].lower()
    fmt = SPEC_SUFFIXES.get(suffix)
    if fmt is None:
        known = " or ".join(SPEC_SUFFIXES)
        raise InvalidSpec(shown, f"expected a {known} file; the format is taken from the suffix")
    data = _read_bounded(shown)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidSpec(shown, f"line {line}: not UTF-8") from None
    obj: object
    if fmt == "toml":
        try:
            obj = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # The message carries "(at line L, column C)".
            raise InvalidSpec(shown, f"not valid TOML: {exc}") from None
    else:
        try:
            obj = json.loads(text, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise InvalidSpec(shown, f"line {exc.lineno}: not valid JSON: {exc.msg}") from None
        except (ValueError, RecursionError) as exc:
            raise InvalidSpec(shown, f"not valid JSON: {exc or 'nested too deeply'}") from None
    if fmt == "json" and isinstance(obj, dict) and "machines" in obj:
        obj = _only_machine(shown, obj)
    return spec_from_dict(obj, source=shown)


def _only_machine(source: str, doc: Mapping[str, Any]) -> object:
    """The machine of a ``lifecycle spec --json`` document that holds one."""
    if set(doc) != {"schema", "machines"} or doc["schema"] != SPEC_SCHEMA_VERSION:
        raise InvalidSpec(
            source,
            f"expected a machine object, or a spec document (schema {SPEC_SCHEMA_VERSION}) "
            "of one machine",
        )
    machines = doc["machines"]
    if not isinstance(machines, list) or len(machines) != 1:
        count = len(machines) if isinstance(machines, list) else "no list of"
        raise InvalidSpec(source, f"expected a spec document of one machine; it has {count}")
    return machines[0]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _read_bounded(path: str) -> bytes:
    """The bytes of the regular file ``path``, at most `MAX_SPEC_BYTES`; raises
    `InvalidSpec` for anything else. Checked before opening and again on the open file (opened
    non-blocking), so a FIFO swapped in between cannot block the reader."""
    try:
        kind = _kind_of(os.stat(path).st_mode)
        if kind is None:
            flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
            fd = os.open(path, flags)
            with open(fd, "rb") as file:
                kind = _kind_of(os.fstat(fd).st_mode)
                if kind is None:
                    data = file.read(MAX_SPEC_BYTES + 1)
                    if len(data) > MAX_SPEC_BYTES:
                        raise InvalidSpec(
                            path, f"larger than {MAX_SPEC_BYTES} bytes: not a machine file"
                        )
                    return data
    except OSError as exc:
        raise InvalidSpec(path, f"cannot read it: {exc.strerror or exc}") from None
    raise InvalidSpec(path, f"it is {kind}, not a regular file")


def _kind_of(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def spec_from_dict(obj: object, *, source: str = "<machine>") -> MachineSpec:
    """The `MachineSpec` a machine object describes (the layout of `MachineSpec.to_dict`).

    ``source`` names where the object came from, for the errors: `InvalidSpec` naming
    ``source`` and the problem (see `load_spec`). Builds a new `enum.StrEnum` named after the
    machine; executes nothing.
    """
    if not isinstance(obj, Mapping):
        raise InvalidSpec(source, f"expected a machine object (a table), not {_type(obj)}")
    _check_keys(source, obj, _KEYS, "the machine")
    name = _string(source, obj["name"], "'name'")
    if not name:
        raise InvalidSpec(source, "'name' is empty")
    states = _strings(source, obj["states"], "'states'")
    seen: set[str] = set()
    for state in states:
        if not _STATE.match(state):
            raise InvalidSpec(
                source,
                f"state {state!r} is not usable as a state name: expected a letter, then "
                "letters, digits or underscores",
            )
        if state in seen:
            raise InvalidSpec(source, f"state {state!r} is listed twice")
        seen.add(state)
    members: dict[str, str] = {}
    for state in states:
        member = state.upper()
        if member in members:
            raise InvalidSpec(
                source,
                f"states {members[member]!r} and {state!r} differ only in case: their enum "
                "members would clash",
            )
        members[member] = state
    initial = _string(source, obj["initial"], "'initial'")
    terminal = _strings(source, obj["terminal"], "'terminal'")
    transitions = obj["transitions"]
    if not isinstance(transitions, list):
        raise InvalidSpec(source, f"'transitions' must be a list, not {_type(transitions)}")
    edges = []
    for index, row in enumerate(transitions):
        where = f"transitions[{index}]"
        if not isinstance(row, Mapping):
            raise InvalidSpec(source, f"{where} must be a table, not {_type(row)}")
        _check_keys(source, row, _EDGE_KEYS, where)
        edges.append(
            Edge(
                _string(source, row["trigger"], f"{where}.trigger"),
                _strings(source, row["sources"], f"{where}.sources"),
                _string(source, row["dest"], f"{where}.dest"),
                _string(source, row.get("when", ""), f"{where}.when"),
            )
        )
    enum_type = enum.StrEnum(_enum_name(name), list(members.items()))  # type: ignore[misc]
    try:
        return MachineSpec(
            name=name,
            states=enum_type,
            initial=initial,
            terminal=frozenset(terminal),
            transitions=tuple(edges),
        )
    except InvalidSpec as exc:
        raise InvalidSpec(source, f"machine {name!r}: {exc.problem}") from None


def _check_keys(source: str, obj: Mapping[Any, Any], keys: Mapping[str, bool], what: str) -> None:
    missing = [key for key, required in keys.items() if required and key not in obj]
    if missing:
        raise InvalidSpec(source, f"{what} lacks {', '.join(repr(k) for k in missing)}")
    unknown = [key for key in obj if key not in keys]
    if unknown:
        expected = ", ".join(keys)
        raise InvalidSpec(
            source,
            f"{what} has unknown key(s) {', '.join(repr(k) for k in unknown)} "
            f"(expected only {expected})",
        )


def _string(source: str, value: object, what: str) -> str:
    if type(value) is not str:
        raise InvalidSpec(source, f"{what} must be a string, not {_type(value)}")
    return value


def _strings(source: str, value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidSpec(source, f"{what} must be a list of strings, not {_type(value)}")
    for item in value:
        if type(item) is not str:
            raise InvalidSpec(source, f"{what} must hold only strings, not {_type(item)}")
    return tuple(value)


def _type(value: object) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return kinds.get(type(value), type(value).__name__)


def _enum_name(name: str) -> str:
    """A class name for the states of machine ``name`` (``door`` -> ``DoorState``)."""
    words = re.findall(r"[A-Za-z0-9]+", name)
    base = "".join(word[:1].upper() + word[1:] for word in words)
    if not base or not base[0].isalpha():
        base = "Machine" + base
    return f"{base}State"


# -- writing -----------------------------------------------------------------------------------


def to_json(spec: MachineSpec) -> str:
    """``spec`` as a JSON machine file (`load_spec` reads it back as it was)."""
    return json.dumps(spec.to_dict(), indent=2) + "\n"


def to_toml(spec: MachineSpec) -> str:
    """``spec`` as a TOML machine file, transitions as ``[[transitions]]`` tables
    (`load_spec` reads it back as it was)."""
    doc = spec.to_dict()
    lines = [
        f"name = {_toml_string(doc['name'])}",
        f"states = {_toml_list(doc['states'])}",
        f"initial = {_toml_string(doc['initial'])}",
        f"terminal = {_toml_list(doc['terminal'])}",
    ]
    for edge in doc["transitions"]:
        lines += [
            "",
            "[[transitions]]",
            f"trigger = {_toml_string(edge['trigger'])}",
            f"sources = {_toml_list(edge['sources'])}",
            f"dest = {_toml_string(edge['dest'])}",
            f"when = {_toml_string(edge['when'])}",
        ]
    return "\n".join(lines) + "\n"


def dump_spec(spec: MachineSpec, format: str = "toml") -> str:
    """``spec`` as a machine file in ``format`` (``"toml"`` or ``"json"``); raises
    `ValueError` for another format."""
    if format == "toml":
        return to_toml(spec)
    if format == "json":
        return to_json(spec)
    raise ValueError(f"unknown machine file format {format!r}; expected toml or json")


def _toml_string(text: str) -> str:
    # A TOML basic string: JSON's escapes are TOML's, except that TOML has no \u escape for
    # characters outside the BMP in the surrogate form JSON uses; ensure_ascii=False keeps
    # them as themselves, and control characters are escaped by both alike.
    out = json.dumps(text, ensure_ascii=False)
    return out.replace("\x7f", "\\u007f")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(_toml_string(item) for item in items) + "]"


# -- references --------------------------------------------------------------------------------


def resolve_spec(reference: str) -> MachineSpec:
    """The machine ``reference`` names: a file path ending ``.toml`` or ``.json`` (read with
    `load_spec`), else ``package.module:NAME`` (the module is imported and its ``NAME``
    attribute must be a `MachineSpec`).

    Raises `BadReference` naming the reference and what is wrong: a file that cannot be loaded
    (the `InvalidSpec` is its cause and its problem is repeated), a malformed reference, a
    module that cannot be imported, a missing attribute, or an attribute that is not a
    `MachineSpec`.
    """
    if not isinstance(reference, str):
        raise BadReference(
            repr(reference), "expected a string: PATH.toml, PATH.json or MODULE:NAME"
        )
    if os.path.splitext(reference)[1].lower() in SPEC_SUFFIXES:
        try:
            return load_spec(reference)
        except InvalidSpec as exc:
            raise BadReference(reference, exc.problem) from exc
    obj = load(reference)
    if not isinstance(obj, MachineSpec):
        raise BadReference(
            reference, f"expected a lifecycle.MachineSpec, got {type(obj).__name__}"
        )
    return obj

