"""Skip or fail a test whose peer is missing.

A test whose peer (an emulator, a server, a command-line tool) may be missing
calls ``require_peer``. On a developer machine the test then skips with the
install hint. In CI (``CI`` set to a true value) it fails, so CI never passes
by skipping.
"""

from __future__ import annotations

import os

import pytest


def running_in_ci() -> bool:
    """Return True when the environment variable ``CI`` is set to 1, true or yes."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_peer(available: bool, name: str, install_hint: str) -> None:
    """Skip (locally) or fail (in CI) the running test when the peer ``name`` is not available."""
    if available:
        return
    message = f"{name} is not available; {install_hint}"
    if running_in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
