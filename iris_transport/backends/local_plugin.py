"""Registers the built-in ``local`` backend with the plugin manager.

This module is the ``local`` entry point of the group ``iris_transport`` in
the core distribution, so the backend is found the same way as a
third-party one. The SQLite transport itself is in
``iris_transport.backends.local``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iris_transport.hookspecs import BackendInfo, hookimpl

if TYPE_CHECKING:
    from iris_transport.backends.local import LocalSettings, LocalTransport


def create_local_transport(settings: LocalSettings, channel: str) -> LocalTransport:
    """Build a ``LocalTransport`` on ``settings.queue``, or on the queue named after ``channel``."""
    from iris_transport.backends.local import LocalTransport

    return LocalTransport(settings, channel)


@hookimpl
def iris_transport_backends() -> list[BackendInfo]:
    # Imported on call, not at module level, so that loading the entry point
    # stays cheap for commands that never look a backend up.
    from iris_transport.backends.local import LOCAL_CAPABILITIES, LocalSettings

    return [
        BackendInfo(
            name="local",
            description="Durable queues in one SQLite file (standard library only)",
            settings_model=LocalSettings,
            factory=create_local_transport,
            capabilities=LOCAL_CAPABILITIES,
            install_command='pip install "iris-transport"',
        )
    ]
