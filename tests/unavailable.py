"""What a test does when something it needs is not there: fail with CI=true, else skip saying why."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(message: str) -> NoReturn:
    """CI must run every test, so a missing service fails it there; elsewhere the test skips."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)
