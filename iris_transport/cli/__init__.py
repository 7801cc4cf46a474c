"""The ``iris-transport`` command line.

Exit codes: 0 success, 1 the input or the operation failed (invalid message,
unreachable broker), 2 wrong usage (unknown option, missing argument).
Each command group lives in its own module and is added to ``main`` here.
"""

from __future__ import annotations

import click

from iris_transport import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="iris-transport")
def main() -> None:
    """Exchange IRIS orders, events and results over any configured broker."""


def _add_commands() -> None:
    # Imported here, not at module top, so that each module can import ``main``'s
    # helpers without a cycle.
    from iris_transport.cli import client_commands, models_commands, transport_commands

    for command in models_commands.COMMANDS:
        main.add_command(command)
    for command in transport_commands.COMMANDS:
        main.add_command(command)
    for command in client_commands.COMMANDS:
        main.add_command(command)
    transport_commands.add_plugin_commands(main)


_add_commands()
