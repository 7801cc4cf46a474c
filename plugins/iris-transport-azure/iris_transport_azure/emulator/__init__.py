"""An Azure Service Bus emulator for tests, built on python-qpid-proton.

It speaks the AMQP 1.0 dialect that the official ``azure-servicebus`` SDK
uses: plain TCP with ``UseDevelopmentEmulator=true``, SASL ANONYMOUS, a
``$cbs`` token exchange and ``<entity>/$management`` requests. It serves
queues, and topics with subscriptions (without rules or filters). Receivers
may peek-lock or receive-and-delete. Lock renewal and expiry, max delivery
count, TTL, scheduled and deferred messages, peek, the dead-letter sub-queue
and per-key Send and Listen rights work as in Service Bus. Sessions are not
served.

    with ServiceBusEmulator(queues=["orders"]) as emulator:
        client = ServiceBusClient.from_connection_string(emulator.connection_string)
"""

from iris_transport_azure.emulator._store import QueueOptions
from iris_transport_azure.emulator.server import EmulatorError, ServiceBusEmulator

__all__ = ["EmulatorError", "QueueOptions", "ServiceBusEmulator"]
