"""The iris-transport plugin of the Azure distribution.

It registers the ``azure`` backend (Azure Service Bus) and adds the
``iris-transport emulator servicebus`` and ``iris-transport dlq`` commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from iris_transport.hookspecs import BackendInfo, hookimpl

if TYPE_CHECKING:
    from iris_transport_azure.settings import AzureServiceBusSettings
    from iris_transport_azure.transport import AzureServiceBusTransport


@hookimpl
def iris_transport_cli_commands() -> list[click.Command]:
    """Return the ``emulator`` command group."""
    # Imported here so that loading the plugin does not import Proton.
    from iris_transport_azure.emulator.cli import emulator_group

    return [emulator_group]


def create_azure_transport(settings: AzureServiceBusSettings, channel: str) -> AzureServiceBusTransport:
    """Build an ``AzureServiceBusTransport`` on the entity that ``settings`` name for ``channel``."""
    from iris_transport_azure.transport import AzureServiceBusTransport

    return AzureServiceBusTransport(settings, channel)


@hookimpl
def iris_transport_backends() -> list[BackendInfo]:
    # The settings module needs no SDK, so the backend is listed even when
    # azure-servicebus is missing, and creating it then names the install command.
    from iris_transport_azure.settings import AZURE_CAPABILITIES, AzureServiceBusSettings

    return [
        BackendInfo(
            name="azure",
            description="Azure Service Bus queues and topics (azure-servicebus)",
            settings_model=AzureServiceBusSettings,
            factory=create_azure_transport,
            capabilities=AZURE_CAPABILITIES,
            install_command='pip install "iris-transport[azure]"',
            required_modules=("azure.servicebus",),
        )
    ]


@hookimpl(specname="iris_transport_cli_commands")
def dead_letter_commands() -> list[click.Command]:
    """Return the ``dlq`` command group, which reads and replays Service Bus dead-letter sub-queues."""
    from iris_transport_azure.dlq import dlq_group

    return [dlq_group]
