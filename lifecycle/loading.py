"""Resolving ``MODULE:NAME`` references, as `lifecycle run`, `plan` and `diagram` take them."""

from __future__ import annotations

import importlib

from lifecycle.errors import BadReference

__all__ = ["load"]


def load(reference: str) -> object:
    """The object ``"MODULE:NAME"`` names (``NAME`` may be dotted: ``mod:Outer.Inner``).

    Imports ``MODULE``. Raises `BadReference` naming what is wrong: a malformed reference, a
    module that cannot be imported (with what importing it raised), or a missing attribute.
    """
    module_name, sep, attr_path = reference.partition(":")
    if not sep or not module_name or not attr_path:
        raise BadReference(reference, "expected MODULE:NAME, for example mypkg.service:MyService")
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:  # a module that fails to import is a bad reference, whatever it raised
        raise BadReference(
            reference, f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise BadReference(
                reference, f"{module_name!r} has no attribute {attr_path!r}"
            ) from None
    return obj
