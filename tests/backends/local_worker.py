"""A producer or consumer process on a local queue, for the multi-process tests.

Each event is printed as one flushed line, so the test can follow the process:

* ``sent <message_id>`` after each message a producer sent;
* ``completed <message_id> <delivery_count>`` after each completed message;
* ``lost <message_id>`` when a lock expired before the message was completed;
* ``holding <message_id> ...`` when a consumer started holding messages
  without settling them, after which it idles until it is killed.

A consumer stops on SIGTERM, closing its transport.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from iris_transport.backends.local import LocalSettings, LocalTransport
from iris_transport.exceptions import LockLostError
from iris_transport.transport import OutgoingMessage


def report(*words: object) -> None:
    print(*words, flush=True)


async def produce(transport: LocalTransport, prefix: str, count: int) -> None:
    for index in range(count):
        message_id = f"{prefix}-{index}"
        await transport.send(OutgoingMessage(body=message_id.encode(), message_id=message_id))
        report("sent", message_id)


async def consume(transport: LocalTransport, hold_after: int | None, hold_count: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    completed = 0

    while not stop.is_set():
        if hold_after is not None and completed >= hold_after:
            held = await transport.receive(hold_count, max_wait=30.0)
            report("holding", *(message.message_id for message in held))
            await stop.wait()
            break

        for message in await transport.receive(1, max_wait=0.2):
            try:
                await transport.complete(message)
            except LockLostError:
                report("lost", message.message_id)
                continue
            completed += 1
            report("completed", message.message_id, message.delivery_count)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["produce", "consume"])
    parser.add_argument("--path", type=Path, required=True)
    parser.add_argument("--queue", default="jobs")
    parser.add_argument("--lock-duration", type=float, default=30.0)
    parser.add_argument("--prefix", default="m")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--hold-after", type=int, default=None)
    parser.add_argument("--hold-count", type=int, default=5)
    arguments = parser.parse_args()

    settings = LocalSettings(path=arguments.path, queue=arguments.queue, lock_duration=arguments.lock_duration)
    async with LocalTransport(settings, arguments.queue) as transport:
        if arguments.role == "produce":
            await produce(transport, arguments.prefix, arguments.count)
        else:
            await consume(transport, arguments.hold_after, arguments.hold_count)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
