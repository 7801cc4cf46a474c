"""Measure send and receive throughput of the azure backend against the raw azure-servicebus SDK.

Run from the repository root:

    .venv/bin/python benchmarks/azure.py [--messages 2000] [--body-bytes 1024] [--batch 100]

One Service Bus emulator (``iris_transport_azure.emulator``) on a free
127.0.0.1 port serves both sides in the same run, each on its own queue.
Four operations are timed for each side:

* send one by one: ``transport.send`` vs ``sender.send_messages(message)``;
* send in batches: ``transport.send_batch`` vs filling a ``ServiceBusMessageBatch``;
* receive and complete: ``transport.receive`` + ``complete`` vs
  ``receiver.receive_messages`` + ``complete_message``, up to ``--batch`` at a time.

It prints messages per second and the ratio of the transport's time to the
SDK's (1.00x means no overhead). The emulator is a Python process on the same
machine, so absolute rates tell little about Service Bus itself. The ratios show
what the transport adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

# Running this file puts benchmarks/ first on sys.path, where azure.py would
# shadow the azure package that the SDK imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

from azure.servicebus import ServiceBusMessage  # noqa: E402
from azure.servicebus.aio import ServiceBusClient  # noqa: E402

from iris_transport.transport import OutgoingMessage  # noqa: E402
from iris_transport_azure.emulator import ServiceBusEmulator  # noqa: E402
from iris_transport_azure.settings import AzureServiceBusSettings  # noqa: E402
from iris_transport_azure.transport import AzureServiceBusTransport  # noqa: E402


async def timed(operation: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    started = time.perf_counter()
    count = await operation()
    return count, time.perf_counter() - started


def outgoing(index: int, body: bytes) -> OutgoingMessage:
    return OutgoingMessage(
        body=body, message_id=f"m-{index}", subject="OrderResult", application_properties={"n": index}
    )


def sdk_message(index: int, body: bytes) -> ServiceBusMessage:
    return ServiceBusMessage(
        body=body,
        message_id=f"m-{index}",
        content_type="application/json",
        subject="OrderResult",
        application_properties={"n": index},
    )


async def transport_side(settings: AzureServiceBusSettings, count: int, body: bytes, batch: int) -> dict[str, float]:
    results: dict[str, float] = {}
    async with AzureServiceBusTransport(settings, "benchmark") as transport:
        await transport.send(outgoing(-1, body))  # opens the link outside the timing

        async def send_single() -> int:
            for index in range(count):
                await transport.send(outgoing(index, body))
            return count

        async def send_batched() -> int:
            for start in range(0, count, batch):
                await transport.send_batch([outgoing(index, body) for index in range(start, min(start + batch, count))])
            return count

        async def receive_all() -> int:
            received = 0
            while received < 2 * count + 1:
                messages = await transport.receive(batch, 5.0)
                if not messages:
                    break
                for message in messages:
                    await transport.complete(message)
                received += len(messages)
            return received

        for name, operation in (("send one by one", send_single), ("send in batches", send_batched), ("receive and complete", receive_all)):
            done, seconds = await timed(operation)
            results[name] = done / seconds
    return results


async def sdk_side(connection_string: str, queue: str, count: int, body: bytes, batch: int) -> dict[str, float]:
    results: dict[str, float] = {}
    async with ServiceBusClient.from_connection_string(connection_string) as client:
        async with client.get_queue_sender(queue) as sender, client.get_queue_receiver(queue) as receiver:
            await sender.send_messages(sdk_message(-1, body))

            async def send_single() -> int:
                for index in range(count):
                    await sender.send_messages(sdk_message(index, body))
                return count

            async def send_batched() -> int:
                for start in range(0, count, batch):
                    message_batch = await sender.create_message_batch()
                    for index in range(start, min(start + batch, count)):
                        message_batch.add_message(sdk_message(index, body))
                    await sender.send_messages(message_batch)
                return count

            async def receive_all() -> int:
                received = 0
                while received < 2 * count + 1:
                    messages = await receiver.receive_messages(max_message_count=batch, max_wait_time=5.0)
                    if not messages:
                        break
                    for message in messages:
                        await receiver.complete_message(message)
                    received += len(messages)
                return received

            for name, operation in (("send one by one", send_single), ("send in batches", send_batched), ("receive and complete", receive_all)):
                done, seconds = await timed(operation)
                results[name] = done / seconds
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="Messages per send operation.")
    parser.add_argument("--body-bytes", type=int, default=1024, help="Body size of each message, in bytes.")
    parser.add_argument("--batch", type=int, default=100, help="Messages per batch send and per receive call.")
    arguments = parser.parse_args()
    body = b"x" * arguments.body_bytes

    with ServiceBusEmulator("127.0.0.1", 0, auto_create_queues=False) as emulator:
        sdk_queue, transport_queue = f"sdk-{uuid.uuid4().hex[:6]}", f"transport-{uuid.uuid4().hex[:6]}"
        emulator.create_queue(sdk_queue)
        emulator.create_queue(transport_queue)
        settings = AzureServiceBusSettings(connection_string=emulator.connection_string, queue=transport_queue)

        sdk = await sdk_side(emulator.connection_string, sdk_queue, arguments.messages, body, arguments.batch)
        ours = await transport_side(settings, arguments.messages, body, arguments.batch)

    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs;"
        f" {arguments.messages} messages of {arguments.body_bytes} bytes, batches of {arguments.batch}"
    )
    print(f"{'operation':<22} {'SDK msg/s':>10} {'transport msg/s':>16} {'time ratio':>11}")
    for name in sdk:
        print(f"{name:<22} {sdk[name]:>10,.0f} {ours[name]:>16,.0f} {sdk[name] / ours[name]:>10.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
