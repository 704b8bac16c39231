"""What a test needs from the machine: tools, a mount. On a developer machine without it the
test is skipped; in CI (the CI environment variable set, as `.ci/run` does) it fails, since
the test script installs everything the suite uses."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def on_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(why: str) -> NoReturn:
    """Skip, or fail in CI, because the machine lacks what the test needs."""
    if on_ci():
        pytest.fail(f"{why}; it is required in CI (the CI environment variable is set)")
    pytest.skip(why)


def require_tool(found: bool, what: str) -> None:
    if not found:
        unavailable(f"{what} is not installed on this machine")
