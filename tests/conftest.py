"""Shared test configuration.

A test whose peer (an emulator, a server, a command-line tool) is missing
calls ``require_peer``: it skips on a developer machine with the install hint
and fails in CI (``CI`` set to a true value), so CI never passes by skipping.
"""

from __future__ import annotations

import os

import pytest


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_peer(available: bool, name: str, install_hint: str) -> None:
    """Skip (locally) or fail (in CI) when the peer ``name`` is not available."""
    if available:
        return
    message = f"{name} is not available; {install_hint}"
    if running_in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
