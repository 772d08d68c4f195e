"""Resolving ``MODULE:NAME`` references, as `lifecycle run`, `plan` and `diagram` take them."""

from __future__ import annotations

import importlib

from lifecycle.errors import BadReference

__all__ = ["load"]


def load(reference: str) -> object:
    """The object ``"MODULE:NAME"`` names (``NAME`` may be dotted: ``mod:Outer.Inner``).

    Imports ``MODULE``. Raises `BadReference` naming what is wrong: a malformed reference, a
    module that cannot be imported (with what importing it raised: anything, `SystemExit` and
    `KeyboardInterrupt` included, for a module that exits or is interrupted while it loads),
    or a missing attribute.
    """
    module_name, sep, attr_path = reference.partition(":")
    if not sep or not module_name or not attr_path:
        raise BadReference(reference, "expected MODULE:NAME, for example mypkg.service:MyService")
    try:
        obj: object = importlib.import_module(module_name)
    except BaseException as exc:  # a module that fails to import is a bad reference, whatever
        raise BadReference(reference, f"importing {module_name!r} raised {_describe(exc)}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BadReference(
                reference, f"{module_name!r} has no attribute {attr_path!r}"
            ) from None
        except BaseException as exc:  # a module-level __getattr__ or a property that raises
            raise BadReference(
                reference, f"getting {attr_path!r} from {module_name!r} raised {_describe(exc)}"
            ) from exc
    return obj


def _describe(exc: BaseException) -> str:
    """``Type: first line of the message``; a ``__str__`` that raises cannot break it."""
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    lines = message.strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
