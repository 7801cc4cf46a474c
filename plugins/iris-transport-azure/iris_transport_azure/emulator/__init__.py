"""An Azure Service Bus emulator for tests, built on python-qpid-proton.

It speaks the AMQP 1.0 dialect that the official ``azure-servicebus`` SDK
uses (plain TCP with ``UseDevelopmentEmulator=true``, SASL ANONYMOUS, a
``$cbs`` token exchange, ``<entity>/$management`` requests) and serves
queues with peek-lock and receive-and-delete receivers, lock renewal and
expiry, max delivery count, TTL, scheduled and deferred messages, peek and
the dead-letter sub-queue. Topics, subscriptions and sessions are not served.

    with ServiceBusEmulator(queues=["orders"]) as emulator:
        client = ServiceBusClient.from_connection_string(emulator.connection_string)
"""

from iris_transport_azure.emulator._store import QueueOptions
from iris_transport_azure.emulator.server import EmulatorError, ServiceBusEmulator

__all__ = ["EmulatorError", "QueueOptions", "ServiceBusEmulator"]
