"""Programs outside Python that some tests need: Graphviz's ``dot``, Node.js with Mermaid.

Locally, a test whose program is missing is skipped, with the reason and how to install it. In
CI (the ``CI`` environment variable set, as CI runs ``.ci/run``) it fails instead: CI installs
both, and a missing install step must not pass as a green run that checked nothing.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: Whether the suite runs in CI.
IN_CI = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test (fail it in CI) because of ``reason``."""
    if IN_CI:
        pytest.fail(f"{reason}; CI must install it (see .ci/run)", pytrace=False)
    pytest.skip(reason)
