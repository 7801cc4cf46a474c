"""The iris-transport plugin of the Azure distribution.

It adds the ``iris-transport emulator servicebus`` command. The Service Bus
backend itself is not registered yet.
"""

from __future__ import annotations

import click

from iris_transport.hookspecs import hookimpl


@hookimpl
def iris_transport_cli_commands() -> list[click.Command]:
    """Return the ``emulator`` command group."""
    # Imported here so that loading the plugin does not import Proton.
    from iris_transport_azure.emulator.cli import emulator_group

    return [emulator_group]
