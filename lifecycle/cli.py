"""The ``lifecycle`` command. The only module that prints.

Exit codes: 0 success, 1 failure (a failed run, violations found), 2 usage or unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from lifecycle.spec import SPEC_SCHEMA_VERSION, SPECS, MachineSpec

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Command = Callable[[argparse.Namespace], int]


def _print_table(spec: MachineSpec) -> None:
    print(f"{spec.name} (initial: {spec.initial}; terminal: {', '.join(sorted(spec.terminal))})")
    rows = [(e.trigger, ", ".join(e.sources), e.dest, e.when) for e in spec.transitions]
    widths = [max(len(r[i]) for r in [("trigger", "from", "to", ""), *rows]) for i in range(3)]
    print(f"  {'trigger':<{widths[0]}}  {'from':<{widths[1]}}  {'to':<{widths[2]}}  when")
    for trigger, sources, dest, when in rows:
        print(f"  {trigger:<{widths[0]}}  {sources:<{widths[1]}}  {dest:<{widths[2]}}  {when}")


def _cmd_spec(args: argparse.Namespace) -> int:
    if args.json:
        doc = {
            "schema": SPEC_SCHEMA_VERSION,
            "machines": [spec.to_dict() for spec in SPECS.values()],
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    for index, spec in enumerate(SPECS.values()):
        if index:
            print()
        _print_table(spec)
    return EXIT_OK


def _add_spec(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("spec", help="print the task, collection and service state tables")
    p.add_argument("--json", action="store_true", help="print them as JSON (stable schema)")
    p.set_defaults(command=_cmd_spec)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecycle",
        description="A strict, state-machine lifecycle engine for background tasks.",
    )
    sub = parser.add_subparsers(metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_spec,
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lifecycle`` command with ``argv`` (default: ``sys.argv[1:]``); returns the code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    command: Command = args.command
    try:
        return command(args)
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
